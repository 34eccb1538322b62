"""A VAN or clearinghouse routing line before the ISA: read past (one line, at most 512
bytes) with a warning to the analyst, never more; the partner's 999 is the same as for
the file without it."""

from __future__ import annotations

import pytest

from engine.errors import ParseError
from engine.formats.x12 import X12Codec
from engine.formats.x12 import codec as codec_module
from engine.message import Outcome, Verdict
from tests.unit.test_x12_codec import STYLES, answer, one, segments, several, style

codec = X12Codec()
_SAID = ("TA1", "AK1", "AK2", "IK3", "IK4", "IK5", "AK9")


def said(reply: bytes) -> list[list[str]]:
    """What an answer says (its envelope's times and numbers left aside); a TA1's own
    date and time too."""
    return [s[:2] + s[4:] if s[0] == "TA1" else s for s in segments(reply) if s[0] in _SAID]
HEADER = b"$ADD$ROUTE=VAN01 FROM=SUBMITTER TO=PAYER BATCH=77120\r\n"


def _parsed_and_warnings(raw: bytes):
    parsed = codec.parse(raw)
    return parsed, codec.validate(parsed, "lenient")


def test_one_routing_line_is_read_past_with_a_warning():
    plain = one().encode()
    parsed, warnings = _parsed_and_warnings(HEADER + plain)
    assert codec.detect(HEADER + plain)
    assert (parsed.message_type, parsed.control_id) == ("270", "000000101-1-0001")
    assert [(w.severity, w.segment) for w in warnings] == [("W", "ISA")]
    assert f"{len(HEADER)} bytes before the ISA" in warnings[0].text
    assert "VAN01" not in warnings[0].text  # what the line said is not repeated
    assert codec.validate(codec.parse(plain), "lenient") == []


def test_the_999_is_the_one_the_file_without_it_gets():
    plain = one(ack="1").encode()
    accepted = Outcome(Verdict.ACCEPTED)
    with_header = said(codec.reply(HEADER + plain, codec.parse(HEADER + plain), accepted))
    assert with_header == said(codec.reply(plain, codec.parse(plain), accepted))
    assert [s[0] for s in with_header] == ["TA1", "AK1", "AK2", "IK5", "AK9"]


@pytest.mark.parametrize("header", [b"ROUTE*VAN01~", b"#VAN HDR 0042\n\n",
                                    b"X" * 500 + b"\n"])
def test_a_header_without_a_line_break_or_up_to_512_bytes(header):
    raw = header + style(one(), *STYLES["pipe-caret-newline"])
    assert codec.parse(raw).message_type == "270"


@pytest.mark.parametrize("prefix", [b"LINE ONE\nLINE TWO\n", b"X" * 600 + b"\n",
                                    b"NOT X12 AT ALL\n"])
def test_never_more_than_one_short_line(prefix):
    raw = prefix + one().encode() if b"AT ALL" not in prefix else prefix + b"GS*HS~"
    with pytest.raises(ParseError) as error:
        codec.parse(raw)
    assert error.value.segment == "ISA"
    if b"AT ALL" not in prefix:  # the analyst is told why, not just "no ISA"
        assert f"{len(prefix)} bytes come before the first ISA" in error.value.message
    assert not codec.detect(raw)
    assert codec.reply(raw, None, Outcome(Verdict.REJECTED)) == b""


def test_a_batch_keeps_the_line_on_every_set_and_is_answered_whole():
    raw = HEADER + several().encode()
    envelope = codec.split(raw)
    assert envelope is not None and not envelope.problems
    assert len(envelope.messages) == 4
    assert all(m.startswith(HEADER) for m in envelope.messages)
    assert all(codec.validate(codec.parse(m), "lenient")[0].segment == "ISA"
               for m in envelope.messages)
    assert said(answer(raw)) == said(answer(several().encode()))
    assert [s[1] for s in said(answer(raw)) if s[0] == "AK9"] == ["A", "A", "A"]


def test_a_large_batch_read_as_a_stream_too(monkeypatch):
    monkeypatch.setattr(codec_module, "STREAM_ABOVE", 100)
    raw = HEADER + several().encode()
    envelope = codec.split(raw)
    assert envelope is not None and len(envelope.messages) == 4
    assert envelope.messages[3].startswith(HEADER)
    assert codec.parse(envelope.messages[3]).message_type == "835"
