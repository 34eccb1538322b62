"""276/277 and 277CA are parsed and routed: each reads into its guide's loops with no
structure issue in its sender's style, a 277CA is routed as "277CA" (not as a claim
status 277), the routing fields name the patient and the set, and a broken set is told
in 999 terms."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.formats.x12 import X12Codec
from engine.formats.x12.sets import definition_for
from engine.message import Outcome, Verdict

FIXTURES = Path(__file__).parent.parent / "fixtures" / "x12"
codec = X12Codec()

CASES = {
    # file: message_type, patient_id, control_id, loops
    "276_dependent_two_claims.x12": (
        "276", "LHP55512001", "000000031-31-0001",
        ["ST", "2000A", "2100A", "2000B", "2100B", "2000C", "2100C", "2000D", "2100D",
         "2000E", "2100E", "2200E", "2200E", "2210E"]),
    "277_pipe_claim_status.x12": (
        "277", "LHP55512003", "000009120-9120-0001",
        ["ST", "2000A", "2100A", "2000B", "2100B", "2000C", "2100C", "2000D", "2100D",
         "2000E", "2100E", "2200E", "2200E", "2220E"]),
    "277ca_caret_two_patients.x12": (
        "277CA", "GP009918273", "000005001-5001-0001",
        ["ST", "2000A", "2100A", "2200A", "2000B", "2100B", "2200B", "2000C", "2100C",
         "2200C", "2000D", "2100D", "2200D", "2000D", "2100D", "2200D", "2220D"]),
}


def read(name: str):
    return codec.parse((FIXTURES / name).read_bytes())


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_style_parses_into_its_loops_with_no_structure_issue(name: str) -> None:
    kind, patient, control, loops = CASES[name]
    parsed = read(name)
    assert parsed.message_type == kind
    assert parsed.patient_id == patient
    assert parsed.control_id == control
    assert parsed.body.issues == []
    assert [node.id for node in parsed.body.tree.walk()] == loops


def test_the_276_dependent_claims_sit_under_the_dependent_with_their_lines() -> None:
    tree = read("276_dependent_two_claims.x12").body.tree
    dependent = tree.first("2000D").kids("2000E")[0]
    assert dependent.value("DMG02") == "20150322"
    claims = dependent.kids("2200E")
    assert [c.value("TRN02") for c in claims] == ["CSQ-0001-A", "CSQ-0001-B"]
    assert claims[0].value("REF[1K]02") == "LH2026110400871"
    assert claims[0].value("AMT[T3]02") == "245.00"
    assert claims[1].kids("2210E")[0].value("SVC01-2") == "99213"
    assert claims[1].kids("2210E")[0].value("REF[FJ]02") == "LINE1"


def test_the_277_statuses_read_per_claim_and_line_in_a_pipe_style() -> None:
    tree = read("277_pipe_claim_status.x12").body.tree
    claims = tree.all("2200E")
    assert [c.value("STC01-1") for c in claims] == ["F1", "A2"]
    assert claims[0].value("STC05") == "198.40"  # paid
    line = claims[1].kids("2220E")[0]
    assert (line.value("SVC01-2"), line.value("STC01-1"), line.value("REF[FJ]02")) == (
        "99213", "A2", "LINE1")


def test_the_277ca_patients_are_claims_of_their_billing_provider() -> None:
    tree = read("277ca_caret_two_patients.x12").body.tree
    assert tree.first("2200A").value("TRN02") == "20261205001"
    assert tree.first("2200B").value("QTY[AA]02") == "1"
    provider = tree.first("2000C")
    patients = provider.kids("2000D")
    assert [p.first("2100D").value("NM109") for p in patients] == [
        "GP009918273", "GP004411829"]
    rejected = patients[1].first("2200D")
    assert rejected.value("STC01-1") == "A7"  # acknowledged, rejected
    assert rejected.kids("2220D")[0].value("STC01-2") == "453"


def test_a_277ca_is_told_apart_from_a_277_by_its_convention_in_gs08_too() -> None:
    raw = (FIXTURES / "277ca_caret_two_patients.x12").read_bytes()
    without_st03 = raw.replace(b"ST^277^0001^005010X214~", b"ST^277^0001~")
    parsed = codec.parse(without_st03)
    assert parsed.message_type == "277CA"
    assert parsed.body.issues == []
    claim_status = raw.replace(b"005010X214", b"005010X212")
    assert codec.parse(claim_status).message_type == "277"


def test_each_set_has_its_own_definition() -> None:
    request = definition_for("276", "005010X212")
    status, acknowledgement = definition_for("277", "005010X212"), definition_for(
        "277", "005010X214")
    assert request is not None and request.name == "Health care claim status request"
    assert status is not None and status.convention == "005010X212"
    assert acknowledgement is not None and acknowledgement.convention == "005010X214"


def test_a_277ca_without_its_receipt_trace_is_reported_in_999_terms() -> None:
    raw = (FIXTURES / "277ca_caret_two_patients.x12").read_bytes().decode()
    lines = [line for line in raw.split("~\r\n") if not line.startswith("TRN^1^2026")]
    count = sum(1 for line in lines if line and not line.startswith(("ISA", "GS", "GE",
                                                                    "IEA")))
    lines = [f"SE^{count}^0001" if line.startswith("SE^") else line for line in lines]
    broken = "~\r\n".join(lines).encode()
    parsed = codec.parse(broken)
    issues = parsed.body.issues
    missing = [i for i in issues if i.code == "3"]
    assert [(i.segment, i.loop) for i in missing] == [("TRN", "2200A")]
    problems = codec.validate(parsed, "strict")
    assert problems and all(p.severity == "E" for p in problems)
    assert problems[0].where[:4] == ("TRN", "5", "2200A", "3")
    assert "ARROWOOD" not in " ".join(p.text for p in problems)  # names, never values
    answer = codec.reply(broken, parsed, Outcome(Verdict.REJECTED, tuple(problems)))
    assert b"AK2^277^0001^005010X214~IK3^TRN^5^2200^3~IK5^R^5~AK9^R^1^1^0~" in answer


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_sound_set_is_accepted_by_a_999_naming_its_convention(name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    answer = codec.reply(raw, codec.parse(raw), Outcome(Verdict.ACCEPTED)).decode()
    convention = codec.parse(raw).body.convention
    element = answer[3]
    assert f"AK2{element}{name[:3]}{element}0001{element}{convention}~IK5{element}A~" in \
        answer


def test_a_segment_out_of_place_is_reported_where_it_stands_and_kept() -> None:
    raw = (FIXTURES / "276_dependent_two_claims.x12").read_text()
    broken = raw.replace("AMT*T3*245.00~\n", "AMT*T3*245.00~\nDMG*D8*20150322*M~\n")
    broken = broken.replace("SE*26*0001", "SE*27*0001")
    parsed = codec.parse(broken.encode())
    position = 18  # the stray DMG, counting ST as 1
    assert [i.code for i in parsed.body.issues if i.position == position] == ["3", "3"]
    kept = [s for node in parsed.body.tree.walk() for s in node.segments if s.id == "DMG"]
    assert len(kept) == 2
    unknown = broken.replace("DMG*D8*20150322*M~\nDTP", "ZZZ*1~\nDTP")
    issue = codec.parse(unknown.encode()).body.issues[0]
    assert (issue.segment, issue.code, issue.loop) == ("ZZZ", "1", "2200E")
