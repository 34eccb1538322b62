"""The Queue contract: what the channel, the destination workers, the heartbeat and the
operations code ask of a queue backend, so they never name one.

The SQL queue (engine.queue.sql) is one implementation; a Redis Streams queue is
planned as a second. Each must pass tests/conformance/test_queue.py unchanged.

Every change goes through a UnitOfWork (engine.store.writer), committed by the one
Writer together with the audit events that record it. That is what gives the engine's
two guarantees:

- Queued in the same commit as the message: once a sender has its acknowledgement, the
  engine owns a delivery for every destination. The SQL queue's `put` adds its row to
  the message's unit of work. A backend outside the store database meets the guarantee
  with an outbox: its `put` records an outbox row in the unit of work, and the entry is
  published once that commit is durable (and again after a crash, until the outbox row
  is gone). Never publish before the commit: a refused commit must leave no entry.
- An outcome is recorded with its audit event: `ack`, `retry_later`, `dead_letter` and
  `release` add to the worker's unit of work too; a backend outside the database applies
  them after the commit (a lost confirmation sends the entry again: at-least-once).

A destination's queue is FIFO: a lease gives the head first, and the worker keeps the
head until it is confirmed or dead-lettered, so nothing overtakes it.

Or FIFO per key, for a destination whose order matters only per patient: the key is the
message's patient pseudonym (messages.patient, a keyed HMAC, never the identifier;
messages without one share the key ""). A lease `by_key` gives only each key's first
entry, and only when no live owner holds it (leased or waiting for a retry): one
patient's entries go one at a time in queue order, different patients' in parallel. A
dead letter leaves the queue in both modes, so it holds back nothing, as in strict FIFO.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import msgspec

from engine.store.writer import UnitOfWork

# How many entries from the head a `by_key` lease looks through for keys that are free:
# a patient whose first entry lies further back waits until the head moves on. Bounds
# the cost of a lease behind one patient's long backlog.
BY_KEY_WINDOW = 5000


class Leased(msgspec.Struct):
    """A leased entry with its sealed content (opened by the worker)."""

    id: int
    message_id: str
    output_id: str | None
    attempts: int
    available_at: float
    control_id: str
    patient: str | None
    key_id: str
    sealed: bytes
    record_id: str  # the id the content was sealed under
    content_type: str  # "" for the raw message: the channel's codec knows its type
    received_at: float  # when the engine took the message on, for delivery latency


class DeadLetter(msgspec.Struct):
    """A dead letter as the queues view lists it: ids and the PHI-free reason; whether
    the receiver's answer was kept (readable with the message's content)."""

    message_id: str
    attempts: int
    last_error: str | None
    answer_kept: bool


class Retrying(msgspec.Struct):
    """An entry a receiver has turned away at least once and that will be tried again:
    how often, when next, and the PHI-free reason of the last refusal."""

    message_id: str
    attempts: int
    next_at: float
    last_error: str | None


class QueueStats(msgspec.Struct):
    """One destination's counts: `retrying` counts ready or leased entries tried before;
    `oldest_at` is when the oldest entry not dead was queued."""

    destination: str
    ready: int = 0
    leased: int = 0
    retrying: int = 0
    dead: int = 0
    oldest_at: float | None = None


@runtime_checkable
class Queue(Protocol):
    """Durable FIFO queues, one per destination key ("channel/destination").

    Entries are identified by an int id, unique within the queue (the id of the
    delivery an Outbound carries, and of a dead letter's kept answer). Methods taking a
    `uow` add to it and change nothing until the Writer commits it; methods returning a
    UnitOfWork describe work the caller commits and whose result is the answer. The
    read-only views (`dead_letters`, `retrying`, `stats`) are blocking calls that
    callers run off the event loop.
    """

    owner: str
    """This process's name as a lease holder: entries it leases are its own until it
    confirms, retries, dead-letters or releases them, or stops beating (another owner
    then takes them over, engine.queue.owners)."""

    def put(self, uow: UnitOfWork, destination: str, message_id: str,
            output_id: str | None, now: float) -> None:
        """Queue `message_id` (its output `output_id`, or None for the message as
        received) at the tail of `destination`, queued and due at `now`, as part of
        `uow`: in the same commit as the message (an outbox, and publishing after the
        commit, for a backend outside the store database)."""
        ...

    def lease(self, destination: str, limit: int, by_key: bool = False) -> UnitOfWork:
        """A unit of work whose result is up to `limit` entries of `destination` from
        the head, in order, with their sealed content, now leased to this owner. Entries
        not yet due are included (the worker waits on the head: that keeps FIFO); none
        while another live owner holds leases in the destination. A unit of work because
        the content is read from the message store, and entries taken over from a dead
        owner are audited ("reclaimed") in the same transaction.

        `by_key`: FIFO per key instead (module docstring): the first entry of each key
        that no live owner (this one included) holds, in queue order, up to `limit`;
        other owners' leases hold back their keys only. Keys are looked for among the
        first BY_KEY_WINDOW entries of the destination."""
        ...

    def ack(self, uow: UnitOfWork, entry_id: int) -> None:
        """Remove a delivered entry, whoever holds it now: delivery is a fact."""
        ...

    def retry_later(self, uow: UnitOfWork, entry_id: int, attempts: int, at: float,
                    error: str) -> None:
        """Keep the entry in its place (still leased), tried `attempts` times, due again
        at `at`, with the PHI-free reason; nothing if this owner no longer holds it."""
        ...

    def dead_letter(self, uow: UnitOfWork, entry_id: int, attempts: int,
                    error: str) -> None:
        """Take the entry out of the queue into the destination's dead letters, with its
        reason; nothing if this owner no longer holds it."""
        ...

    def release(self, uow: UnitOfWork, destination: str | None = None,
                any_owner: bool = False) -> None:
        """Give this owner's leases back in place, keeping attempts and due times (of
        `destination`, or all); `any_owner` takes back every lease (start-up of an
        engine that alone uses its queues)."""
        ...

    def replay(self, destination: str, actor: str) -> UnitOfWork:
        """A unit of work putting every dead letter of `destination` back at the tail
        with no attempts, one "requeued" event by `actor` per message; result: the
        count."""
        ...

    def discard(self, destination: str, actor: str) -> UnitOfWork:
        """A unit of work removing every dead letter of `destination`, one "discarded"
        event by `actor` per message (the message stays in the store); result: the
        count."""
        ...

    def dead_letters(self, destination: str, limit: int = 20) -> list[DeadLetter]:
        """The newest dead letters of `destination`, newest first."""
        ...

    def retrying(self, destination: str, limit: int = 3) -> list[Retrying]:
        """The first entries of `destination` tried before and not dead, in queue order
        (the head is the one holding a FIFO queue back)."""
        ...

    def stats(self) -> list[QueueStats]:
        """Counts of every destination with entries, sorted by destination."""
        ...
