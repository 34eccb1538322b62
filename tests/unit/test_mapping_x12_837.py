"""x12-837-to-fhir@1 and the 837P/837I/837D loop structure: every fixture read without
structure issues and mapped to valid FHIR R4 (one Claim per CLM, in every clearinghouse
style), broken claims answered with the IK3 a partner expects, and the choices a
receiver notices (ids, codes, pointers, teeth, coordination of benefits)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.formats.x12 import X12Codec
from engine.message import Outcome, Verdict
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, of_type
from tests.unit.test_x12_codec import interchange, segments, style

FIXTURES = checks.Fixtures("x12-837-to-fhir@1", input_ext=".x12")
codec = X12Codec()
claims = checks.mapping_fixture(FIXTURES.ref, accepts="x12", emits="application/fhir+json")

ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
BROKEN = "837p_subscriber_name_missing_error"

# A small 837P in the * : ^ ~ style (interchange() adds the envelope): a subscriber who
# is the patient with one claim of two lines, and a dependent with one claim.
HEAD = [
    "BHT*0019*00*T100*20261201*1200*CH",
    "NM1*41*2*TEST BILLING*****46*TB1", "PER*IC*DESK*TE*5555550100",
    "NM1*40*2*TEST PAYER*****46*TP1",
    "HL*1**20*1", "NM1*85*2*HILLTOP CLINIC*****XX*1234567893", "N3*1 MAIN ST",
    "N4*SPRINGFIELD*IL*62701", "REF*EI*371234567",
]
SUBSCRIBER = [
    "HL*2*1*22*0", "SBR*P*18*G1******CI", "NM1*IL*1*QUILL*ADA****MI*M100",
    "DMG*D8*19800101*F", "NM1*PR*2*TEST PAYER*****PI*TP1",
    "CLM*C-1*150***11:B:1*Y*A*Y*Y", "HI*ABK:J069*ABF:R05",
    "LX*1", "SV1*HC:99213:25*100*UN*1***2:1", "DTP*472*D8*20261120",
    "LX*2", "SV1*HC:87880*50*UN*2***9", "DTP*472*D8*20261121",
]
DEPENDENT = [
    "HL*3*1*22*1", "SBR*P**G1******CI", "NM1*IL*1*QUILL*BRAM****MI*M200",
    "NM1*PR*2*TEST PAYER*****PI*TP1",
    "HL*4*3*23*0", "PAT*19", "NM1*QC*1*QUILL*CORA", "N3*2 ELM ST",
    "N4*SPRINGFIELD*IL*62704", "DMG*D8*20150505*F",
    "CLM*C-2*75***11:B:1*Y*A*Y*Y", "HI*ABK:H6690",
    "LX*1", "SV1*HC:99212*75*UN*1***1", "DTP*472*D8*20261122",
]


def raw(*body: list[str], version: str = "005010X222A1") -> bytes:
    return interchange([("837", [s for part in body for s in part])],
                       version=version).encode()


def issues(data: bytes) -> list[tuple[str, str, str]]:
    return [(i.segment, i.loop, i.code) for i in codec.parse(data).body.issues]


def the_claims(bundle: dict) -> list[dict]:
    return of_type(bundle, "Claim")


def resource(bundle: dict, ref: dict) -> dict:
    return next(e["resource"] for e in bundle["entry"] if e["fullUrl"] == ref["reference"])


# ---- fixtures ---------------------------------------------------------------------------


def _check_output(bundle: dict) -> None:
    checks.check_transaction(bundle)
    assert the_claims(bundle), "every output holds at least one Claim"


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=6, min_outputs=6,
                                    output=_check_output)


@pytest.mark.parametrize("case", [c for c in FIXTURES.cases if "270" not in c])
def test_every_fixture_is_read_into_the_guides_loops(case):
    parsed = codec.parse(FIXTURES.input(case))
    found = [(i.segment, i.loop, i.code) for i in parsed.body.issues]
    if case == BROKEN:  # deliberately without its subscriber name
        assert found == [("NM1", "2000B", "3")]
    else:
        assert found == [], found
    assert parsed.body.tree.all("2300")


def test_fixtures_cover_the_variants_styles_and_optional_loops():
    data = {c: FIXTURES.input(c) for c in FIXTURES.output_cases}
    kinds = {codec.parse(d).message_type for d in data.values()}
    assert kinds == {"837P", "837I", "837D"}
    separators = {d[3:4] for d in data.values()}
    assert {b"*", b"|", b"^"} <= separators
    terminators = {codec.parse(d).body.delimiters.segment for d in data.values()}
    assert {"~", "\n"} <= terminators
    assert any(b"~\r\n" in d for d in data.values()) and any(b"~\n" in d for d in data.values())
    trees = [codec.parse(d).body.tree for d in data.values()]
    for loop in ("2000C", "2310B", "2320", "2410"):
        assert any(t.first(loop) for t in trees), f"a fixture with {loop}"
        assert any(not t.first(loop) for t in trees), f"a fixture without {loop}"


# ---- structure problems -----------------------------------------------------------------


@pytest.mark.parametrize("level", ["subscriber", "dependent"])
def test_a_claim_without_clm_is_ik3_3_in_2300_and_the_rest_is_still_mapped(claims, level):
    subscriber = [s for s in SUBSCRIBER if not s.startswith("CLM")] \
        if level == "subscriber" else SUBSCRIBER
    dependent = [s for s in DEPENDENT if not s.startswith("CLM")] \
        if level == "dependent" else DEPENDENT
    data = raw(HEAD, subscriber, dependent)
    assert issues(data) == [("CLM", "2300", "3")]
    kept = "C-2" if level == "subscriber" else "C-1"
    assert [c["identifier"][0]["value"] for c in the_claims(bundle_of(claims, data))] == [kept]


def test_a_missing_subscriber_name_is_ik3_3_in_2000b_and_the_999_says_so():
    body = [s for s in SUBSCRIBER if not s.startswith(("NM1*IL", "DMG"))]
    data = raw(HEAD, body)
    assert issues(data) == [("NM1", "2000B", "3")]
    parsed = codec.parse(data)
    problems = codec.validate(parsed, "strict")
    answer = segments(codec.reply(data, parsed, Outcome(Verdict.REJECTED, tuple(problems))))
    assert ["IK3", "NM1", "11", "2000", "3"] in answer  # at its level's HL
    assert ["IK5", "R", "5"] in answer


def test_a_subscriber_name_without_its_nm1_is_ik3_3_in_2010ba(claims):
    body = [s for s in SUBSCRIBER if not s.startswith("NM1*IL")]  # its DMG stays
    data = raw(HEAD, body)
    assert issues(data) == [("NM1", "2010BA", "3")]
    checks.check_error(claims, data, "2010BA", phi=["QUILL", "M100"])


def test_required_pieces_of_each_variant():
    no_sv1 = [s for s in SUBSCRIBER if not s.startswith("SV1")]
    assert ("SV1", "2400", "3") in issues(raw(HEAD, no_sv1))
    no_hi = [s for s in SUBSCRIBER if not s.startswith("HI")]
    assert ("HI", "2300", "3") in issues(raw(HEAD, no_hi))
    institutional = [s.replace("SV1*HC:99213:25*100*UN*1***2:1", "SV2*0450*HC:99213*100*UN*1")
                     .replace("SV1*HC:87880*50*UN*2***9", "SV2*0300*HC:87880*50*UN*2")
                     .replace("11:B:1", "13:A:1") for s in SUBSCRIBER]
    assert issues(raw(HEAD, institutional, version="005010X223A2")) == []
    # an SV1 in an 837I is a segment the set does not know (1), its SV2 missing (3)
    assert issues(raw(HEAD, SUBSCRIBER, version="005010X223A2"))[:2] == [
        ("SV1", "2400", "1"), ("SV2", "2400", "3")]
    dental = [s.replace("SV1*HC:99213:25*100*UN*1***2:1", "SV3*AD:D0120*100****1")
              .replace("SV1*HC:87880*50*UN*2***9", "SV3*AD:D1110*50****1")
              for s in SUBSCRIBER]
    assert issues(raw(HEAD, dental, version="005010X224A2")) == []


def test_nm1_qualifiers_open_the_variants_provider_loops():
    claim = SUBSCRIBER[:7]
    lines = SUBSCRIBER[7:]
    professional = raw(HEAD, claim, ["NM1*DN*1*REFER*RAY****XX*1234567893",
                                     "NM1*82*1*RENDER*RIA****XX*1234567893",
                                     "NM1*77*2*ANNEX*****XX*1234567893", "N3*3 OAK ST",
                                     "N4*SPRINGFIELD*IL*62701"], lines)
    tree = codec.parse(professional).body.tree
    assert [n.id for n in tree.first("2300").children][:3] == ["2310A", "2310B", "2310C"]
    institutional = raw(HEAD, claim, ["NM1*71*1*ATTEND*ALI****XX*1234567893",
                                      "NM1*72*1*OPERATE*OLA****XX*1234567893"],
                        lines, version="005010X223A2")
    tree = codec.parse(institutional).body.tree
    assert [n.id for n in tree.first("2300").children][:2] == ["2310A", "2310B"]


def test_every_style_reads_the_same_loops():
    text = interchange([("837", [*HEAD, *SUBSCRIBER, *DEPENDENT])])
    expected = None
    for args in [("*", "^", ":", "~", ""), ("|", "}", "^", "~", "\n"),
                 ("^", "{", ":", "~", "\r\n"), ("!", "{", "\\", "'", "\n")]:
        parsed = codec.parse(style(text, *args))
        assert parsed.body.issues == []
        walk = [n.id for n in parsed.body.tree.walk()]
        assert expected in (None, walk)
        expected = walk


# ---- the mapping ------------------------------------------------------------------------


def test_a_batch_gives_every_claim_with_its_own_patient_and_coverage(claims):
    bundle = bundle_of(claims, FIXTURES.input("837p_batch_two_billing_providers_pipe"))
    found = the_claims(bundle)
    assert [c["identifier"][0]["value"] for c in found] == [
        "LOA-88120", "LOA-87002", "LOA-88131", "FA-2026-1187"]
    patients = [resource(bundle, c["patient"])["name"][0]["given"][0] for c in found]
    assert patients == ["PATRICK", "PATRICK", "MATEO", "THANH"]
    assert [c["status"] for c in found] == ["active", "cancelled", "active", "active"]
    assert found[1]["related"][0]["claim"]["identifier"]["value"] == "GLH2611000451"
    providers = [resource(bundle, c["provider"])["resourceType"] for c in found]
    assert providers == ["Organization", "Organization", "Organization", "Practitioner"]
    mateo = resource(bundle, found[2]["insurance"][0]["coverage"])
    assert mateo["relationship"]["coding"][0]["code"] == "child"
    assert resource(bundle, mateo["subscriber"])["name"][0]["given"] == ["ROSA"]
    # a line's own place of service (SV105, telehealth) wins over CLM05-1
    assert found[3]["item"][0]["locationCodeableConcept"]["coding"][0]["code"] == "02"


def test_professional_lines_codes_and_pointers(claims):
    claim = the_claims(bundle_of(claims, raw(HEAD, SUBSCRIBER)))[0]
    assert [d["diagnosisCodeableConcept"]["coding"][0] for d in claim["diagnosis"]] == [
        {"system": ICD10, "code": "J06.9"}, {"system": ICD10, "code": "R05"}]
    first, second = claim["item"]
    assert first["diagnosisSequence"] == [2, 1]
    assert "diagnosisSequence" not in second  # pointer 9 names no diagnosis
    assert first["modifier"][0]["coding"][0]["code"] == "25"
    assert second["quantity"]["value"] == 2 and second["unitPrice"]["value"] == 25
    assert claim["billablePeriod"] == {"start": "2026-11-20", "end": "2026-11-21"}
    assert claim["created"] == "2026-12-01"
    assert claim["total"]["value"] == 150


def test_item_sequences_are_lx01_unless_the_sender_repeats_them(claims):
    claim = the_claims(bundle_of(claims, raw(HEAD, [s.replace("LX*1", "LX*7")
                                                    for s in SUBSCRIBER])))[0]
    assert [i["sequence"] for i in claim["item"]] == [7, 2]
    repeated = [s.replace("LX*2", "LX*1") for s in SUBSCRIBER]
    claim = the_claims(bundle_of(claims, raw(HEAD, repeated)))[0]
    assert [i["sequence"] for i in claim["item"]] == [1, 2]


def test_the_claim_id_is_the_patient_control_number_of_the_billing_provider(claims):
    first = the_claims(bundle_of(claims, raw(HEAD, SUBSCRIBER)))[0]
    corrected = [s.replace("11:B:1", "11:B:7").replace("*150*", "*160*") for s in SUBSCRIBER]
    again = the_claims(bundle_of(claims, raw(HEAD, corrected)))[0]
    assert again["id"] == first["id"] and again["total"]["value"] == 160
    other = [s.replace("1234567893", "1245319599") for s in HEAD]
    assert the_claims(bundle_of(claims, raw(other, SUBSCRIBER)))[0]["id"] != first["id"]


def test_two_claims_under_one_clm01_are_both_kept(claims):
    """Practice systems that number claims by the patient's account send two visits under
    one CLM01: the second is its own Claim (keyed CLM01#2), never folded into the first."""
    second_visit = ["CLM*C-1*40***11:B:1*Y*A*Y*Y", "HI*ABK:M545",
                    "LX*1", "SV1*HC:99211*40*UN*1***1", "DTP*472*D8*20261202"]
    first, second = the_claims(bundle_of(claims, raw(HEAD, SUBSCRIBER + second_visit)))
    assert first["id"] == the_claims(bundle_of(claims, raw(HEAD, SUBSCRIBER)))[0]["id"]
    assert second["id"] != first["id"]
    assert [c["identifier"][0]["value"] for c in (first, second)] == ["C-1", "C-1"]
    assert [c["total"]["value"] for c in (first, second)] == [150, 40]
    assert second["item"][0]["productOrService"]["coding"][0]["code"] == "99211"


def test_the_member_is_the_same_patient_whoever_bills(claims):
    one = bundle_of(claims, raw(HEAD, SUBSCRIBER))
    other = [s.replace("1234567893", "1245319599") for s in HEAD]
    two = bundle_of(claims, raw(other, SUBSCRIBER))
    assert the_claims(one)[0]["patient"] == the_claims(two)[0]["patient"]


def test_institutional_inpatient(claims):
    bundle = bundle_of(claims, FIXTURES.input("837i_inpatient_drg_revenue"))
    claim = the_claims(bundle)[0]
    assert claim["type"]["coding"][0]["code"] == "institutional"
    assert claim["subType"]["coding"][0]["code"] == "inpatient"
    info = {i["category"]["coding"][0]["code"]: i for i in claim["supportingInfo"]}
    assert info["typeofbill"]["code"]["coding"][0]["code"] == "0111"
    assert info["drg"]["code"]["coding"][0]["code"] == "193"
    assert info["admissionperiod"]["timingPeriod"] == {"start": "2026-11-25"}
    assert claim["procedure"][0]["procedureCodeableConcept"]["coding"][0]["code"] == "5A1955Z"
    room = claim["item"][0]
    assert room["revenue"]["coding"][0]["code"] == "0120"
    assert room["productOrService"]["coding"][0]["code"] == "not-applicable"
    assert "unitPrice" not in claim["item"][1]  # 1875.50 / 42 is no whole number of cents
    assert [c["role"]["coding"][0]["code"] for c in claim["careTeam"]] == [
        "attending", "operating"]


def test_institutional_outpatient_with_a_second_payer(claims):
    bundle = bundle_of(claims, FIXTURES.input("837i_outpatient_caret_elements"))
    claim = the_claims(bundle)[0]
    assert claim["subType"]["coding"][0]["code"] == "outpatient"
    assert [i["focal"] for i in claim["insurance"]] == [True, False]
    second = resource(bundle, claim["insurance"][1]["coverage"])
    assert second["order"] == 2 and second["subscriberId"] == "HDH3319022"
    assert resource(bundle, second["payor"][0])["name"] == "HIGH DESERT HEALTH"
    assert all("locationCodeableConcept" not in i for i in claim["item"])


def test_dental_teeth_surfaces_and_areas(claims):
    claim = the_claims(bundle_of(claims, FIXTURES.input("837d_teeth_newline_terminator")))[0]
    assert claim["type"]["coding"][0]["code"] == "oral"
    filling, bridge, scaling = claim["item"][1:]
    assert filling["bodySite"]["coding"][0]["code"] == "19"
    assert [s["coding"][0]["code"] for s in filling["subSite"]] == ["M", "O", "D"]
    assert bridge["bodySite"]["text"] == "teeth 3, 4, 5"
    assert scaling["bodySite"]["coding"][0]["system"].endswith("ADAAreaOralCavitySystem")
    assert claim["item"][0]["servicedDate"] == "2026-11-30"  # the claim's DTP*472
    assert claim["facility"]


def test_dependent_claim_patient_and_other_subscriber(claims):
    bundle = bundle_of(claims, FIXTURES.input("837p_dependent_other_payer_crlf"))
    claim = the_claims(bundle)[0]
    assert resource(bundle, claim["patient"])["name"][0]["given"] == ["ASTRID"]
    covers = [resource(bundle, i["coverage"]) for i in claim["insurance"]]
    holders = [resource(bundle, c["subscriber"])["name"][0]["given"][0] for c in covers]
    assert holders == ["ERIK", "SOFIA"]


def test_what_cannot_be_read_is_left_out_not_failed(claims):
    odd = [s.replace("DTP*472*D8*20261121", "DTP*472*D8*20261131")
           .replace("SV1*HC:87880*50*", "SV1*HC:87880*FIFTY*") for s in SUBSCRIBER]
    claim = the_claims(bundle_of(claims, raw(HEAD, odd)))[0]
    assert "servicedDate" not in claim["item"][1] and "net" not in claim["item"][1]
    head = [s.replace("20261201*1200", "20261341*1200") for s in HEAD]
    assert the_claims(bundle_of(claims, raw(head, SUBSCRIBER)))[0]["created"] == "2024-01-01"


def test_errors_name_the_loop_and_show_no_member_data(claims):
    no_member = [s for s in SUBSCRIBER if not s.startswith(("NM1*IL", "DMG"))]
    checks.check_error(claims, raw(HEAD, no_member), "2010BA", phi=["QUILL", "M100"])
    no_payer = [s for s in SUBSCRIBER if not s.startswith("NM1*PR")]
    checks.check_error(claims, raw(HEAD, no_payer), "2010BB", phi=["QUILL", "M100"])
    no_claim = SUBSCRIBER[:5]
    checks.check_error(claims, raw(HEAD, no_claim), "CLM", phi=["QUILL"])
    other = raw(HEAD, SUBSCRIBER, version="005010X999")
    checks.check_error(claims, other, "ST03")


def test_fixture_folder_is_protected_from_line_ending_conversion():
    attributes = (FIXTURES.folder.parent / ".gitattributes").read_text()
    assert "*.x12 -text" in attributes
    assert Path(FIXTURES.folder).is_dir()


# ---- claim facts in supportingInfo and the prior payer's adjudication --------------------


def _info(claim: dict) -> list[tuple[str, str, object]]:
    """(category, code, the timing or value) of each supportingInfo entry."""
    out = []
    for entry in claim["supportingInfo"]:
        code = entry.get("code", {}).get("coding", [{}])[0].get("code", "")
        value = next((entry[k] for k in entry if k.startswith(("timing", "value"))), None)
        out.append((entry["category"]["coding"][0]["code"], code, value))
    return out


def test_claim_dates_attachments_contract_and_patient_paid(claims):
    bundle = bundle_of(claims, FIXTURES.input("837p_secondary_cob_onset_attachment"))
    claim = the_claims(bundle)[0]
    facts = _info(claim)
    assert facts[:4] == [("onset", "431", "2026-11-17"), ("info", "454", "2026-11-19"),
                         ("info", "304", "2026-11-10"),
                         ("employmentimpacted", "", {"start": "2026-11-16",
                                                     "end": "2026-12-01"})]
    contract, paid = facts[4], facts[5]
    assert contract[:2] == ("info", "02") and contract[2]["value"] == 240
    assert paid[:2] == ("info", "paidbypatient") and paid[2]["value"] == 25
    attachments = [e for e in claim["supportingInfo"]
                   if e["category"]["coding"][0]["code"] == "attachment"]
    assert [a["valueReference"]["identifier"]["value"] for a in attachments] == [
        "LFM-ATT-5521", "LFM-XR-5522"]
    # the line's own PWK is pointed at by that line only
    assert "informationSequence" not in claim["item"][0]
    assert claim["item"][1]["informationSequence"] == [attachments[1]["sequence"]]
    assert [e["sequence"] for e in claim["supportingInfo"]] == list(
        range(1, len(claim["supportingInfo"]) + 1))


def test_the_primary_payers_adjudication_is_its_claim_response(claims):
    bundle = bundle_of(claims, FIXTURES.input("837p_secondary_cob_onset_attachment"))
    claim = the_claims(bundle)[0]
    primary, ours = claim["insurance"]
    assert primary["focal"] is False and ours["focal"] is True
    assert "claimResponse" not in ours
    response = resource(bundle, primary["claimResponse"])
    assert response["request"]["reference"] == f"urn:uuid:{claim['id']}"
    assert resource(bundle, response["insurer"])["name"] == "BADGER CROSS WISCONSIN"
    assert response["created"] == "2026-11-29"
    totals = {t["category"]["coding"][0]["code"]: t["amount"]["value"]
              for t in response["total"]}
    assert totals == {"benefit": 210, "memberliability": 25}
    assert [(a["reason"]["coding"][0]["code"], a["amount"]["value"])
            for a in response["adjudication"]] == [("45", 65), ("3", 25)]
    lines = {i["itemSequence"]: [(a.get("reason", a["category"])["coding"][0]["code"],
                                  a["amount"]["value"]) for a in i["adjudication"]]
             for i in response["item"]}
    assert lines == {1: [("benefit", 110), ("45", 40), ("3", 25)],
                     2: [("benefit", 100), ("45", 50)]}


def test_institutional_occurrence_value_and_condition_codes(claims):
    bundle = bundle_of(claims, FIXTURES.input("837i_ub04_codes_prior_payer"))
    claim = the_claims(bundle)[0]
    nubc = [(e["code"]["coding"][0]["system"].rsplit("/", 1)[1], code, value)
            for e, (_, code, value) in zip(claim["supportingInfo"], _info(claim),
                                           strict=True)
            if "nubc.org/CodeSystem/" in e.get("code", {}).get("coding", [{}])[0].get(
                "system", "") and "TypeOfBill" not in e["code"]["coding"][0]["system"]]
    assert ("OccurrenceCodes", "11", "2026-11-19") in nubc
    assert ("OccurrenceSpanCodes", "74", {"start": "2026-11-01", "end": "2026-11-05"}) in nubc
    assert ("ValueCodes", "A2", {"value": 150}) in nubc
    assert [c for s, c, _ in nubc if s == "ConditionCodes"] == ["A1", "09"]
    response = resource(bundle, claim["insurance"][0]["claimResponse"])
    assert response["total"][0]["amount"]["value"] == 870.5
    assert [i["itemSequence"] for i in response["item"]] == [1, 2]


def test_a_second_other_payer_keeps_only_its_own_line_adjudication(claims):
    """With two 2320 loops, a 2430 belongs to the payer its SVD01 names."""
    other = ["SBR*S*18*G2******CI", "AMT*D*30", "OI***Y***Y",
             "NM1*IL*1*QUILL*ADA****MI*X1", "NM1*PR*2*SECOND PAYER*****PI*SP2"]
    third = ["SBR*T*18*G3******CI", "OI***Y***Y",
             "NM1*IL*1*QUILL*ADA****MI*X2", "NM1*PR*2*THIRD PAYER*****PI*TP3"]
    body = SUBSCRIBER[:7] + other + third + SUBSCRIBER[7:10] + [
        "SVD*TP3*20*HC:99213**1", "CAS*CO*45*80"] + SUBSCRIBER[10:]
    bundle = bundle_of(claims, raw(HEAD, body))
    claim = the_claims(bundle)[0]
    responses = [resource(bundle, i["claimResponse"]) if "claimResponse" in i else None
                 for i in claim["insurance"]]
    second, third_r = responses[1], responses[2]
    assert second["total"][0]["amount"]["value"] == 30 and "item" not in second
    assert third_r["item"][0]["itemSequence"] == 1 and "total" not in third_r
