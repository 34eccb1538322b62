"""x12-835-to-fhir@1 and the 835 structure: every fixture (four clearinghouse styles)
reads into its loops with no structure problem and maps to valid FHIR; a broken 835 is
answered with IK3/IK4 naming its loops; claims, adjustments, remarks, reversals and
provider-level adjustments land where a receiver reconciling payments looks for them."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from engine.errors import MappingError
from engine.formats.x12 import X12Codec
from engine.message import Outcome, Verdict
from tests import mapping_checks as checks
from tests.mapping_checks import of_type, run
from tests.unit.test_x12_codec import interchange, segments

FIXTURES = checks.Fixtures("x12-835-to-fhir@1", input_ext=".x12")
CARC = "https://x12.org/codes/claim-adjustment-reason-codes"
RARC = "https://x12.org/codes/remittance-advice-remark-codes"
GROUP = "urn:conduit:code:x12:claim-adjustment-group"
codec = X12Codec()

remit = checks.mapping_fixture(FIXTURES.ref, accepts="x12", emits="application/fhir+json")


def _check_output(bundle: dict) -> None:
    checks.check_transaction(bundle)
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds.count("PaymentReconciliation") == 1
    assert "ExplanationOfBenefit" in kinds and "Patient" in kinds


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=5, min_outputs=4,
                                    output=_check_output)


def bundle_of(mapping, raw: bytes) -> dict:
    """The output with its decimals as sent (Decimal), so sums are exact."""
    out = run(mapping, raw)
    assert isinstance(out, bytes), out
    return json.loads(out, parse_float=Decimal)


def fixture(case: str) -> bytes:
    return FIXTURES.input(case)


def eobs(bundle: dict) -> dict[str, dict]:
    """EOBs by the payer's claim control number (CLP07)."""
    return {e["identifier"][0]["value"]: e for e in of_type(bundle, "ExplanationOfBenefit")}


def adjudications(entries: list[dict]) -> list[tuple]:
    """(category code, reason code, amount) of each adjudication entry."""
    return [(a["category"]["coding"][0]["code"],
             a["reason"]["coding"][0]["code"] if "reason" in a else None,
             a["amount"]["value"] if "amount" in a else None) for a in entries]


def parse_835(body: list[str]):
    return codec.parse(interchange([("835", body)]).encode())


GOOD = [
    "BPR*I*90*C*CHK************20241203", "TRN*1*CHK1*1362847591",
    "N1*PR*BLUE HARBOR HEALTH PLAN", "REF*2U*BHHP1",
    "N1*PE*NORTHWING FAMILY MEDICINE*XX*1497758544", "LX*1",
    "CLP*PCN1*1*100*90**12*ICN1*11*1", "NM1*QC*1*DOE*JANE****MI*MEM1",
    "SVC*HC:99213*100*90**1", "DTM*472*20241112", "CAS*CO*45*10"]


# ---- structure ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", FIXTURES.cases)
def test_every_fixture_reads_into_its_loops_without_structure_issues(case):
    parsed = codec.parse(fixture(case))
    assert parsed.body.tree is not None
    assert parsed.body.issues == []
    assert codec.validate(parsed, "strict") == []


def test_claims_and_lines_nest_under_their_header_number():
    tree = codec.parse(fixture("eft_four_claims_reversal_plb")).body.tree
    header = tree.first("2000")
    assert [c.value("CLP01") for c in header.kids("2100")] == [
        "RBO-5521", "RBO-5530", "RBO-5402", "RBO-5402"]
    assert [len(c.kids("2110")) for c in header.kids("2100")] == [2, 1, 1, 1]
    assert len(tree.segs("PLB")) == 2  # after the claims, at the table's level
    assert tree.first("1000B").value("N104") == "1790012348"


def test_a_claim_without_its_patient_is_an_ik3_in_loop_2100():
    body = [s for s in GOOD if not s.startswith("NM1*QC")]
    issues = parse_835(body).body.issues
    assert [(i.segment, i.loop, i.code) for i in issues] == [("NM1", "2100", "3")]


def test_bad_codes_are_ik4_seven_in_their_loops():
    body = [s.replace("CLP*PCN1*1*", "CLP*PCN1*9*").replace("CAS*CO*", "CAS*XX*")
            for s in GOOD]
    found = {(i.segment, i.loop, i.code, i.element, i.element_code)
             for i in parse_835(body).body.issues}
    assert found == {("CLP", "2100", "8", 2, "7"), ("CAS", "2110", "8", 1, "7")}


def test_strict_answers_a_broken_835_with_ik3_naming_the_loop():
    body = [s for s in GOOD if not s.startswith("NM1*QC")] + ["LQ*HE*N130", "LQ*HE*M1",
                                                             "TS3*1"]
    raw = interchange([("835", body)]).encode()
    parsed = codec.parse(raw)
    problems = codec.validate(parsed, "strict")
    reply = codec.reply(raw, parsed, Outcome(Verdict.REJECTED, tuple(problems)))
    segs = segments(reply)
    assert ["IK3", "NM1", "8", "2100", "3"] in segs  # required patient missing
    # a TS3 after the lines is the open header number's (2000), out of sequence: no
    # header number without its LX is made up for it
    assert ["IK3", "TS3", "14", "2000", "7"] in segs
    assert ["IK3", "LX", "14", "2000", "3"] not in segs
    # its three missing elements are IK4s of that one IK3, not an IK3 each
    at = segs.index(["IK3", "TS3", "14", "2000", "7"])
    assert segs[at + 1:at + 4] == [["IK4", "2", "", "1"], ["IK4", "3", "", "1"],
                                   ["IK4", "4", "", "1"]]
    assert [s[1:3] for s in segs if s[0] == "IK3"].count(["TS3", "14"]) == 1
    assert ["IK5", "R", "5"] in segs


def test_a_payer_loop_missing_is_reported_and_the_rest_still_maps(remit):
    body = [s for s in GOOD if not s.startswith(("N1*PR", "REF*2U"))]
    assert ("N1", "ST", "3") in {(i.segment, i.loop, i.code) for i in
                                 parse_835(body).body.issues}
    bundle = bundle_of(remit, interchange([("835", body)]).encode())
    checks.check_transaction(bundle)
    assert len(of_type(bundle, "ExplanationOfBenefit")) == 1


# ---- claims ------------------------------------------------------------------------------


def test_a_check_pays_three_claims_each_an_eob_with_its_patient(remit):
    bundle = bundle_of(remit, fixture("check_professional_three_claims"))
    found = eobs(bundle)
    assert set(found) == {"BH2024120100117", "BH2024120100188", "BH2024120100201"}
    first = found["BH2024120100117"]
    assert first["payment"]["type"]["coding"][0]["code"] == "CHK"
    assert first["payment"]["identifier"]["value"] == "CHK0048213"
    assert first["payment"]["amount"]["value"] == Decimal("168.40")
    assert first["created"] == "2024-12-02"  # DTM*405, not BPR16
    assert {t["category"]["coding"][0]["code"]: t["amount"]["value"] for t in first["total"]} \
        == {"submitted": 250, "benefit": Decimal("168.40"), "memberliability": 40}
    line = first["item"][0]
    assert adjudications(line["adjudication"]) == [
        ("submitted", None, 180), ("eligible", None, Decimal("158.40")),
        ("benefit", None, Decimal("118.40")), ("CO", "45", Decimal("21.60")),
        ("PR", "3", 40)]
    assert line["adjudication"][3]["reason"]["coding"][0]["system"] == CARC
    assert line["adjudication"][3]["category"]["coding"][0]["system"] == GROUP
    assert line["servicedDate"] == "2024-11-12"
    rendering = of_type(bundle, "Practitioner")[0]
    assert first["careTeam"][0]["provider"]["reference"] == f"urn:uuid:{rendering['id']}"


def test_a_dependent_without_an_id_is_not_merged_with_the_subscriber(remit):
    bundle = bundle_of(remit, fixture("check_professional_three_claims"))
    found = eobs(bundle)
    subscriber = found["BH2024120100117"]["patient"]["reference"]
    child = found["BH2024120100201"]["patient"]["reference"]
    assert subscriber != child
    assert found["BH2024120100201"]["insurance"][0]["coverage"]["identifier"]["value"] \
        == "BHH77120034"  # paid under the subscriber's member id
    patients = {p["id"]: p for p in of_type(bundle, "Patient")}
    assert patients[child.removeprefix("urn:uuid:")]["name"][0]["given"] == ["ELSA"]


def test_denied_claims_carry_carc_and_rarc(remit):
    found = eobs(bundle_of(remit, fixture("denied_claims_with_remarks")))
    denied = found["GS2412060007"]
    assert (denied["outcome"], denied["disposition"]) == ("complete", "Denied")
    first, second = denied["item"]
    assert ("CO", "50", 220) in adjudications(first["adjudication"])
    assert ("remark", "N115", None) in adjudications(first["adjudication"])
    assert ("CO", "197", 200) in adjudications(second["adjudication"])
    remark = first["adjudication"][-1]["reason"]["coding"][0]
    assert remark == {"system": RARC, "code": "N115"}
    assert adjudications(denied["adjudication"]) == [("remark", "MA130", None)]  # MOA03
    assert denied["payment"]["amount"]["value"] == 0
    assert first["quantity"]["value"] == 2
    assert first["modifier"][0]["coding"][0]["code"] == "GP"
    lapsed = found["GS2412060008"]
    assert "item" not in lapsed
    assert adjudications(lapsed["adjudication"]) == [("PR", "27", 150),
                                                     ("remark", "N30", None)]


def test_a_reversal_is_its_own_eob_beside_the_correction(remit):
    found = eobs(bundle_of(remit, fixture("eft_four_claims_reversal_plb")))
    reversal, correction = found["CMH24310077"], found["CMH24338003"]
    assert reversal["id"] != correction["id"]
    assert reversal["disposition"] == "Reversal of previous payment"
    assert reversal["payment"]["amount"]["value"] == -210
    assert reversal["claim"] == correction["claim"] == {
        "identifier": {"system": "urn:conduit:id:x12:1790012348", "value": "RBO-5402"}}
    assert found["CMH24338002"]["outcome"] == "complete"
    assert ("OA", "23", Decimal("143.80")) in adjudications(
        found["CMH24338002"]["item"][0]["adjudication"])


def test_the_reconciliation_adds_up_to_the_payment_with_plb(remit):
    bundle = bundle_of(remit, fixture("eft_four_claims_reversal_plb"))
    recon = of_type(bundle, "PaymentReconciliation")[0]
    assert recon["paymentAmount"] == {"value": Decimal("414.85"), "currency": "USD"}
    assert recon["paymentIdentifier"]["value"] == "EFT90312458"
    assert recon["paymentDate"] == "2024-12-05"
    total = sum(d["amount"]["value"] for d in recon["detail"])
    assert total == recon["paymentAmount"]["value"]
    adjustments = [d for d in recon["detail"]
                   if d["type"]["coding"][0]["code"] == "adjustment"]
    assert [(d["type"]["coding"][1]["code"], d["amount"]["value"]) for d in adjustments] \
        == [("L6", Decimal("3.15")), ("WO", -120), ("FB", Decimal("45.50"))]
    interest_for = adjustments[0]["response"]["reference"]
    assert interest_for == f"urn:uuid:{eobs(bundle)['CMH24338001']['id']}"
    assert "response" not in adjustments[1]  # recovers a claim paid in an earlier 835


@pytest.mark.parametrize("case", FIXTURES.output_cases)
def test_every_remittance_reconciles(remit, case):
    """The claims' payments and the PLB adjustments add up to BPR02 in every fixture."""
    recon = of_type(bundle_of(remit, fixture(case)), "PaymentReconciliation")[0]
    assert sum(d["amount"]["value"] for d in recon.get("detail", [])) \
        == recon["paymentAmount"]["value"]


def test_institutional_claims_read_as_such(remit):
    found = eobs(bundle_of(remit, fixture("institutional_inpatient_and_outpatient")))
    inpatient, outpatient = found["MAH2412060001"], found["MAH2412060002"]
    for eob, sub in ((inpatient, "inpatient"), (outpatient, "outpatient")):
        assert eob["type"]["coding"][0]["code"] == "institutional"
        assert eob["subType"]["coding"][0]["code"] == sub
    assert inpatient["billablePeriod"] == {"start": "2024-11-28", "end": "2024-12-02"}
    assert ("eligible", None, 11650) in adjudications(inpatient["total"])
    assert ("remark", "MA01", None) in adjudications(inpatient["adjudication"])  # MIA05
    assert [i["revenue"]["coding"][0]["code"] for i in outpatient["item"]] == ["0450", "0300"]


def test_odd_values_are_left_out_never_failing_the_set(remit):
    body = [s.replace("CAS*CO*45*10", "CAS*CO*45*TEN").replace(
        "DTM*472*20241112", "DTM*472*20241131") for s in GOOD]
    bundle = bundle_of(remit, interchange([("835", body)]).encode())
    checks.check_transaction(bundle)
    line = of_type(bundle, "ExplanationOfBenefit")[0]["item"][0]
    assert ("CO", "45", None) in adjudications(line["adjudication"])
    assert "servicedDate" not in line


def test_a_claim_sent_twice_in_one_set_is_two_eobs(remit):
    claim = GOOD[6:]
    bundle = bundle_of(remit, interchange([("835", GOOD + claim)]).encode())
    checks.check_transaction(bundle)
    assert len(of_type(bundle, "ExplanationOfBenefit")) == 2


def test_currency_comes_from_cur(remit):
    body = [*GOOD[:2], "CUR*PR*CAD", *GOOD[2:]]
    eob = of_type(bundle_of(remit, interchange([("835", body)]).encode()),
                  "ExplanationOfBenefit")[0]
    assert {t["amount"]["currency"] for t in eob["total"]} == {"CAD"}


def test_a_re_sent_835_updates_the_same_resources(remit):
    first = bundle_of(remit, fixture("check_professional_three_claims"))
    text = fixture("check_professional_three_claims").replace(b"000004711", b"000004799")
    again = bundle_of(remit, text)
    assert [e["fullUrl"] for e in first["entry"]] == [e["fullUrl"] for e in again["entry"]]


def test_a_set_that_is_not_an_835_fails_naming_st01(remit):
    checks.check_error(remit, fixture("eligibility_270_not_835_error"), "ST01",
                       phi=["LINDQVIST", "BHH77120034"])


def test_fixture_folder_is_named_for_the_x12_codec():
    assert Path(FIXTURES.folder).is_dir() and X12Codec.extensions[0] == ".x12"


def _body(case: str) -> list[str]:
    """A fixture's set body (BPR..the last segment before SE) as * segments."""
    return [seg.text().replace(seg.delimiters.element, "*")
            for seg in codec.parse(fixture(case)).body.segments[1:-1]]


@pytest.mark.parametrize("case", FIXTURES.output_cases)
def test_any_one_segment_missing_or_emptied_maps_or_fails_cleanly(remit, case):
    """Real senders leave things out: each segment dropped, or emptied to its id, still
    gives a valid Bundle (or a MappingError naming a field), never a crash."""
    body = _body(case)
    for index in range(len(body)):
        for broken in (body[:index] + body[index + 1:],
                       [*body[:index], body[index].split("*")[0], *body[index + 1:]]):
            raw = interchange([("835", broken)]).encode()
            try:
                out = run(remit, raw)
            except MappingError as error:
                assert error.field, str(error)
                continue
            assert isinstance(out, bytes)
            checks.check_transaction(json.loads(out))


def test_dental_pharmacy_forwarded_and_predetermination_claims(remit):
    """A Medicaid remit in the ! { \\ ' style: two header numbers, dental (ADA) and
    pharmacy (NDC) lines, a claim forwarded to another payer and a predetermination."""
    raw = fixture("medicaid_dental_pharmacy_forwarded_predetermination")
    assert [lx.value("LX01") for lx in codec.parse(raw).body.tree.all("2000")] == ["1", "2"]
    found = eobs(bundle_of(remit, raw))
    kinds = {k: (e["type"]["coding"][0]["code"], e["use"], e["outcome"])
             for k, e in found.items()}
    assert kinds == {"ME24344001": ("oral", "claim", "complete"),
                     "ME24344002": ("oral", "claim", "partial"),
                     "ME24344003": ("pharmacy", "claim", "complete"),
                     "ME24344004": ("oral", "predetermination", "complete")}
    drug = found["ME24344003"]["item"][0]
    assert drug["productOrService"]["coding"][0] == {
        "system": "http://hl7.org/fhir/sid/ndc", "code": "00093715301"}
    assert drug["quantity"]["value"] == 30
    assert ("remark", "75", None) in adjudications(drug["adjudication"])  # LQ*RX
    tooth = found["ME24344001"]["item"][1]["productOrService"]["coding"][0]
    assert tooth == {"system": "http://www.ada.org/cdt", "code": "D1110"}
