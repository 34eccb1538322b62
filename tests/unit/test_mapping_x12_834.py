"""x12-834-to-fhir@1 and the 834 structure: every fixture (four clearinghouse styles)
reads into its loops with no structure problem and maps to valid FHIR; a broken 834 is
answered with IK3/IK4 naming its loops; adds, changes, terminations and audits land on
the same Patient and Coverage a receiver already holds."""

from __future__ import annotations

import json
import re

import pytest

from engine.errors import MappingError
from engine.formats.x12 import X12Codec
from engine.mapping import Skip
from engine.message import Outcome, Verdict
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, of_type, run
from tests.unit.test_x12_codec import segments

FIXTURES = checks.Fixtures("x12-834-to-fhir@1", input_ext=".x12")
codec = X12Codec()

enrollment = checks.mapping_fixture(FIXTURES.ref, accepts="x12",
                                    emits="application/fhir+json")


def _check_output(bundle: dict) -> None:
    checks.check_transaction(bundle)
    assert of_type(bundle, "Patient") and of_type(bundle, "Coverage")
    for cov in of_type(bundle, "Coverage"):
        assert cov["payor"] and cov["beneficiary"]


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=5, min_outputs=4,
                                    output=_check_output)


def fixture(case: str) -> bytes:
    return FIXTURES.input(case)


def interchange_834(body: list[str]) -> bytes:
    """One 834 in the * ^ : ~ style, counts and control numbers right."""
    isa = (f"ISA*00*{'':10}*00*{'':10}*ZZ*{'SPONSOR':<15}*ZZ*{'PAYER':<15}*241201*0930*^*"
           "00501*000000007*0*P*:")
    st = ["ST*834*0001*005010X220A1", *body]
    out = [isa, "GS*BE*SPONSOR*PAYER*20241201*0930*7*X*005010X220A1", *st,
           f"SE*{len(st) + 1}*0001", "GE*1*7", "IEA*1*000000007"]
    return ("~\n".join(out) + "~\n").encode()


HEADER = ["BGN*00*REF1*20241201*0930****2", "N1*P5*HARBORLIGHT MARINE SUPPLY INC*FI*016543210",
          "N1*IN*BLUE HARBOR HEALTH PLAN*XV*BHHP1"]
MEMBER = ["INS*Y*18*021*28*A***FT", "REF*0F*BHH77120034",
          "NM1*IL*1*LINDQVIST*MARTA****34*123456789", "DMG*D8*19850214*F",
          "HD*021**HLT*PPO GOLD*IND", "DTP*348*D8*20250101"]


def by_beneficiary(bundle: dict) -> dict[str, list[dict]]:
    names = {p["id"]: p["name"][0]["given"][0] for p in of_type(bundle, "Patient")}
    out: dict[str, list[dict]] = {}
    for cov in of_type(bundle, "Coverage"):
        out.setdefault(names[cov["beneficiary"]["reference"].removeprefix("urn:uuid:")],
                       []).append(cov)
    return out


# ---- structure ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", FIXTURES.cases)
def test_every_fixture_reads_into_its_loops_without_structure_issues(case):
    parsed = codec.parse(fixture(case))
    assert parsed.body.tree is not None
    assert parsed.body.issues == []
    assert codec.validate(parsed, "strict") == []


def test_members_and_their_loops_nest_as_the_guide_nests_them():
    tree = codec.parse(fixture("audit_full_file_two_members")).body.tree
    first, second = tree.kids("2000")
    assert [c.id for c in first.children] == ["2100A", "2300", "2300", "2700"]
    assert first.first("2750").value("N102") == "PAYROLL DEDUCTION"
    assert [c.id for c in second.children] == ["2100A", "2200", "2300"]
    change = codec.parse(fixture("change_address_and_pcp")).body.tree
    member = change.first("2000")
    assert [c.id for c in member.children] == ["2100A", "2100C", "2300", "2300"]
    health, vision = member.kids("2300")
    assert health.kids("2310")[0].value("NM101") == "P3"
    assert vision.kids("2320")[0].kids("2330")[0].value("NM101") == "IN"
    assert tree.first("1000C").value("N101") == "TV"


def test_missing_required_segments_are_ik3_in_their_loops():
    body = HEADER + [s for s in MEMBER if not s.startswith(("REF*0F", "DTP*348"))]
    issues = codec.parse(interchange_834(body)).body.issues
    assert {(i.segment, i.loop, i.code) for i in issues} == {("REF", "2000", "3"),
                                                            ("DTP", "2300", "3")}


def test_strict_answers_a_broken_834_with_ik3_ik4_naming_loops():
    body = HEADER + [s.replace("INS*Y*18*021", "INS*Y*18*099") for s in MEMBER
                     if not s.startswith("NM1*IL")]
    raw = interchange_834(body)
    parsed = codec.parse(raw)
    problems = codec.validate(parsed, "strict")
    segs = segments(codec.reply(raw, parsed, Outcome(Verdict.REJECTED, tuple(problems))))
    assert ["IK3", "INS", "5", "2000", "8"] in segs and ["IK4", "3", "", "7"] in segs
    # DMG opens the member name loop without its NM1*IL
    assert ["IK3", "NM1", "7", "2100", "3"] in segs
    assert ["IK5", "R", "5"] in segs


# ---- members and coverages ---------------------------------------------------------------


def test_a_family_add_links_dependents_to_the_subscriber(enrollment):
    bundle = bundle_of(enrollment, fixture("adds_subscriber_spouse_child"))
    patients = of_type(bundle, "Patient")
    assert [p["name"][0]["given"][0] for p in patients] == ["MARTA", "PER", "ELSA"]
    marta = patients[0]
    coverages = by_beneficiary(bundle)
    assert [c["type"]["coding"][0]["code"] for c in coverages["MARTA"]] == ["HLT", "DEN"]
    for name, relation in (("MARTA", "self"), ("PER", "spouse"), ("ELSA", "child")):
        cov = coverages[name][0]
        assert cov["relationship"]["coding"][0]["code"] == relation
        assert cov["subscriber"]["reference"] == f"urn:uuid:{marta['id']}"
        assert cov["subscriberId"] == "HMS000417"
        assert cov["status"] == "active" and cov["period"] == {"start": "2025-01-01"}
        classes = {c["type"]["coding"][0]["code"]: c["value"] for c in cov["class"]}
        assert classes == {"plan": "PPO GOLD 500", "group": "GRP88120"}
    sponsor, payer = of_type(bundle, "Organization")
    assert cov["policyHolder"]["reference"] == f"urn:uuid:{sponsor['id']}"
    assert cov["payor"] == [{"reference": f"urn:uuid:{payer['id']}"}]
    member_ids = [i for i in marta["identifier"] if i.get("type")]
    assert member_ids[0]["value"] == "HMS000417"  # REF*0F, on the subscriber only
    assert all(i["value"] != "HMS000417" for p in patients[1:] for i in p.get("identifier", []))


def test_a_termination_cancels_the_coverage_the_add_created(enrollment):
    terminated = bundle_of(enrollment, fixture("termination_subscriber_and_child"))
    text = fixture("termination_subscriber_and_child").decode()
    added_text = text.replace("^024^", "^021^").replace("DTP^349^D8^20241231~\r\n", "")
    added_text = added_text.replace("DTP^357^D8^20241231~\r\n", "")
    pieces = added_text.split("~\r\n")
    count = [p[:2] for p in pieces].index("SE") - [p[:2] for p in pieces].index("ST") + 1
    added_text = re.sub(r"SE\^\d+\^0001", f"SE^{count}^0001", added_text)
    added = bundle_of(enrollment, added_text.encode())
    before = {c["id"]: c for c in of_type(added, "Coverage")}
    after = {c["id"]: c for c in of_type(terminated, "Coverage")}
    assert set(before) == set(after)  # the same Coverages, updated
    for rid, cov in after.items():
        assert before[rid]["status"] == "active" and "end" not in before[rid].get("period", {})
        assert cov["status"] == "cancelled" and cov["period"]["end"] == "2024-12-31"
    assert [p["id"] for p in of_type(added, "Patient")] == \
        [p["id"] for p in of_type(terminated, "Patient")]


def test_a_member_terminated_by_ins03_cancels_every_coverage(enrollment):
    body = HEADER + [s.replace("INS*Y*18*021", "INS*Y*18*024") for s in MEMBER]
    covs = of_type(bundle_of(enrollment, interchange_834(body)), "Coverage")
    assert [c["status"] for c in covs] == ["cancelled"]


def test_a_change_updates_address_phone_and_coverage(enrollment):
    bundle = bundle_of(enrollment, fixture("change_address_and_pcp"))
    person = of_type(bundle, "Patient")[0]
    assert person["address"][1] == {"line": ["PO BOX 118"], "city": "LEWISTON",
                                    "state": "ME", "postalCode": "04243", "type": "postal"}
    assert person["telecom"] == [{"system": "phone", "value": "2075550144", "use": "home"}]
    assert [c["type"]["coding"][0]["code"] for c in of_type(bundle, "Coverage")] == [
        "HLT", "VIS"]
    assert {c["status"] for c in of_type(bundle, "Coverage")} == {"active"}


def test_an_audit_file_keeps_every_member_active(enrollment):
    bundle = bundle_of(enrollment, fixture("audit_full_file_two_members"))
    coverages = by_beneficiary(bundle)
    assert {k: [c["status"] for c in v] for k, v in coverages.items()} == {
        "HENRIETTA": ["active", "active"], "TOBI": ["active"]}
    assert coverages["TOBI"][0]["period"] == {"start": "2024-01-01", "end": "2026-12-31"}


def test_the_same_member_is_one_patient_from_834_and_835(enrollment):
    """An 834 subscriber and an 835 claim patient with the same member id at the same
    payer id (834 N104, 835 REF*2U) are one Patient."""
    from tests.unit.test_mapping_x12_835 import GOOD
    from tests.unit.test_x12_codec import interchange

    remit = checks.mapping("x12-835-to-fhir@1")
    claim = [s.replace("MI*MEM1", "MI*BHH77120034") for s in GOOD]
    paid = of_type(bundle_of(remit, interchange([("835", claim)]).encode()), "Patient")
    enrolled = of_type(bundle_of(enrollment, interchange_834(HEADER + MEMBER)), "Patient")
    assert paid[0]["id"] == enrolled[0]["id"]


def test_an_unreadable_date_is_left_out(enrollment):
    body = HEADER + [s.replace("DMG*D8*19850214", "DMG*D8*19850231") for s in MEMBER]
    bundle = bundle_of(enrollment, interchange_834(body))
    checks.check_transaction(bundle)
    assert "birthDate" not in of_type(bundle, "Patient")[0]


def test_a_file_without_members_is_skipped(enrollment):
    assert isinstance(run(enrollment, interchange_834(HEADER)), Skip)


def test_a_file_without_a_payer_fails_naming_n1(enrollment):
    checks.check_error(enrollment, interchange_834([HEADER[0], HEADER[1], *MEMBER]), "N1",
                       phi=["LINDQVIST", "BHH77120034", "123456789"])


def test_a_set_that_is_not_an_834_fails_naming_st01(enrollment):
    checks.check_error(enrollment, fixture("remittance_835_not_834_error"), "ST01")


def _body(case: str) -> list[str]:
    """A fixture's set body (BGN..the last segment before SE) as * segments."""
    return [seg.text().replace(seg.delimiters.element, "*")
            for seg in codec.parse(fixture(case)).body.segments[1:-1]]


@pytest.mark.parametrize("case", FIXTURES.output_cases)
def test_any_one_segment_missing_or_emptied_maps_or_fails_cleanly(enrollment, case):
    """Each segment dropped, or emptied to its id, still gives a valid Bundle, a skip or
    a MappingError naming a field, never a crash."""
    body = _body(case)
    for index in range(len(body)):
        for broken in (body[:index] + body[index + 1:],
                       [*body[:index], body[index].split("*")[0], *body[index + 1:]]):
            try:
                out = run(enrollment, interchange_834(broken))
            except MappingError as error:
                assert error.field, str(error)
                continue
            if not isinstance(out, Skip):
                checks.check_transaction(json.loads(out))


def test_a_newborn_added_alone_has_no_subscriber_reference(enrollment):
    """A dependent-only file (the subscriber is not in it) in the ! { \\ ' style: the
    Coverage names the subscriber by id only; two HDs of one line are two Coverages;
    the custodial parent and responsible person loops write no Patient."""
    raw = fixture("newborn_dependent_only_responsible_person")
    tree = codec.parse(raw).body.tree
    assert [c.id for c in tree.first("2000").children] == [
        "2100A", "2100B", "2100F", "2100G", "2300", "2300"]
    bundle = bundle_of(enrollment, raw)
    (baby,) = of_type(bundle, "Patient")
    assert baby["birthDate"] == "2024-11-22" and baby["gender"] == "unknown"
    covs = of_type(bundle, "Coverage")
    assert len({c["id"] for c in covs}) == 2
    assert all("subscriber" not in c and c["subscriberId"] == "HMS000417" for c in covs)
    assert [c["period"].get("end") for c in covs] == ["2025-12-31", "2025-02-21"]
