"""Duplicate detection: a resend of a message taken on within the window (the same
sender, control id and content) is acknowledged again but not processed again.

Senders resend when an acknowledgement is late or lost; without this the receiving
systems would see the admission twice. Only the content tells a resend from a new
message under a reused id: the channel compares content hashes. The store is the truth
(its control-id index).

A process that alone takes messages into its store (the embedded default, one engine)
keeps two Bloom filters in front of it, the current window's and the last one's, so the
question "could this be a resend?" costs a few microseconds and a fixed 4 MiB however
much traffic flows, and only a "maybe" (a real resend, or about one message in a hundred
at 1.7 million per window) asks the store. The filters' "no" is only true of what this
process took on. Where other processes take messages into the same store (a PostgreSQL
store, which other hosts may share; the workers of `conduit run --workers N` that run
this channel's source; `shared`), a resend may have been taken on by another one, so no
filters are kept and the store is asked by the commit instead: each message taken on
carries a Claim (engine.store.claims), which the writer checks after locking the audit
chain's head row that every such commit takes. A copy another process committed first,
even a moment before, is then seen, and this one is stored and answered as a duplicate;
the same id with other content is flagged as reused there. Asking in the commit costs
no round trip of its own, where asking before routing cost one per round of messages.

What is guaranteed, within the window:
- a copy that arrives after the first was committed (its sender has had the ACK, which
  is only sent after the commit) is a duplicate, whichever process takes either: the
  store answers for every process;
- in one process, copies that arrive together are told apart too: the first is kept
  pending until it is committed, and a check waits for another check of the same sender
  and control id in this process to finish before it asks (no await comes between a
  check and `taken`, so the waiting one then finds the first pending);
- across processes, copies that arrive together too, by the claims (not for the parts
  of an atomic envelope, a FHIR transaction, taken whole in one commit).

`Duplicates` is the channel's step: it owns the index, the keys of messages taken on
but not yet committed, and the questions to the store, and decides per message whether
it is a resend, a reused control id, or new.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from typing import Any, Protocol

from engine.message import MessageStatus, Parsed
from engine.store.claims import Claim

log = logging.getLogger("conduit.duplicates")

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

    def taken_with_control_ids(self, channel: str, keys: list[tuple[str, str]], since: float
                               ) -> dict[tuple[str, str], list[tuple[str, str]]]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Earlier:
    """A message taken on earlier under the same sender and control id."""

    message_id: str
    resend: bool  # the same content: acknowledged again, not processed again


class Duplicates:
    """The duplicate step of one channel (a window of 0 turns it off: every copy is new).
    `shared`: other processes take messages into the same store, so the index's "no"
    does not hold and the store is asked for every message with a control id."""

    def __init__(self, channel: str, window: float, store: TakenIds,
                 shared: bool = False) -> None:
        self.channel = channel
        self.window = window
        self.shared = shared
        self.index = DuplicateIndex(window) if window > 0 and not shared else None
        self._store = store
        # (sender, control id) -> (message id, content hash) of the message taken on
        # under that key and not yet committed
        self._pending: dict[tuple[str, str], tuple[str, str]] = {}
        # (sender, control id) -> set once this process's question to the store about
        # that key has been answered (and the message, if new, taken on)
        self._asking: dict[tuple[str, str], asyncio.Event] = {}
        # Questions waiting for the store (the index's "maybe"s), asked together
        # (_ask_all): as with the writer's group commit, those asked while one query
        # runs go in the next, so a burst of resends costs one query per round.
        self._questions: dict[tuple[str, str], asyncio.Future[list[tuple[str, str]]]] = {}
        self._questions_since = 0.0
        self._asker: asyncio.Task | None = None

    async def warm_up(self, now: float) -> None:
        """Fill an empty index from the store's last window (once, on the first start)."""
        if self.index is None or self.index.entries:
            return
        for sender, control_id, _, at in await asyncio.to_thread(
                self._store.recent_control_ids, self.channel, now - self.window):
            self.index.remember(sender, control_id, at)

    async def check(self, parsed: Parsed, digest: str, now: float) -> Earlier | None:
        """The message taken on within the window with this sender and control id, when
        there is one: a resend when its content is the same, else the same id reused for
        a new message (senders reset their counters on restart, daily, on failover)."""
        if self.window <= 0 or not parsed.control_id:
            return None
        key = (parsed.sender, parsed.control_id)
        if self.shared:  # the commit asks the store, after any other process's commit
            pending = self._pending.get(key)
            return Earlier(pending[0], resend=pending[1] == digest) if pending else None
        if self.index is not None and not self.index.maybe_seen(
                parsed.sender, parsed.control_id, now):
            return None  # this process alone writes the store: the index's "no" holds
        while (asking := self._asking.get(key)) is not None:
            await asking.wait()  # a copy ahead of this one: once it is taken, it is pending
        before = self._pending.get(key)
        if before is not None and before[1] == digest:  # taken on a moment ago
            return Earlier(before[0], resend=True)
        asking = self._asking[key] = asyncio.Event()
        try:
            taken = await self._ask(key, now - self.window)
        except Exception as exc:  # the store is away: its commit will fail too (AE)
            log.warning("channel %s: could not ask the store whether a message is a resend "
                        "(%s); taken as new", self.channel, type(exc).__name__)
            taken = []
        finally:
            del self._asking[key]
            asking.set()
        same = next((message_id for message_id, hash_ in taken if hash_ == digest), None)
        if same is not None:
            return Earlier(same, resend=True)
        pending = self._pending.get(key) or before  # before: committed while asking
        first = taken[0][0] if taken else pending[0] if pending is not None else None
        return Earlier(first, resend=False) if first is not None else None

    def _ask(self, key: tuple[str, str], since: float
             ) -> asyncio.Future[list[tuple[str, str]]]:
        """The store's messages under `key` since `since`, asked with the other
        questions waiting (one per key at a time: `check` waits for the one before)."""
        answer = self._questions[key] = asyncio.get_running_loop().create_future()
        self._questions_since = min(self._questions_since or since, since)
        if self._asker is None or self._asker.done():
            self._asker = asyncio.create_task(self._ask_all(), name="duplicate questions")
        return answer

    async def _ask_all(self) -> None:
        while self._questions:
            batch, since = self._questions, self._questions_since
            self._questions, self._questions_since = {}, 0.0
            try:
                found = await asyncio.to_thread(self._store.taken_with_control_ids,
                                                self.channel, list(batch), since)
            except Exception as exc:
                for answer in batch.values():
                    if not answer.done():
                        answer.set_exception(exc)
                continue
            for key, answer in batch.items():
                if not answer.done():
                    answer.set_result(found.get(key, []))

    def taken(self, parsed: Parsed, message_id: str, digest: str, now: float,
              status: MessageStatus) -> None:
        """A message was taken on with `status`: resends of it are duplicates from now on
        (no await may come between `check` and this, or two copies could both pass)."""
        if self.window <= 0 or status not in TAKEN_ON or not parsed.control_id:
            return
        if self.index is not None:
            self.index.remember(parsed.sender, parsed.control_id, now)
        self._pending[(parsed.sender, parsed.control_id)] = (message_id, digest)

    def claim(self, parsed: Parsed, digest: str, now: float, status: MessageStatus,
              hop: dict[str, Any]) -> Claim | None:
        """What the commit of a message taken on asks the store, on a shared store: was
        a copy, or another message under its control id, stored by then
        (engine.store.claims)."""
        if not self.shared or self.window <= 0 or status not in TAKEN_ON \
                or not parsed.control_id:
            return None
        return Claim(self.channel, parsed.sender, parsed.control_id, digest,
                     now - self.window, {k: hop[k] for k in ("channel", "message_id", "peer",
                                                             "patient")})

    def forget(self, parsed: Parsed | None, message_id: str) -> None:
        """Once a message is committed (or dropped), the store answers for it; a later
        message under the same key may own the entry by now, and keeps it."""
        if parsed is None:
            return
        key = (parsed.sender, parsed.control_id)
        pending = self._pending.get(key)
        if pending is not None and pending[0] == message_id:
            del self._pending[key]
