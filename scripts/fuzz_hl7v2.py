"""Coverage-guided fuzzing of the HL7v2 codec and MLLP framing with atheris (libFuzzer).

The hypothesis fuzz tests (tests/unit/test_hl7v2_fuzz.py, test_mllp_framing.py) run in
the normal suite with a few hundred inputs each; this runs the same contracts for as
long as you like, guided by coverage, for a deeper search before a release:

    .venv/bin/pip install atheris        # optional; not a dependency of the engine
    .venv/bin/python scripts/fuzz_hl7v2.py -max_total_time=300 [corpus_dir]

Contract checked on every input: `parse` raises nothing but ParseError; `reply` (with the
parse, and on the salvage path) and `application_reply` give b"" or a readable ACK;
`read_reply` gives a Delivery; `split_batch` gives None, a Batch or a ParseError, and a
Batch's reply splits again as a batch; the MLLP Framer gives the same frames whether the
bytes arrive at once or in two pieces. Any other exception is a crash libFuzzer reports
with the input that caused it.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from engine.connectors.mllp_framing import Framer
    from engine.errors import ParseError
    from engine.formats.hl7v2 import Hl7Message, Hl7v2Codec
    from engine.formats.hl7v2.charsets import decode_text
    from engine.message import Fail, Outbound, Outcome, Problem, Retry, Sent, Verdict

CODEC = Hl7v2Codec()
SENT = Outbound(1, "m", "c", "d", b"", "x-application/hl7-v2+er7", "C1")
OUTCOMES = [Outcome(Verdict.ACCEPTED),
            Outcome(Verdict.ERROR, (Problem("bad |^~\\& value", code="102"),)),
            Outcome(Verdict.REJECTED, (Problem("unreadable", code="100"),))]


def _check_ack(answer: bytes) -> None:
    if answer:
        Hl7Message.parse(decode_text(answer))


def one_input(data: bytes) -> None:
    """Run every contract on `data`; an assertion or unexpected exception is a finding."""
    outcome = OUTCOMES[data[0] % 3] if data else OUTCOMES[0]
    try:
        parsed = CODEC.parse(data)
    except ParseError:
        parsed = None
    for p in (parsed, None):
        _check_ack(CODEC.reply(data, p, outcome))
        _check_ack(CODEC.application_reply(data, p, outcome))
    assert isinstance(CODEC.read_reply(data, SENT), Sent | Retry | Fail)
    try:
        batch = CODEC.split_batch(data)
    except ParseError:
        batch = None
    if batch is not None:
        replies = [CODEC.reply(m, None, outcome) for m in batch.messages]
        assert CODEC.split_batch(CODEC.batch_reply(batch, replies)) is not None
    cut = data[0] % (len(data) + 1) if data else 0
    whole = Framer(256).feed(data)
    split = Framer(256)
    assert split.feed(data[:cut]) + split.feed(data[cut:]) == whole or any(
        f.truncated for f in whole)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
