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

`Duplicates` is the channel's step: it owns the index, the keys of messages taken on
but not yet committed, and the questions to the store, and decides per message whether
it is a resend, a reused control id, or new.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from typing import Protocol

from engine.message import MessageStatus, Parsed

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


# Statuses after which a resent copy of the message is a duplicate (an errored message
# may be sent again on purpose, once the sender or the mapping is fixed).
TAKEN_ON = (MessageStatus.ACCEPTED, MessageStatus.FILTERED)


class TakenIds(Protocol):
    """What the step asks the message store (engine.store.messages.MessageStore)."""

    def recent_control_ids(self, channel: str, since: float
                           ) -> list[tuple[str, str, str, float]]: ...

    def taken_with_control_id(self, channel: str, sender: str, control_id: str,
                              since: float) -> list[tuple[str, str]]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Earlier:
    """A message taken on earlier under the same sender and control id."""

    message_id: str
    resend: bool  # the same content: acknowledged again, not processed again


class Duplicates:
    """The duplicate step of one channel (a window of 0 turns it off: every copy is new)."""

    def __init__(self, channel: str, window: float, store: TakenIds) -> None:
        self.channel = channel
        self.index = DuplicateIndex(window) if window > 0 else None
        self._store = store
        # (sender, control id) -> (message id, content hash) of the message taken on
        # under that key and not yet committed
        self._pending: dict[tuple[str, str], tuple[str, str]] = {}

    async def warm_up(self, now: float) -> None:
        """Fill an empty index from the store's last window (once, on the first start)."""
        if self.index is None or self.index.entries:
            return
        for sender, control_id, _, at in await asyncio.to_thread(
                self._store.recent_control_ids, self.channel, now - self.index.window):
            self.index.remember(sender, control_id, at)

    async def check(self, parsed: Parsed, digest: str, now: float) -> Earlier | None:
        """The message taken on within the window with this sender and control id, when
        there is one: a resend when its content is the same, else the same id reused for
        a new message (senders reset their counters on restart, daily, on failover)."""
        if self.index is None or not self.index.maybe_seen(parsed.sender, parsed.control_id,
                                                           now):
            return None
        pending = self._pending.get((parsed.sender, parsed.control_id))
        if pending is not None and pending[1] == digest:  # taken on a moment ago
            return Earlier(pending[0], resend=True)
        taken = await asyncio.to_thread(
            self._store.taken_with_control_id, self.channel, parsed.sender,
            parsed.control_id, now - self.index.window)
        same = next((message_id for message_id, hash_ in taken if hash_ == digest), None)
        if same is not None:
            return Earlier(same, resend=True)
        first = taken[0][0] if taken else pending[0] if pending is not None else None
        return Earlier(first, resend=False) if first is not None else None

    def taken(self, parsed: Parsed, message_id: str, digest: str, now: float,
              status: MessageStatus) -> None:
        """A message was taken on with `status`: resends of it are duplicates from now on
        (no await may come between `check` and this, or two copies could both pass)."""
        if self.index is None or status not in TAKEN_ON:
            return
        self.index.remember(parsed.sender, parsed.control_id, now)
        self._pending[(parsed.sender, parsed.control_id)] = (message_id, digest)

    def forget(self, parsed: Parsed | None, message_id: str) -> None:
        """Once a message is committed (or dropped), the store answers for it; a later
        message under the same key may own the entry by now, and keeps it."""
        if parsed is None:
            return
        key = (parsed.sender, parsed.control_id)
        pending = self._pending.get(key)
        if pending is not None and pending[0] == message_id:
            del self._pending[key]
