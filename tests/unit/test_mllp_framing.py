"""MLLP framing: frames split across reads, junk between frames, oversize frames; and
a bounded hypothesis fuzz of the same (arbitrary bytes split at arbitrary points)."""

import contextlib
import signal
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.connectors.mllp_framing import (
    KEPT_OF_OVERSIZE,
    STANDARD,
    Frame,
    Framer,
    Markers,
    wrap,
)


def test_frames_split_anywhere_are_reassembled():
    stream = wrap(b"MSH|one") + wrap(b"MSH|two")
    for cut in range(1, len(stream)):
        framer = Framer(1024)
        frames = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
        assert [f.payload for f in frames] == [b"MSH|one", b"MSH|two"], cut


def test_junk_outside_frames_is_counted_and_dropped():
    framer = Framer(1024)
    frames = framer.feed(b"hello" + wrap(b"MSH|x") + b"\r\n" + b"zz")
    assert [f.payload for f in frames] == [b"MSH|x"]
    assert framer.discarded == 7


def test_missing_trailing_cr_is_tolerated():
    framer = Framer(1024)
    assert [f.payload for f in framer.feed(b"\x0bMSH|a\x1c")] == [b"MSH|a"]
    assert [f.payload for f in framer.feed(b"\x0dMSH|junk\x0bMSH|b\x1c\x0d")] == [b"MSH|b"]


def test_oversize_frame_is_truncated_and_reported_with_its_size():
    framer = Framer(100_000)
    big = b"MSH|" + b"x" * 200_000
    frames = framer.feed(wrap(big)[:150_000]) + framer.feed(wrap(big)[150_000:] + wrap(b"MSH|ok"))
    assert len(frames) == 2
    assert frames[0].truncated and frames[0].size == len(big)
    assert len(frames[0].payload) == KEPT_OF_OVERSIZE
    assert frames[0].payload.startswith(b"MSH|")
    assert frames[1].payload == b"MSH|ok" and not frames[1].truncated


def test_a_new_start_byte_abandons_the_unfinished_frame_before_it():
    """A sender that times out half-way and resends must not have its message merged into
    the fragment: the fragment is dropped, the resent message framed whole."""
    message = b"MSH|^~\\&|LAB|SOUTHWING|||20261207||ADT^A04|C1|P|2.5\rPID|1||123"
    framer = Framer(1024)
    frames = framer.feed(b"\x0bMSH|^~\\&|LAB|SOUTH")
    frames += framer.feed(b"WING|||2026\x0b" + message[:20])
    frames += framer.feed(message[20:] + b"\x1c\x0d")
    assert [f.payload for f in frames] == [message]
    assert framer.discarded == len(b"MSH|^~\\&|LAB|SOUTHWING|||2026")


def test_in_frame_tracks_an_unfinished_frame():
    framer = Framer(1024)
    framer.feed(b"\x0bMSH|partial")
    assert framer.in_frame
    framer.feed(b"\x1c\x0d")
    assert not framer.in_frame


# Fuzz: hypothesis-driven, bounded (a few hundred inputs, each under a wall-clock limit).

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MARKERS = [STANDARD, Markers(0x02, 0x03, None), Markers(0x0B, 0x1C, 0x0A)]


@contextlib.contextmanager
def time_limit(seconds: float = 2.0) -> Iterator[None]:
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


def feed_in_pieces(framer: Framer, stream: bytes, cuts: list[int]) -> list[Frame]:
    frames: list[Frame] = []
    last = 0
    for cut in [*sorted({min(c, len(stream)) for c in cuts}), len(stream)]:
        frames += framer.feed(stream[last:cut])
        last = cut
    return frames


@st.composite
def framed_streams(draw: st.DrawFn):
    """(markers, payloads, stream): payloads wrapped with junk (no start byte) between."""
    markers = draw(st.sampled_from(MARKERS))
    no_markers = st.binary(max_size=40).map(
        lambda b: bytes(c for c in b if c not in (markers.start, markers.end)))
    payloads = draw(st.lists(no_markers, max_size=5))
    junk = st.binary(max_size=10).map(lambda b: bytes(c for c in b if c != markers.start))
    stream = b"".join(draw(junk) + markers.wrap(p) for p in payloads) + draw(junk)
    return markers, payloads, stream


@FUZZ
@given(framed_streams(), st.lists(st.integers(0, 400), max_size=12))
def test_frames_reassemble_whatever_the_split_points(case, cuts):
    markers, payloads, stream = case
    with time_limit():
        frames = feed_in_pieces(Framer(1024, markers), stream, cuts)
    assert [f.payload for f in frames] == payloads
    assert [f.size for f in frames] == [len(p) for p in payloads]
    assert not any(f.truncated for f in frames)


@FUZZ
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=12),
       st.sampled_from(MARKERS))
def test_arbitrary_bytes_frame_the_same_in_one_piece_or_many(stream, cuts, markers):
    with time_limit():
        whole = Framer(1024, markers).feed(stream)
        pieces = feed_in_pieces(Framer(1024, markers), stream, cuts)
    assert pieces == whole
    for frame in whole:
        assert markers.end not in frame.payload


@FUZZ
@given(framed_streams(), st.lists(st.integers(0, 400), max_size=12), st.integers(1, 30))
def test_oversize_frames_are_flagged_with_their_true_size(case, cuts, max_size):
    markers, payloads, stream = case
    with time_limit():
        frames = feed_in_pieces(Framer(max_size, markers), stream, cuts)
    assert len(frames) == len(payloads)
    for frame, payload in zip(frames, payloads, strict=True):
        assert frame.size == len(payload)
        assert frame.truncated == (len(payload) > max_size)
        if not frame.truncated:
            assert frame.payload == payload
        assert frame.payload.startswith(payload[:max_size])  # the first bytes are kept


@pytest.mark.parametrize(("max_size", "content", "cuts"), [
    (100_000, b"M" * 150_000, [90_000]),  # crosses the limit in the second read
    (10, b"x" * 20, []),  # one read holding the whole frame and the next
])
def test_truncated_payload_is_the_frame_start_whatever_the_split(max_size, content, cuts):
    stream = wrap(content) + wrap(b"MSH|next")
    frames = feed_in_pieces(Framer(max_size), stream, cuts)
    assert frames[0].truncated and frames[0].size == len(content)
    assert frames[0].payload == content[:KEPT_OF_OVERSIZE]
    assert frames[1].payload == b"MSH|next"
