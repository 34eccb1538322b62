"""Duplicate detection: a resend of a message taken on within the window (the same
sender, control id and content) is acknowledged again but not processed again.

Senders resend when an acknowledgement is late or lost; without this the receiving
systems would see the admission twice. Only the content tells a resend from a new
message under a reused id: the channel compares content hashes. The store is the truth
(its control-id index); in front of it sit two Bloom filters, the current window's and
the last one's, so the
question "could this be a resend?" costs a few microseconds and a fixed 4 MiB however
much traffic flows, and only a "maybe" (a real resend, or about one message in a hundred
at 1.7 million per window) asks the store.
"""

from __future__ import annotations

import hashlib

BITS = 16 * 1024 * 1024  # per filter: 2 MiB
HASHES = 5  # about 1% false "maybe" at 1.7 million entries per window


class _Bloom:
    __slots__ = ("bits",)

    def __init__(self) -> None:
        self.bits = bytearray(BITS // 8)

    def add(self, positions: list[int]) -> None:
        for p in positions:
            self.bits[p >> 3] |= 1 << (p & 7)

    def __contains__(self, positions: list[int]) -> bool:
        return all(self.bits[p >> 3] & (1 << (p & 7)) for p in positions)


def _positions(sender: str, control_id: str) -> list[int]:
    digest = hashlib.blake2b(f"{sender}\x1f{control_id}".encode(), digest_size=16).digest()
    a, b = int.from_bytes(digest[:8], "big"), int.from_bytes(digest[8:], "big") | 1
    return [(a + i * b) % BITS for i in range(HASHES)]


class DuplicateIndex:
    """May this control id have been taken on from this sender within the window?
    Never a false "no"; a "yes" is confirmed against the store."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._current = _Bloom()
        self._previous = _Bloom()
        self._rotated_at: float | None = None
        self.entries = 0

    def maybe_seen(self, sender: str, control_id: str, now: float) -> bool:
        if not control_id:
            return False
        self._rotate(now)
        positions = _positions(sender, control_id)
        return positions in self._current or positions in self._previous

    def remember(self, sender: str, control_id: str, at: float) -> None:
        if not control_id:
            return
        self._rotate(at)
        self._current.add(_positions(sender, control_id))
        self.entries += 1

    def _rotate(self, now: float) -> None:
        """Once a window has passed since the last turn, the older filter is dropped: every
        entry it held is at least a window old, so none is forgotten early; the store's
        answer applies the exact window."""
        if self._rotated_at is None:
            self._rotated_at = now
        elif now - self._rotated_at >= 2 * self.window:  # a long quiet spell: both stale
            self._previous, self._current = _Bloom(), _Bloom()
            self._rotated_at = now
        elif now - self._rotated_at >= self.window:
            self._previous, self._current = self._current, _Bloom()
            self._rotated_at = now
