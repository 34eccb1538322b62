"""An 837 whose claim total (CLM02), birth date (DMG02) or gender (DMG03) cannot be read,
through a lenient channel: the claim is still mapped with what can be read, the analyst
gets a warning naming each element left out (where, never the value), and the sender's
999 accepts the set noting each element (IK5 E, IK3 8 with IK4 6, 8 or 7) instead of a
clean acceptance."""

from __future__ import annotations

import json

import pytest

from engine.events import Kind
from engine.formats.x12 import X12Codec
from engine.mapping import MappingCatalog
from engine.message import MessageStatus
from tests import mapping_checks as checks
from tests.harness import REPO
from tests.mapping_checks import of_type
from tests.unit.test_channel import Env, meta
from tests.unit.test_mapping_x12_837 import DEPENDENT, HEAD, SUBSCRIBER, raw
from tests.unit.test_x12_codec import segments

MAPPING = MappingCatalog.discover(REPO / "mappings").get("x12-837-to-fhir@1")
BIRTH, TOTAL = "19801301", "1,50.00"  # a 13th month; a thousands comma X12 never sends


def unreadable() -> bytes:
    """The subscriber's birth date and gender and the first claim's total unreadable; the
    dependent's gender in lower case."""
    subscriber = [s.replace("DMG*D8*19800101*F", f"DMG*D8*{BIRTH}*X")
                  .replace("CLM*C-1*150*", f"CLM*C-1*{TOTAL}*") for s in SUBSCRIBER]
    dependent = [s.replace("DMG*D8*20150505*F", "DMG*D8*20150505*f") for s in DEPENDENT]
    return raw(HEAD, subscriber, dependent)


def lenient_channel(env: Env):
    return env.channel(MAPPING, X12Codec(), format="x12", validation="lenient",
                       source={"type": "channel", "inbox": "claims"})


async def test_a_lenient_channel_maps_what_it_can_and_warns_where_it_left_a_value_out(
        channel_env):
    data = unreadable()
    receipt = await lenient_channel(channel_env).deliver(data, meta(data, "channel"))
    assert receipt.status is MessageStatus.ACCEPTED
    mapped = channel_env.event(receipt.message_id, Kind.MAPPED).detail
    assert [w["at"] for w in mapped["warnings"]] == [
        "DMG[1].02", "DMG[1].03", "CLM[1].02", "DMG[2].03"]
    assert "loop 2010BA, segment 14" in mapped["warnings"][0]["text"]
    assert "Claim.total" in mapped["warnings"][2]["text"]
    output, = [o for _, _, o in channel_env.store.open_outputs(receipt.message_id)]
    bundle = json.loads(output)
    first, second = of_type(bundle, "Claim")
    assert "total" not in first and len(first["item"]) == 2  # the rest of the claim maps
    assert second["total"]["value"] == 75
    subscriber = next(p for p in of_type(bundle, "Patient")
                      if p["name"][0]["given"] == ["ADA"])
    assert "birthDate" not in subscriber and "gender" not in subscriber
    dependent = next(p for p in of_type(bundle, "Patient")
                     if p["name"][0]["given"] == ["CORA"])
    assert dependent["birthDate"] == "2015-05-05" and "gender" not in dependent
    answer = segments(receipt.replies[0])
    notes = [s[1:] for s in answer if s[0] in ("IK3", "IK4")]
    assert ["DMG", "14", "2010", "8"] in notes and ["CLM", "16", "2300", "8"] in notes
    assert {tuple(s) for s in notes if len(s) == 3} == {
        ("2", "", "8"), ("3", "", "7"), ("2", "", "6")}
    assert ["IK5", "E", "5"] in answer


async def test_no_warning_names_the_value_it_could_not_read(channel_env):
    data = unreadable()
    receipt = await lenient_channel(channel_env).deliver(data, meta(data, "channel"))
    said = json.dumps([e.detail for e in channel_env.events]) + \
        " ".join(p.text for p in receipt.problems)
    for value in (BIRTH, TOTAL, "QUILL", "M100"):
        assert value not in said


def test_a_strict_channel_refuses_such_a_claim_naming_the_elements():
    codec = X12Codec()
    problems = codec.validate(codec.parse(unreadable()), "strict")
    wrong = {(p.segment, p.field, p.where[5]) for p in problems if p.severity == "E"}
    assert {("DMG", 2, "8"), ("DMG", 3, "7"), ("CLM", 2, "6")} <= wrong


@pytest.mark.parametrize("case", checks.Fixtures("x12-837-to-fhir@1", input_ext=".x12").cases)
def test_a_claim_whose_values_read_gets_no_warning(case):
    source = REPO / "mappings" / "x12-837-to-fhir" / "fixtures" / "v1" / f"{case}.x12"
    if source.with_suffix(".error").exists():
        pytest.skip("the mapping refuses this set")
    assert checks.warnings_of(MAPPING, source.read_bytes()) == []


def fixture(mapping: str, case: str) -> str:
    return (REPO / "mappings" / mapping / "fixtures" / "v1" / f"{case}.x12").read_text()


@pytest.mark.parametrize(("ref", "case", "good", "bad", "at"), [
    ("x12-834-to-fhir@1", "adds_subscriber_spouse_child", "DMG*D8*19850214*F*M",
     "DMG*D8*19850231*Q*M", "DMG[1]"),
    ("x12-270-to-fhir@1", "cms_hets_subscriber_rd8", "DMG*D8*19480211*F",
     "DMG*D8*19480231*Q", "DMG[1]"),
])
def test_enrollment_and_eligibility_warn_and_note_a_person_left_without_them(
        ref, case, good, bad, at):
    """The same rule for the 834 member and the 270 subscriber a Patient is built from:
    the lenient 999 notes the elements (IK4 8 and 7) and the mapping warns."""
    raw = fixture(ref.split("@")[0], case)
    assert good in raw
    data = raw.replace(good, bad).encode()
    codec = X12Codec()
    problems = codec.validate(codec.parse(data), "lenient")
    assert {(p.segment, p.field, p.where[5]) for p in problems} == {
        ("DMG", 2, "8"), ("DMG", 3, "7")}
    mapping = MappingCatalog.discover(REPO / "mappings").get(ref)
    assert [w.split(":")[0] for w in checks.warnings_of(mapping, data)] == [
        f"{at}.02", f"{at}.03"]
    assert checks.warnings_of(mapping, raw.encode()) == []
