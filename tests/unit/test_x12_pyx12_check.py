"""Strict X12 validation with pyx12's 5010 maps on top of our structure definitions:
a bad date and a non-numeric amount in an 835 are refused with their IK4 codes and
coordinates (strict only), sets pyx12 has no map for are judged by our structure alone
and quietly, pyx12's own failures and false positives never refuse a set, nothing it
sees (values, names) reaches an issue text or a log, the mappings' fixtures come out
clean, and its maps are loaded once."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from engine.formats.x12 import X12Codec, pyx12_check
from engine.formats.x12.message import X12Message
from engine.formats.x12.pyx12_check import element_issues
from engine.message import Outcome, Verdict
from tests.unit.test_x12_codec import STYLES, style

codec = X12Codec()
REPO = Path(__file__).resolve().parents[2]
FIXTURES = [REPO / "mappings" / name / "fixtures" / "v1"
            for name in ("x12-835-to-fhir", "x12-834-to-fhir", "x12-837-to-fhir")]
REMIT = (FIXTURES[0] / "check_professional_three_claims.x12").read_text().replace("~\n", "~")
# What must never leave the message: the bad values and the patient's name and member id.
BAD_DATE, BAD_AMOUNT = "20261399", "25O"
SECRETS = (BAD_DATE, BAD_AMOUNT, "LINDQVIST", "MARTA", "BHH77120034", "PELLETIER")


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees the once-a-minute warnings afresh."""
    monkeypatch.setattr(pyx12_check, "_warned", {})


def broken_remit() -> str:
    """The 835 with a 13th month in its production date (DTM*405, position 5) and a
    letter O for a zero in the first claim's charge (CLP03, position 17)."""
    return REMIT.replace("DTM*405*20241202", f"DTM*405*{BAD_DATE}").replace(
        "CLP*NWF10023*1*250*", f"CLP*NWF10023*1*{BAD_AMOUNT}*")


def message(raw: bytes) -> X12Message:
    body = codec.parse(raw).body
    assert isinstance(body, X12Message)
    return body


def notes(problems: list) -> set[tuple[str, ...]]:
    return {p.where for p in problems}


@pytest.mark.parametrize("name", sorted(STYLES))
def test_strict_refuses_a_bad_date_and_amount_with_ik4_codes(name: str) -> None:
    raw = style(broken_remit(), *STYLES[name])
    parsed = codec.parse(raw)
    assert parsed.body.issues == []  # our own structure sees nothing wrong
    problems = codec.validate(parsed, "strict")
    assert notes(problems) == {("DTM", "5", "ST", "8", "2", "8"),  # IK403 8 invalid date
                               ("CLP", "17", "2100", "8", "3", "6")}  # 6 invalid character
    assert all(p.severity == "E" for p in problems)
    texts = " ".join(p.text for p in problems)
    assert "DTM02" in texts and "CLP03" in texts and "invalid date" in texts
    assert not any(secret in texts for secret in SECRETS)
    # and the sender reads it in the 999: the set rejected, IK3/IK4 per element
    reply = codec.reply(raw, parsed, Outcome(Verdict.REJECTED, tuple(problems)))
    ack = message(reply)
    assert ack.issues == [] and ack.tree is not None
    (response,) = ack.tree.all("2000")
    assert response.value("IK501") == "R"
    found = {(n.value("IK301"), n.value("IK302"), k.value("IK401"), k.value("IK403"))
             for n in response.kids("2100") for k in n.kids("2110")}
    assert found == {("DTM", "5", "2", "8"), ("CLP", "17", "3", "6")}


def test_lenient_does_not_run_pyx12() -> None:
    parsed = codec.parse(broken_remit().encode())
    assert codec.validate(parsed, "lenient") == []
    assert codec.validate(parsed, "strict") != []


def test_an_element_both_checks_find_is_reported_once() -> None:
    # CLP04 (payment) emptied: our definition and pyx12's map both call it mandatory
    raw = REMIT.replace("CLP*NWF10023*1*250*168.40*", "CLP*NWF10023*1*250**").encode()
    problems = codec.validate(codec.parse(raw), "strict")
    assert [p.where for p in problems if p.segment == "CLP"] == [
        ("CLP", "17", "2100", "8", "4", "1")]


@pytest.mark.parametrize(("fixture", "kind"), [
    (FIXTURES[2] / "837d_teeth_newline_terminator.x12", "837"),
    (FIXTURES[0] / "eligibility_270_not_835_error.x12", "270")])
def test_sets_pyx12_has_no_map_for_are_judged_by_our_structure_quietly(
        fixture: Path, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    raw = fixture.read_bytes()
    parsed = codec.parse(raw)
    assert parsed.message_type.startswith(kind)
    for _ in range(3):
        assert codec.validate(parsed, "strict") == []
    # a service date pyx12 would have refused passes: only our structure looked at the
    # set (it checks the birth date a Patient is built from, not DTP dates)
    bad = re.sub(rb"(DTP\*\d{3})\*D8\*(\d{4})\d\d", rb"\1*D8*\g<2>13", raw)
    assert bad != raw
    assert codec.validate(codec.parse(bad), "strict") == []
    assert caplog.records == []


def test_an_835_under_the_claims_group_code_does_not_crash() -> None:
    # GS01 HC (claims) carrying an 835: pyx12's own driver stops on "Map not found"
    raw = broken_remit().replace("GS*HP*", "GS*HC*").encode()
    parsed = codec.parse(raw)
    assert parsed.message_type.startswith("835")
    assert parsed.body.issues == []
    assert codec.validate(parsed, "strict") == []  # judged by our structure alone


def test_several_plb_segments_are_not_a_loop_over_its_maximum() -> None:
    # pyx12 counts each PLB as a new footer loop and reports the second one (IK304 4);
    # the fixture (| > ~ style) has two, and a third adjustment is just as ordinary
    base = (FIXTURES[0] / "eft_four_claims_reversal_plb.x12").read_text()
    segments = base.split("~")
    plb = next(s for s in segments if s.startswith("PLB|"))
    at = segments.index(plb)
    segments.insert(at, plb.replace("|20241231|", "|20241230|"))
    se = next(i for i, s in enumerate(segments) if s.startswith("SE|"))
    segments[se] = "SE|42|0001"
    for raw in (base, "~".join(segments)):
        parsed = codec.parse(raw.encode())
        assert [s.id for s in parsed.body.segments].count("PLB") >= 2
        assert parsed.body.issues == []
        assert pyx12_check.has_map(parsed.body)
        assert codec.validate(parsed, "strict") == []


def test_no_values_reach_our_logs_even_with_pyx12_at_debug(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="pyx12")  # as a careless logging config might
    caplog.set_level(logging.DEBUG, logger="pyx12.error_handler")
    pyx12_check._load.cache_clear()  # loading a map logs at DEBUG in pyx12
    parsed = codec.parse(broken_remit().encode())
    assert codec.validate(parsed, "strict") != []
    # pyx12's error handler logs each bad element with its value at ERROR; whatever
    # path of pyx12 does that, it ends at pyx12's own logger
    logging.getLogger("pyx12.error_handler").error("ELE:8 - Invalid date (%s)", BAD_DATE)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert not any(r.name.startswith("pyx12") for r in caplog.records)
    assert not any(secret in logged for secret in SECRETS)


def test_pyx12_failing_leaves_the_set_to_our_structure_and_warns_once(
        caplog: pytest.LogCaptureFixture) -> None:
    # pyx12 4 raises IndexError on a composite with more components than its map knows
    raw = broken_remit().replace("SVC*HC:99214*", "SVC*HC:99214:25:26:59:XU:A:B:C:D:E*")
    parsed = codec.parse(raw.encode())
    caplog.set_level(logging.DEBUG)
    for _ in range(3):
        assert codec.validate(parsed, "strict") == []  # the bad date goes unseen, not worse
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].name == "engine.formats.x12.pyx12_check"
    text = warnings[0].getMessage()
    assert "IndexError" in text and "835" in text
    assert not any(secret in text for secret in (*SECRETS, "99214", "XU"))


def test_a_set_over_the_size_limit_is_left_to_our_structure(
        caplog: pytest.LogCaptureFixture) -> None:
    head, rest = broken_remit().split("LX*1~", 1)
    claims, tail = rest.split("SE*47*0001~", 1)
    copies = pyx12_check.MAX_BYTES // len(claims) + 1
    body = head + "LX*1~" + claims * copies
    count = body[body.index("ST*835"):].count("~")
    raw = (body + f"SE*{count + 1}*0001~" + tail).encode()
    assert len(raw) > pyx12_check.MAX_BYTES
    caplog.set_level(logging.WARNING)
    assert element_issues(message(raw)) == []
    assert [r.getMessage() for r in caplog.records] == [
        f"set over {pyx12_check.MAX_BYTES} bytes: element checks by pyx12 skipped"]


def test_a_walk_over_the_time_limit_is_abandoned(caplog: pytest.LogCaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # the limit is checked before each segment (no signals): with no time left the walk
    # is given up at once, bad date and all
    monkeypatch.setattr(pyx12_check, "TIME_LIMIT", -1.0)
    caplog.set_level(logging.WARNING)
    parsed = codec.parse(broken_remit().encode())
    assert codec.validate(parsed, "strict") == []
    assert [r.getMessage() for r in caplog.records] == [
        "pyx12 took over -1.0 s on a set: element checks skipped"]


def _fixture_sets() -> list[tuple[str, bytes]]:
    out = []
    for folder in FIXTURES:
        for path in sorted(folder.glob("*.x12")):
            for n, part in enumerate(codec.file_messages(path.read_bytes()), start=1):
                out.append((f"{folder.parents[1].name}/{path.stem}#{n}", part))
    return out


@pytest.mark.parametrize(("name", "raw"), _fixture_sets(), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_the_mappings_fixtures_are_clean_by_pyx12(name: str, raw: bytes) -> None:
    body = message(raw)
    assert element_issues(body) == [], name


def test_maps_are_loaded_once() -> None:
    """pyx12's own driver reloads its XML per call (46-78 ms for a set this size); here
    the map is loaded once (speed is measured by scripts/bench, never asserted)."""
    body = message(broken_remit().encode())
    assert pyx12_check.has_map(body)
    element_issues(body)  # the map is loaded (or already was)
    loads = pyx12_check._load.cache_info().misses
    for _ in range(5):
        assert len(element_issues(body)) == 2
    assert pyx12_check._load.cache_info().misses == loads


def test_a_segment_only_out_of_sequence_is_noted_once_and_the_rest_still_checked() -> None:
    """A line's REF*6R before its DTP*472: ours says the DTP is out of sequence (7);
    pyx12's view of the same DTP (missing, then unrecognized) is dropped, while what it
    finds elsewhere (a unit outside SV103's codes) still refuses the set."""
    raw = (FIXTURES[2] / "837p_subscriber_is_patient.x12").read_text()
    raw = raw.replace("SV1*HC:87804*50.00*UN*1***1~DTP*472*D8*20261124~",
                      "SV1*HC:87804*50.00*UN*1***1~REF*6R*L3~DTP*472*D8*20261124~")
    raw = raw.replace("SV1*HC:J1885*45.00*UN*", "SV1*HC:J1885*45.00*XX*")
    raw = raw.replace("SE*37*", "SE*38*")
    problems = codec.validate(codec.parse(raw.encode()), "strict")
    found = {(p.where[0], p.where[3], p.where[4], p.where[5]) for p in problems}
    assert ("DTP", "7", "", "") in found
    assert ("DTP", "3", "", "") not in found and ("DTP", "1", "", "") not in found
    assert ("SV1", "8", "3", "7") in found
    assert [p.severity for p in problems if p.where[0] == "SV1"] == ["E"]
