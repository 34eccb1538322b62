"""A 4010 (or older) functional group is not 5010: refused with AK9 R 2 (functional
group version not supported) and an analyst text naming the version, never read as a
5010 set that the 837 mapping then fails on."""

from __future__ import annotations

import pytest

from engine.errors import ParseError
from engine.formats.x12 import X12Codec
from engine.message import Outcome, Verdict
from tests.unit.test_mapping_x12_837 import HEAD, SUBSCRIBER
from tests.unit.test_x12_codec import interchange, segments

codec = X12Codec()


def claim_4010(isa12: str = "00401", isa11: str = "U") -> bytes:
    text = interchange([("837", HEAD + SUBSCRIBER)], version="004010X098A1")
    return text.replace("*^*00501*", f"*{isa11}*{isa12}*", 1).encode()


@pytest.mark.parametrize("isa12", ["00401", "00501"])
def test_a_4010_claim_is_refused_naming_its_version(isa12):
    with pytest.raises(ParseError) as error:
        codec.parse(claim_4010(isa12))
    assert (error.value.segment, error.value.code) == ("GS", "2")
    assert "004010X098A1 is X12 4010, not 5010" in error.value.message


def test_its_999_rejects_the_group_as_a_version_not_supported():
    raw = claim_4010()
    reply = codec.reply(raw, None, Outcome(Verdict.REJECTED))
    said = {s[0]: s for s in segments(reply)}
    assert said["AK1"][3] == "004010X098A1"
    assert said["IK5"][1] == "R"
    assert said["AK9"][1:] == ["R", "1", "1", "0", "2"]


def test_5010_and_later_releases_are_not_refused_for_their_version():
    five = interchange([("837", HEAD + SUBSCRIBER)]).encode()
    assert codec.parse(five).version == "005010"
    later = interchange([("837", HEAD + SUBSCRIBER)], version="006020X313").encode()
    assert codec.parse(later).version == "006020"


def test_a_partners_4010_997_is_still_read_back():
    """A 997 is an answer to what we sent, read for its verdicts, never mapped."""
    body = ["AK1*HC*17", "AK2*837*0001", "AK5*A", "AK9*A*1*1*1"]
    text = "~".join([
        "ISA*00*          *00*          *ZZ*PAYER          *ZZ*SUBMITTER      *240101*1200*U"
        "*00401*000000301*0*P*:", "GS*FA*PAYER*SUBMITTER*20240101*1200*301*X*004010",
        "ST*997*0001", *body, f"SE*{len(body) + 2}*0001", "GE*1*301",
        "IEA*1*000000301"]) + "~"
    parsed = codec.parse(text.encode())
    assert (parsed.message_type, parsed.version) == ("997", "004010")
