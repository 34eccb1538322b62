"""Segments a little out of the guide's order, as real senders send them (a
clearinghouse's reformatted 835 with the claim's CAS after its dates, a payer's 835
with the allowed amount before the dates, practice-management 837Ps with DTP or REF
after the diagnoses): each is read into the loop it belongs to, so the claims, lines,
amounts and providers a user sees are the ones sent, and the 999 accepts the set with
each such segment noted as out of sequence (IK3 code 7), never a made-up loop."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from engine.formats.x12 import X12Codec
from tests import mapping_checks as checks
from tests.mapping_checks import of_type, resolve
from tests.unit import test_mapping_x12_837 as claims837
from tests.unit.test_x12_clearinghouse_styles import channel_answer
from tests.unit.test_x12_codec import interchange, segments

FOLDER = Path(__file__).parents[1] / "fixtures" / "x12" / "segment_order"
NPI = "http://hl7.org/fhir/sid/us-npi"
codec = X12Codec()

# file -> each out-of-sequence segment the 999 names: (segment, position, loop)
OUT_OF_SEQUENCE = {
    "835_clearinghouse_claim_cas_after_dtm_crlf.x12": [("CAS", "21", "2100")],
    "835_payer_amt_before_dtm_pipe.x12": [("DTM", "16", "2100"), ("DTM", "17", "2100"),
                                          ("MOA", "18", "2100"), ("DTM", "37", "2100")],
    "837p_practice_dtp_after_hi_lf.x12": [("DTP", "21", "2300"), ("DTP", "22", "2300")],
    "837p_practice_ref_after_hi_oneline.x12": [("REF", "27", "2300"),
                                               ("REF", "28", "2300")],
    "837p_practice_dependent_crlf.x12": [("DTP", "27", "2300"), ("REF", "28", "2300"),
                                         ("DTP", "40", "2400")],
}


def bundle(name: str) -> dict:
    raw = (FOLDER / name).read_bytes()
    ref = "x12-835-to-fhir@1" if name.startswith("835") else "x12-837-to-fhir@1"
    out = checks.run(checks.mapping(ref), raw)
    assert isinstance(out, bytes), out
    return json.loads(out, parse_float=Decimal)


def amounts(entries: list[dict], category: str) -> list[Decimal]:
    return [a["amount"]["value"] for a in entries
            if a["category"]["coding"][0]["code"] == category]


def npis(resources: list[dict]) -> set[str]:
    return {i["value"] for r in resources for i in r.get("identifier", [])
            if i.get("system") == NPI}


@pytest.mark.parametrize("level", ["lenient", "strict"])
@pytest.mark.parametrize("name", sorted(OUT_OF_SEQUENCE))
def test_the_999_accepts_the_set_noting_each_segment_out_of_sequence(name, level):
    answer = segments(channel_answer((FOLDER / name).read_bytes(), level))
    noted = [s[1:] for s in answer if s[0] == "IK3"]
    assert noted == [[*where, "7"] for where in OUT_OF_SEQUENCE[name]]
    assert not [s for s in answer if s[0] == "IK4"]
    assert ["IK5", "E", "5"] in answer
    assert next(s for s in answer if s[0] == "AK9")[1] == "E"


def test_a_claim_cas_after_the_claim_dates_stays_the_claims_adjustment():
    out = bundle("835_clearinghouse_claim_cas_after_dtm_crlf.x12")
    first, second = of_type(out, "ExplanationOfBenefit")
    # three service lines and one: no line made of the claim's CAS
    assert [len(first["item"]), len(second["item"])] == [3, 1]
    assert [i["productOrService"]["coding"][0]["code"] for i in first["item"]] == [
        "99214", "36415", "80053"]
    paid_lines = sum(amounts(i["adjudication"], "benefit")[0] for i in first["item"])
    assert paid_lines == Decimal("328.16")
    assert amounts(first["total"], "benefit") == [Decimal("321.6")]
    # the claim-level sequestration is the claim's: lines paid less it is the claim paid
    header = first["adjudication"]
    assert [(a["category"]["coding"][0]["code"], a["reason"]["coding"][0]["code"],
             a["amount"]["value"]) for a in header] == [("CO", "253", Decimal("6.56"))]
    reconciliation = of_type(out, "PaymentReconciliation")[0]
    assert reconciliation["paymentAmount"]["value"] == Decimal("433.6")
    details = [d["amount"]["value"] for d in reconciliation["detail"]]
    assert sum(details) == Decimal("433.6")
    rendering = resolve(out, first["careTeam"][0]["provider"])
    assert npis([rendering]) == {"1588667788"}


def test_an_allowed_amount_before_the_claim_dates_keeps_every_service_line():
    out = bundle("835_payer_amt_before_dtm_pipe.x12")
    first, second = of_type(out, "ExplanationOfBenefit")
    assert [len(first["item"]), len(second["item"])] == [3, 1]
    assert sum(amounts(i["adjudication"], "benefit")[0] for i in first["item"]) == \
        Decimal("702.4") == amounts(first["total"], "benefit")[0]
    assert amounts(first["total"], "eligible") == [Decimal("762.4")]
    assert first["billablePeriod"] == {"start": "2026-11-10", "end": "2026-11-12"}
    assert "MA01" in [a["reason"]["coding"][0]["code"] for a in first["adjudication"]]
    assert amounts(second["item"][0]["adjudication"], "benefit") == [Decimal("350")]
    assert npis(of_type(out, "Practitioner")) == {"1245319599"}
    reconciliation = of_type(out, "PaymentReconciliation")[0]
    assert sum(d["amount"]["value"] for d in reconciliation["detail"]) == Decimal("1052.4")


def test_dates_after_the_diagnoses_keep_the_claims_lines_and_providers():
    out = bundle("837p_practice_dtp_after_hi_lf.x12")
    claim, = of_type(out, "Claim")
    assert len(claim["item"]) == 2  # no line made of the onset date
    assert sum(i["net"]["value"] for i in claim["item"]) == claim["total"]["value"] == 330
    assert not any("careTeamSequence" in i for i in claim["item"])
    rendering, = claim["careTeam"]
    assert rendering["role"]["coding"][0]["code"] == "rendering"
    assert npis([resolve(out, rendering["provider"])]) == {"1328765403"}
    assert npis([resolve(out, claim["facility"])]) == {"1730293847"}
    dates = {(s["category"]["coding"][0]["code"], s.get("timingDate"))
             for s in claim["supportingInfo"]}
    assert ("onset", "2026-11-18") in dates and ("info", "2026-10-02") in dates


def test_references_after_the_diagnoses_keep_the_claims_lines_and_providers():
    out = bundle("837p_practice_ref_after_hi_oneline.x12")
    claim, = of_type(out, "Claim")
    assert [i["productOrService"]["coding"][0]["code"] for i in claim["item"]] == [
        "99213", "87880", "J0696"]
    assert claim["insurance"][0]["preAuthRef"] == ["PA2611-0088"]
    roles = {c["role"]["coding"][0]["code"]: npis([resolve(out, c["provider"])])
             for c in claim["careTeam"]}
    assert roles == {"referring": {"1902114873"}, "rendering": {"1467559032"}}
    assert npis([resolve(out, claim["facility"])]) == {"1811042396"}
    assert resolve(out, claim["patient"])["name"][0]["given"] == ["JUNE"]


def test_a_dependents_claim_keeps_its_dates_lines_and_providers():
    out = bundle("837p_practice_dependent_crlf.x12")
    claim, = of_type(out, "Claim")
    assert resolve(out, claim["patient"])["name"][0]["given"] == ["KEMI"]
    # the second line's date came after its REF*6R: still that line's service date
    assert [(i["productOrService"]["coding"][0]["code"], i["servicedDate"])
            for i in claim["item"]] == [("97161", "2026-12-03"), ("97110", "2026-12-03")]
    assert sum(i["net"]["value"] for i in claim["item"]) == claim["total"]["value"] == 306
    rendering, = claim["careTeam"]
    assert npis([resolve(out, rendering["provider"])]) == {"1588301224"}
    assert npis([resolve(out, claim["facility"])]) == {"1245672210"}
    assert [(s["code"]["coding"][0]["code"], s["timingDate"])
            for s in claim["supportingInfo"]] == [("454", "2026-11-02")]


# ---- the reader's rules, on small sets ----------------------------------------------------

REMIT = ["BPR*I*90*C*CHK************20241203", "TRN*1*CHK1*1362847591",
         "N1*PR*BLUE HARBOR HEALTH PLAN", "REF*2U*BHHP1",
         "N1*PE*NORTHWING FAMILY MEDICINE*XX*1497758544", "LX*1",
         "CLP*PCN1*1*100*90**12*ICN1*11*1", "NM1*QC*1*DOE*JANE****MI*MEM1",
         "SVC*HC:99213*100*90**1", "DTM*472*20241112", "CAS*CO*45*10"]


def structure(body: list[str]):
    return codec.parse(interchange([("835", body)]).encode()).body


def test_names_of_one_x12_position_in_any_order_are_not_out_of_sequence():
    body = [*REMIT[:7], "NM1*IL*1*DOE*JOHN****MI*MEM0", *REMIT[7:]]
    read = structure(body)
    assert read.issues == []
    assert [n.id for n in read.tree.walk()].count("2100") == 1


def test_a_second_patient_still_opens_a_claim_whose_clp_is_missing():
    body = [*REMIT, "NM1*QC*1*ROE*RICHARD****MI*MEM2", "SVC*HC:99212*60*50**1"]
    read = structure(body)
    assert [(i.segment, i.loop, i.code) for i in read.issues] == [("CLP", "2100", "3")]
    assert len(read.tree.all("2100")) == 2


def test_a_stray_segment_is_never_handed_to_another_hierarchical_level():
    """A PRV in a claim whose rendering provider's NM1 is missing is not the billing
    provider's taxonomy (2000A, another level), which has a place for one."""
    subscriber = claims837.SUBSCRIBER
    at = subscriber.index("HI*ABK:J069*ABF:R05") + 1
    body = [*subscriber[:at], "PRV*PE*PXC*207Q00000X", *subscriber[at:]]
    read = codec.parse(claims837.raw(claims837.HEAD, body)).body
    assert read.tree.first("2000A").segs("PRV") == []
    assert "7" not in [i.code for i in read.issues]
