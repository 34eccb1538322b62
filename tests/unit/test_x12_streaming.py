"""Large interchanges are read in one streaming pass (envelope checks in constant
memory) and their sets made one at a time, with the same sets and the same answers as
a small one read whole."""

from __future__ import annotations

import tracemalloc

import pytest

from engine.formats.x12 import X12Codec
from engine.formats.x12 import codec as codec_module
from engine.message import Outcome, Verdict
from tests.unit.test_x12_codec import CLAIM_837P, STYLES, interchange, several, style

codec = X12Codec()


@pytest.mark.parametrize("name", sorted(STYLES))
def test_streamed_sets_are_the_sets_read_whole(name, monkeypatch):
    raw = style(several(), *STYLES[name])
    whole = codec.split(raw)
    monkeypatch.setattr(codec_module, "STREAM_ABOVE", 0)
    streamed = codec.split(raw)
    # the same sets (a streamed set keeps the sender's own line breaks)
    assert [_facts(m) for m in streamed.messages] == [_facts(m) for m in whole.messages]
    assert streamed.problems == whole.problems == []
    replies = [codec.reply(m, None, _accepted()) for m in streamed.messages]
    assert codec.envelope_reply(streamed, replies).count(b"IK5") == 4


@pytest.mark.parametrize("breakage, code", [
    (("GE*1*1", "GE*3*1"), "5"),  # a group count that lies
    (("IEA*1*000000101", "IEA*1*000000999"), "001"),  # an interchange number that differs
])
def test_streamed_envelope_problems_are_found_before_any_set(breakage, code, monkeypatch):
    raw = interchange([("837", CLAIM_837P)]).replace(*breakage).encode()
    whole = codec.split(raw)
    monkeypatch.setattr(codec_module, "STREAM_ABOVE", 0)
    streamed = codec.split(raw)
    assert [p.code for p in streamed.problems] == [p.code for p in whole.problems] == [code]


def big_batch(sets: int, claims: int) -> bytes:
    """One interchange of one group of `sets` 837P sets of `claims` claims each, the
    way clearinghouses batch (the 837 guides advise at most 5,000 claims a set)."""
    subscriber = CLAIM_837P[5:9]
    claim = CLAIM_837P[9:]
    body = CLAIM_837P[:5] + [
        seg.replace("HL*2*1*22*0", f"HL*{n + 2}*1*22*0") for n in range(claims)
        for seg in (*subscriber, *claim)]
    return interchange([("837", body)] * sets).replace("~", "~\n").encode()


def peak_while_taken(raw: bytes) -> int:
    """Peak traced memory while `raw` is split and every set parsed, one at a time."""
    tracemalloc.start()
    envelope = codec.split(raw)
    for message in envelope.messages:
        assert codec.parse(message).message_type == "837P"
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert envelope.problems == []
    return peak


def test_memory_stays_flat_while_a_large_batch_is_taken_set_by_set(monkeypatch):
    monkeypatch.setattr(codec_module, "STREAM_ABOVE", 0)  # stream small batches too
    small, large = big_batch(10, 150), big_batch(80, 150)
    assert len(large) > 7 * len(small)
    # eight times the batch, the same memory: the envelopes cost a few hundred bytes a
    # set, and only one set is read at a time
    assert peak_while_taken(large) < 1.3 * peak_while_taken(small)


def _facts(message: bytes) -> tuple:
    parsed = codec.parse(message)
    return parsed.control_id, parsed.message_type, parsed.body.leaves()


def _accepted() -> Outcome:
    return Outcome(Verdict.ACCEPTED)
