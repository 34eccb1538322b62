"""MLLP framing (HL7 v2 Minimal Lower Layer Protocol): <VT> message <FS><CR>.

The start byte, end byte and trailer are the standard's by default and configurable for
the odd system that uses others. Only frames; never parses. Shared by the MLLP listener,
the MLLP destination and `conduit send`. A frame over the size limit is reported with its
first bytes and its total size, so the listener can reject it and keep the connection
usable.
"""

from __future__ import annotations

from typing import NamedTuple

START = 0x0B  # <VT>
END = 0x1C  # <FS>
CR = 0x0D
KEPT_OF_OVERSIZE = 64 * 1024


class Markers(NamedTuple):
    """The bytes around a frame: start, end, and the optional trailer after the end."""

    start: int = START
    end: int = END
    trailer: int | None = CR

    def wrap(self, payload: bytes) -> bytes:
        tail = bytes([self.end]) if self.trailer is None else bytes([self.end, self.trailer])
        return bytes([self.start]) + payload + tail


STANDARD = Markers()


def wrap(payload: bytes, markers: Markers = STANDARD) -> bytes:
    return markers.wrap(payload)


class Frame(NamedTuple):
    payload: bytes
    size: int  # bytes in the frame as sent; larger than len(payload) when truncated
    truncated: bool


class Framer:
    """Incremental frame reader: feed bytes as they arrive, take complete frames out.

    Bytes outside a frame (before <VT>) are counted in `discarded` and dropped, and so is
    an unfinished frame when a new <VT> starts another. A frame ended by <FS> without the
    trailing <CR> is accepted (some senders omit it).
    """

    __slots__ = ("_buf", "_end", "_in_frame", "_oversize", "_skip_cr", "_start", "_total",
                 "_trailer", "discarded", "max_size")

    def __init__(self, max_size: int, markers: Markers = STANDARD) -> None:
        self.max_size = max_size
        self._start = bytes([markers.start])
        self._end = bytes([markers.end])
        self._trailer = markers.trailer
        self._buf = bytearray()
        self._in_frame = False
        self._oversize = False
        self._total = 0
        self._skip_cr = False
        self.discarded = 0

    @property
    def in_frame(self) -> bool:
        """True while a frame has started and not yet ended (for read timeouts)."""
        return self._in_frame

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        pos = 0
        n = len(data)
        if self._skip_cr and n:
            self._skip_cr = False
            if data[0] == self._trailer:
                pos = 1
        while pos < n:
            if not self._in_frame:
                start = data.find(self._start, pos)
                if start < 0:
                    self.discarded += _count_junk(data, pos, n)
                    break
                self.discarded += _count_junk(data, pos, start)
                self._in_frame = True
                self._oversize = False
                self._total = 0
                self._buf.clear()
                pos = start + 1
                continue
            end = data.find(self._end, pos)
            stop = n if end < 0 else end
            restart = data.find(self._start, pos, stop)
            if restart >= 0:
                # A sender that gave up on a frame half-way starts the next one over:
                # what came before the new <VT> is a fragment, never part of the message.
                self.discarded += self._total + restart - pos
                self._in_frame = False
                pos = restart
                continue
            self._append(data, pos, stop)
            if end < 0:
                break
            frames.append(Frame(bytes(self._buf), self._total, self._oversize))
            self._buf.clear()
            self._in_frame = False
            pos = end + 1
            if self._trailer is None:
                continue
            if pos < n:
                if data[pos] == self._trailer:
                    pos += 1
            else:
                self._skip_cr = True
        return frames

    def _append(self, data: bytes, start: int, stop: int) -> None:
        self._total += stop - start
        if self._total > self.max_size:
            # Over the limit: keep only the first KEPT_OF_OVERSIZE bytes of the frame, the
            # same ones however the frame was split across reads.
            self._oversize = True
            room = KEPT_OF_OVERSIZE - len(self._buf)
            if room > 0:
                self._buf += data[start : min(stop, start + room)]
            del self._buf[KEPT_OF_OVERSIZE:]
            return
        self._buf += data[start:stop]


def _count_junk(data: bytes, start: int, stop: int) -> int:
    """Bytes between frames, not counting the whitespace some senders put there."""
    return len(data[start:stop].strip(b"\r\n\t \x00"))
