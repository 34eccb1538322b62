"""The loop structure reader: segments land in the guide's loops whatever the sender's
style, and what breaks the structure is said in 999 terms (IK3 loop and code, IK4
element and code), refused in strict mode and accepted with errors noted in lenient."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.formats.x12 import X12Codec
from engine.formats.x12.sets import known_sets
from engine.message import MessageStatus, Outcome, Verdict
from tests.unit.test_channel import meta
from tests.unit.test_x12_codec import STYLES, interchange, segments, style

FIXTURES = Path(__file__).parent.parent / "fixtures" / "x12"
codec = X12Codec()

INQUIRY = [
    "BHT*0022*13*REQ0001*20261203*1015",
    "HL*1**20*1", "NM1*PR*2*CMS*****PI*CMS",
    "HL*2*1*21*1", "NM1*1P*2*HARBORSIDE MEDICAL GROUP*****XX*1234567893",
    "HL*3*2*22*1", "TRN*1*93175-012547*9877281234",
    "NM1*IL*1*DOE*JANE****MI*1EG4TE5MK73", "DMG*D8*19450517*F", "DTP*291*D8*20261203",
    "EQ*30",
    "HL*4*3*23*0", "NM1*03*1*DOE*TIMMY", "DMG*D8*20150304*M", "EQ*35", "EQ*1",
]


def parse(body: list[str], kind: str = "270"):
    return codec.parse(interchange([(kind, body)]).encode())


@pytest.mark.parametrize("name", sorted(STYLES))
def test_loops_are_the_guides_in_every_style(name):
    parsed = codec.parse(style(interchange([("270", INQUIRY)]), *STYLES[name]))
    tree = parsed.body.tree
    assert parsed.body.issues == []
    assert [n.id for n in tree.walk()] == [
        "ST", "2000A", "2100A", "2000B", "2100B", "2000C", "2100C", "2110C", "2000D",
        "2100D", "2110D", "2110D"]
    subscriber = tree.first("2000C")
    assert subscriber.first("2100C").value("NM109") == "1EG4TE5MK73"
    assert subscriber.first("2100C").value("DTP[291]03") == "20261203"
    dependent = subscriber.first("2000D")
    assert dependent.first("2100D").value("NM103") == "DOE"
    assert [eq.value("EQ01") for eq in dependent.all("2110D")] == ["35", "1"]


def test_a_second_subscriber_opens_a_second_loop_not_a_nested_one():
    body = [*INQUIRY[:11], "HL*4*2*22*0", "NM1*IL*1*ROE*RICHARD****MI*W2233445566", "EQ*30"]
    tree = parse(body).body.tree
    receiver = tree.first("2000B")
    assert [s.first("2100C").value("NM109") for s in receiver.kids("2000C")] == [
        "1EG4TE5MK73", "W2233445566"]


def test_a_271_with_benefits_and_related_entities_between_ls_and_le():
    parsed = codec.parse((FIXTURES / "271_pipe_dollar.x12").read_bytes())
    tree = parsed.body.tree
    assert parsed.body.issues == []
    benefits = tree.all("2110C")
    assert [b.value("EB01") for b in benefits] == ["1", "B", "C", "G"]
    assert benefits[1].value("EB07") == "25"
    assert benefits[3].first("2120C").value("PER04") == "8005551212"
    assert [s.id for s in benefits[3].segments] == ["EB", "LS", "LE"]


def issue_codes(body: list[str], kind: str = "270") -> list[tuple[str, str, str]]:
    return [(i.segment, i.loop, i.code) for i in parse(body, kind).body.issues]


def test_a_loop_whose_opening_segment_is_missing_is_read_all_the_same():
    body = [s for s in INQUIRY if not s.startswith("NM1*IL")]
    assert issue_codes(body) == [("NM1", "2100C", "3")]
    name = parse(body).body.tree.first("2100C")
    assert name.value("DMG02") == "19450517" and name.kids("2110C")


def test_a_required_loop_missing_is_ik3_3_in_the_loop_that_lacks_it():
    body = [s for s in INQUIRY if not s.startswith(("NM1*IL", "DMG", "DTP", "EQ*30"))]
    assert issue_codes(body) == [("NM1", "2000C", "3")]


def test_an_unexpected_segment_is_ik3_2_and_kept_where_it_came():
    body = [*INQUIRY[:8], "CLM*A37YH556*500", *INQUIRY[8:]]
    assert issue_codes(body)[:1] == [("CLM", "2100C", "1")]
    body = [*INQUIRY[:3], "DMG*D8*19450517*F", *INQUIRY[3:]]  # a DMG on the payer
    found = parse(body).body
    assert [(i.segment, i.loop, i.code, i.position) for i in found.issues] == [
        ("DMG", "2100A", "2", 5)]
    assert found.tree.first("2100A").segs("DMG")  # not dropped


def test_repeats_over_the_limit_are_ik3_5():
    body = INQUIRY[:9] + ["DTP*291*D8*20261203"] * 3 + INQUIRY[10:]
    assert ("DTP", "2100C", "5") in issue_codes(body)


def test_element_problems_are_ik4_with_the_element_and_its_code():
    body = ["BHT*0022*99*REQ0001*20261203*1015", *INQUIRY[1:]]
    issue = parse(body).body.issues[0]
    assert (issue.segment, issue.element, issue.element_code) == ("BHT", 2, "7")
    body = [*INQUIRY[:6], "HL*3*2**1", *INQUIRY[7:]]  # HL03 empty: the level is unknown
    assert parse(body).body.issues


def test_issue_texts_name_loops_and_elements_never_values():
    body = [*INQUIRY[:8], "CLM*A37YH556*500", *INQUIRY[8:]]
    for issue in parse(body).body.issues:
        assert "A37YH556" not in issue.text and "DOE" not in issue.text


def test_strict_rejects_with_ik3_ik4_and_lenient_accepts_with_errors_noted():
    raw = interchange([("270", ["BHT*0022*99*REQ0001*20261203*1015", *INQUIRY[1:]])])
    parsed = codec.parse(raw.encode())
    strict = codec.validate(parsed, "strict")
    assert strict and all(p.severity == "E" for p in strict)
    rejected = codec.reply(raw.encode(), parsed, Outcome(Verdict.REJECTED, tuple(strict)))
    segs = segments(rejected)
    assert ["IK3", "BHT", "2", "", "8"] in segs
    assert ["IK4", "2", "", "7"] in segs
    assert ["IK5", "R", "5"] in segs
    lenient = codec.validate(parsed, "lenient")
    assert all(p.severity == "W" for p in lenient)
    accepted = codec.reply(raw.encode(), parsed, Outcome(Verdict.ACCEPTED, tuple(lenient)))
    assert ["IK5", "E", "5"] in segments(accepted)
    assert ["AK9", "E", "1", "1", "1"] in segments(accepted)


def test_a_set_without_a_definition_reads_and_validates_clean():
    raw = interchange([("270", ["BPR*I*100*C*CHK", "TRN*1*12345*1512345678"])])
    raw = raw.replace("ST*270", "ST*820").replace("GS*HS", "GS*RA").replace(
        "005010X279A1", "005010X218")
    parsed = codec.parse(raw.encode())
    assert parsed.message_type == "820"
    assert parsed.body.tree is None and codec.validate(parsed, "strict") == []
    assert all(d.root.trigger.id == "ST" for d in known_sets())


@pytest.mark.parametrize("validation, status, ik5", [
    ("strict", MessageStatus.REJECTED, ["IK5", "R", "5"]),
    ("lenient", MessageStatus.ACCEPTED, ["IK5", "E", "5"]),
])
async def test_a_channel_answers_structure_problems_by_its_validation(channel_env, validation,
                                                                       status, ik5):
    body = [s for s in INQUIRY if not s.startswith("NM1*IL")]
    raw = interchange([("270", body)]).encode()
    channel = channel_env.channel(None, X12Codec(), format="x12", validation=validation,
                                  source={"type": "channel", "inbox": "x12-in"})
    receipt = await channel.deliver(raw, meta(raw, "channel"))
    assert receipt.status is status
    segs = segments(receipt.replies[0])
    assert ik5 in segs
    assert ["IK3", "NM1", "9", "2100", "3"] in segs


@pytest.mark.parametrize("validation", ["strict", "lenient"])
@pytest.mark.parametrize("st01, ik502", [("850", "1"), ("83P", "6")])
async def test_a_set_no_guide_supports_is_refused_not_accepted_unchecked(
        channel_env, validation, st01, ik502):
    """An 850 (a purchase order, not a health care set) or a misspelt id cannot be
    checked against any guide: IK5 R with IK502 1 (not supported) or 6 (invalid id)."""
    raw = interchange([("270", INQUIRY)]).replace("ST*270", f"ST*{st01}").encode()
    channel = channel_env.channel(None, X12Codec(), format="x12", validation=validation,
                                  source={"type": "channel", "inbox": "x12-in"})
    receipt = await channel.deliver(raw, meta(raw, "channel"))
    assert receipt.status is MessageStatus.REJECTED
    segs = segments(receipt.replies[0])
    assert ["IK5", "R", ik502] in segs and ["AK9", "R", "1", "1", "0"] in segs
    assert not [s for s in segs if s[0] == "IK3"]


async def test_without_validation_a_set_of_any_id_is_passed_on(channel_env):
    raw = interchange([("270", INQUIRY)]).replace("ST*270", "ST*850").encode()
    channel = channel_env.channel(None, X12Codec(), format="x12", validation="off",
                                  source={"type": "channel", "inbox": "x12-in"})
    receipt = await channel.deliver(raw, meta(raw, "channel"))
    assert receipt.status is MessageStatus.ACCEPTED
    assert ["IK5", "A"] in segments(receipt.replies[0])


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.x12")), ids=lambda p: p.stem)
def test_the_sample_sets_are_sound_under_strict_validation(path):
    """Strict is our loops plus pyx12's element checks where it has a map (277CA)."""
    for message in codec.file_messages(path.read_bytes()):
        assert codec.validate(codec.parse(message), "strict") == []
