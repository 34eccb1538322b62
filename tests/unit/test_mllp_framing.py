"""MLLP framing: frames split across reads, junk between frames, oversize frames."""

from engine.connectors.mllp_framing import KEPT_OF_OVERSIZE, Framer, wrap


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


def test_in_frame_tracks_an_unfinished_frame():
    framer = Framer(1024)
    framer.feed(b"\x0bMSH|partial")
    assert framer.in_frame
    framer.feed(b"\x1c\x0d")
    assert not framer.in_frame
