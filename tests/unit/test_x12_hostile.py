"""Broken and hostile X12: every kind of breakage the issue names gets its TA1 or 999
and an analyst's reason, and fuzzed bytes never crash the codec.

Contract checked by the fuzzing (bounded, as tests/unit/test_hl7v2_fuzz.py): `split`,
`parse` and the reading of the structure raise nothing but ParseError; `reply` always
gives b"" or an interchange that itself parses; `read_reply` always gives a Delivery.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ParseError
from engine.formats.x12 import X12Codec
from engine.message import Delivery, Outbound, Outcome, Verdict
from tests.unit.test_hl7v2_fuzz import FUZZ, time_limit
from tests.unit.test_x12_codec import CLAIM_837P, ELIGIBILITY_270, interchange, segments
from tests.unit.test_x12_structure import INQUIRY

codec = X12Codec()
GOOD = interchange([("270", INQUIRY)])


def answer(raw: bytes) -> list[list[str]]:
    """What a channel would answer: the envelope reply for a batch, else the set's."""
    try:
        envelope = codec.split(raw)
    except ParseError:
        envelope = None
    if envelope is not None:
        replies = []
        for message in envelope.messages:
            try:
                parsed = codec.parse(message)
                problems = tuple(codec.validate(parsed, "strict"))
                outcome = Outcome(Verdict.REJECTED if problems else Verdict.ACCEPTED, problems)
            except ParseError:
                parsed, outcome = None, Outcome(Verdict.REJECTED)
            replies.append(codec.reply(message, parsed, outcome))
        return segments(codec.envelope_reply(envelope, replies))
    try:
        parsed = codec.parse(raw)
        problems = tuple(codec.validate(parsed, "strict"))
        outcome = Outcome(Verdict.REJECTED if problems else Verdict.ACCEPTED, problems)
    except ParseError:
        parsed, outcome = None, Outcome(Verdict.REJECTED)
    return segments(codec.reply(raw, parsed, outcome))


def ta1_note(reply: list[list[str]]) -> str:
    return next(s[5] for s in reply if s[0] == "TA1")


def ik5(reply: list[list[str]]) -> list[str]:
    return next(s for s in reply if s[0] == "IK5")


def test_a_truncated_interchange_gets_a_ta1_ended_early():
    raw = GOOD[:GOOD.index("SE*")].encode()
    assert ta1_note(answer(raw)) == "023"


def test_counts_that_lie():
    assert ta1_note(answer(GOOD.replace("IEA*1*", "IEA*3*").encode())) == "021"
    reply = answer(GOOD.replace("GE*1*1", "GE*2*1").encode())
    assert next(s for s in reply if s[0] == "AK9")[:2] == ["AK9", "R"]
    se = next(s for s in GOOD.split("~") if s.startswith("SE*"))
    reply = answer(GOOD.replace(se, "SE*99*0001").encode())
    assert ik5(reply)[:3] == ["IK5", "R", "4"]


def test_mismatched_control_numbers():
    assert ta1_note(answer(GOOD.replace("IEA*1*000000101", "IEA*1*000000102").encode())
                    ) == "001"
    assert ik5(answer(GOOD.replace("SE*18*0001", "SE*18*0002").encode()))[:3] == [
        "IK5", "R", "3"]


def test_segments_out_of_order_are_ik3_2_with_their_loop():
    lines = GOOD.split("~")
    dmg = next(i for i, s in enumerate(lines) if s.startswith("DMG"))
    payer = next(i for i, s in enumerate(lines) if s.startswith("NM1*PR"))
    lines.insert(payer + 1, lines.pop(dmg))  # the subscriber's DMG after the payer's name
    reply = answer("~".join(lines).encode())
    assert ["IK3", "DMG", str(payer), "2100", "2"] in reply  # ST is position 1
    assert ik5(reply)[1] == "R"


@pytest.mark.parametrize("breakage", [
    lambda t: t[:106] + t[106:].replace("~", "\n"),  # the ISA says ~, the rest uses newlines
    lambda t: t[:105] + t[105:].replace("*", "|"),  # another element separator after the ISA
    lambda t: t.replace(":~", "*~", 1),  # ISA16 is the element separator
])
def test_wrong_delimiters_are_refused_never_guessed(breakage):
    reply = answer(breakage(GOOD).encode())
    assert any(s[0] == "TA1" and s[4] == "R" for s in reply) or \
        any(s[0] == "IK5" and s[1] == "R" for s in reply) or \
        any(s[0] == "AK9" and s[1] == "R" for s in reply), reply


def test_not_x12_at_all_is_a_parse_error_naming_the_isa():
    with pytest.raises(ParseError) as caught:
        codec.parse(b"MSH|^~\\&|A|B")
    assert caught.value.segment == "ISA"


SEEDS = [GOOD, interchange([("837", CLAIM_837P)]), interchange([("270", ELIGIBILITY_270)]),
         GOOD.replace("*", "|").replace("~", "\n").replace("|^|", "|{|").replace("|:\n", "|>\n")]


@st.composite
def mutated(draw) -> bytes:
    raw = bytearray(draw(st.sampled_from(SEEDS)).encode())
    for _ in range(draw(st.integers(1, 8))):
        where = draw(st.integers(0, len(raw) - 1))
        kind = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        if kind == "flip":
            raw[where] = draw(st.integers(0, 255))
        elif kind == "cut":
            del raw[where:where + draw(st.integers(1, 40))]
        elif kind == "insert":
            raw[where:where] = draw(st.sampled_from(
                [b"~", b"*", b"ISA*", b"SE*1*1~", b"HL*9*8*22*0~", b"\x00", b"\xff\xfe",
                 b"GS*HC~", b"IEA*1*1~", b":", b"^", b"\r\n"]))
        else:
            raw[where:where] = raw[where:where + draw(st.integers(1, 60))]
        if not raw:
            raw = bytearray(b"ISA")
    return bytes(raw)


@FUZZ
@given(mutated())
def test_mutated_interchanges_never_crash_the_codec(raw):
    with time_limit():
        try:
            envelope = codec.split(raw)
        except ParseError:
            envelope = None
        for message in (envelope.messages if envelope is not None else [raw]):
            try:
                parsed = codec.parse(message)
                problems = tuple(codec.validate(parsed, "strict"))
            except ParseError:
                parsed, problems = None, ()
            reply = codec.reply(message, parsed, Outcome(
                Verdict.REJECTED if problems or parsed is None else Verdict.ACCEPTED,
                problems))
            if reply:
                assert codec.split(reply) is None or reply.count(b"IEA") > 1
                segments(reply)
            sent = Outbound(1, "m", "claims", "payer", b"", "application/edi-x12",
                            "000000101-1-0001")
            assert isinstance(codec.read_reply(message, sent), Delivery)


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_crash_the_codec(raw):
    with time_limit():
        with contextlib.suppress(ParseError):
            codec.parse(raw)
        with contextlib.suppress(ParseError):
            codec.split(raw)


def test_an_isa_without_a_component_separator_gets_a_readable_ta1():
    """ISA16 left empty: the TA1 used to copy it, and its own ISA was as unreadable as
    the sender's (a fuzz example found it)."""
    raw = (b"ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*PAYER          *240101*"
           b"1200*^*00501*000000101*0*P**~GS*HS*SUBMITTER*PAYER*20240101*1200*1*X*"
           b"005010X279A1~ST*270*0001*005010X279A1~SE*2*0001~GE*1*1~IEA*1*000000101~")
    reply = codec.reply(raw, None, Outcome(Verdict.REJECTED, ()))
    assert reply.startswith(b"ISA*") and b"*P*:~TA1*000000101*" in reply
    assert codec.split(reply) is None
