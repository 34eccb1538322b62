"""Fuzzing the HL7v2 codec with hypothesis: arbitrary and mutated bytes never crash it.

Bounded so it runs in the normal suite: each test draws a few hundred inputs, and each
input runs under a wall-clock limit, so a hang fails the test instead of stalling it.
Contract checked: `parse` raises nothing but ParseError; `reply` and
`application_reply` (with or without a parse, the salvage path) always give a readable
ACK or b""; `read_reply` always gives a Delivery; `split_batch` gives None, a Batch or a
ParseError, and the reply to any Batch is itself a batch whose counts agree.
"""

from __future__ import annotations

import contextlib
import re
import signal
from collections.abc import Iterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import ParseError
from engine.formats.hl7v2 import Batch, Hl7Message, Hl7v2Codec
from engine.formats.hl7v2.batch import is_batch
from engine.formats.hl7v2.charsets import decode_text, sniff_wide
from engine.message import Fail, Outbound, Outcome, Problem, Retry, Sent, Verdict

codec = Hl7v2Codec()
FUZZ = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
LIMIT = 10.0  # seconds per input: a hang, not a slow run on a machine the suite loads fully


@contextlib.contextmanager
def time_limit(seconds: float = LIMIT) -> Iterator[None]:
    """Fail with TimeoutError if the block runs longer than `seconds` (a hang)."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"no answer within {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


SEEDS = [
    b"MSH|^~\\&|LAB|NORTH|EHR|SOUTH|20240102120000||ADT^A01^ADT_A01|C1|P|2.5.1\r"
    b"EVN|A01|20240102\rPID|1||777^^^NORTH^MR~88^^^SSA^SS||O\\S\\BRIEN^JO||19800101|F\r"
    b"PV1|1|I|4W^401^A\rZPI|custom|\\X0D\\|\\.br\\\r",
    b"MSH|^~\\&#|A|B|C|D|20240101||ORU^R01^ORU_R01|C2|P|2.7|||AL|ER||UNICODE UTF-8\r"
    b"PID|1||1^^^H^MR||REN\\XC3A9\\E\rOBR|1\rOBX|1|FT|X^Y||line\\.sp 2\\\\.in 3\\b\\P\\#\r",
    b"MSH$%*\\!$A$B$C$D$2024$$ADT%A08$C3$P$2.3$$$$$$8859/1\nPID$1$$9%%%H%MR\n",
    b"FHS|^~\\&|A|B|C|D|||||F1\rBHS|^~\\&|A|B|C|D|||||B1\r"
    b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|M1|P|2.5\rPID|1||1\r"
    b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|M2|P|2.5\rPID|1||2\rBTS|2\rFTS|1\r",
    b"MSH|^~\\&|A|B|C|D|2024||ADT^A\\.sp 3\\01\\F\\|C5|P|2.4|||NE|AL\rPID|1\r",
    "MSH|^~\\&|A|B|C|D|2024||ADT^A01|W1|P|2.5||||||UNICODE UTF-16\rPID|1||é\r"
    .encode("utf-16"),
]
INTERESTING = b"\x95\x85\xc2\x1b\x0e|^~\\&#\r\n\x0b\x1c\x00\xff\xc3\xa9X.0123456789ABCDEFMSHBTSFTS "


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed message with a few bytes inserted, deleted or replaced."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8) | st.integers(0, 2))):
        pos = draw(st.integers(0, len(data)))
        byte = draw(st.sampled_from(INTERESTING) | st.integers(0, 255))
        op = draw(st.sampled_from(["insert", "delete", "replace", "cut"]))
        if op == "insert":
            data.insert(pos, byte)
        elif data and op == "delete":
            del data[min(pos, len(data) - 1)]
        elif data and op == "replace":
            data[min(pos, len(data) - 1)] = byte
        elif op == "cut":
            del data[pos:]
    return bytes(data)


inputs = st.one_of(mutated(), mutated(), st.binary(max_size=600),
                   st.binary(max_size=200).map(lambda tail: b"MSH|^~\\&|" + tail))
verdicts = st.sampled_from(list(Verdict))


def _read_everything(message: Hl7Message) -> None:
    """Touch every field, repetition, component and subcomponent (runs every unescape)."""
    for segment in message:
        for number in range(1, len(segment) + 1):
            segment.value(number)
            for rep in segment.repetitions(number):
                for c in range(1, len(rep.components()) + 1):
                    rep.value(c)
                    rep.value(c, 2)


@FUZZ
@given(inputs)
def test_parse_raises_nothing_but_parse_error(raw):
    with time_limit():
        try:
            parsed = codec.parse(raw)
        except ParseError:
            return
        assert parsed.control_id and parsed.message_type
        _read_everything(parsed.body)


@FUZZ
@given(inputs, verdicts, st.booleans())
def test_reply_is_always_a_readable_ack_or_nothing(raw, verdict, salvage):
    outcome = Outcome(verdict, (Problem("bad |^~\\& value", code="102", segment="PID",
                                        field=3),) if verdict is not Verdict.ACCEPTED else ())
    with time_limit():
        parsed = None
        if not salvage:
            try:
                parsed = codec.parse(raw)
            except ParseError:
                parsed = None
        for answer, codes in ((codec.reply(raw, parsed, outcome), ("AA AE AR CA CE CR")),
                              (codec.application_reply(raw, parsed, outcome), "AA AE AR")):
            if not answer:
                continue
            ack = Hl7Message.parse(decode_text(answer))
            assert ack.value("MSA-1") in codes.split()
            assert ack.value("MSH-15") == ack.value("MSH-16") == ""


@FUZZ
@given(inputs, st.sampled_from(["", "C1", "M1"]))
def test_read_reply_always_gives_a_delivery(raw, control_id):
    sent = Outbound(1, "m", "c", "d", b"", "x-application/hl7-v2+er7", control_id)
    with time_limit():
        assert isinstance(codec.read_reply(raw, sent), Sent | Retry | Fail)


envelope = st.sampled_from([b"FHS|^~\\&|A|B|C|D|||||F1", b"BHS|^~\\&|A|B|C|D|||||B1",
                            b"BTS|1", b"BTS|x", b"BTS|", b"FTS|1", b"FTS|3", b"BHS|", b"NTE|1"])


@st.composite
def batches(draw: st.DrawFn) -> bytes:
    """Envelope segments and (mutated) messages in any order, with any line endings."""
    parts = draw(st.lists(st.one_of(envelope, mutated()), max_size=8))
    ending = draw(st.sampled_from([b"\r", b"\n", b"\r\n"]))
    return ending.join(p.rstrip(b"\r\n") for p in parts) + ending


@FUZZ
@given(st.one_of(batches(), inputs), verdicts)
def test_batches_split_and_are_answered_as_batches(raw, verdict):
    with time_limit():
        try:
            batch = codec.split_batch(raw)
        except ParseError:
            return
        if batch is None:
            return
        assert isinstance(batch, Batch)
        replies = []
        for message in batch.messages:
            try:
                parsed = codec.parse(message)
            except ParseError:
                parsed = None
            replies.append(codec.reply(message, parsed, Outcome(verdict)))
        answer = codec.batch_reply(batch, replies)
        again = codec.split_batch(answer)
        assert again is not None and not again.problems
        assert len(again.messages) == sum(1 for r in replies if r)
        assert (again.file_header is None) == (batch.file_header is None)


@FUZZ
@given(st.one_of(batches(), inputs))
def test_the_quick_single_message_test_agrees_with_the_batch_definition(raw):
    if sniff_wide(raw):
        return
    body = raw.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\n\r\x0b\x0c\x00")
    lines = [line for line in re.split(rb"\r\n|\r|\n", body) if line.strip()]
    with time_limit():
        try:
            found = codec.split_batch(raw) is not None
        except ParseError:
            found = True  # only a batch header can be unreadable
    assert found == is_batch(lines)
