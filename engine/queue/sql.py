"""The queue backend in the SQL store (SQLite embedded, PostgreSQL in production).

Living in the same database as the message store lets the inbound commit write the
sealed message, its output and its queue entries in one transaction: once a sender has
its ACK, the engine owns a delivery for every destination. Entries are FIFO per
destination by id; a worker leases a batch, keeps the head until it is confirmed or
dead-lettered, and records each outcome in the same transaction as its audit event.

Several engine processes may share one database. FIFO per destination then needs one
process at a time to hold a destination's leases: leasing is serialised per destination
(SQLite's single writer does it; PostgreSQL takes a transaction-scoped advisory lock),
takes nothing while another live owner holds leases in the destination, and otherwise
takes the head in id order, including the entries of owners that stopped beating
(engine.queue.owners). The head rows are also locked FOR UPDATE, so no entry is taken
twice even by something that skips the advisory lock.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from typing import Any

import sqlalchemy as sa

from engine.events import Event, Kind
from engine.queue import owners
from engine.queue.base import DeadLetter, Leased, QueueStats, Retrying
from engine.store.schema import dead_letter_answers, messages, outputs, queue
from engine.store.writer import UnitOfWork

__all__ = ["DeadLetter", "Leased", "QueueStats", "Retrying", "SqlQueue"]

READY, LEASED, DEAD = "ready", "leased", "dead"


_not_mine = sa.or_(queue.c.lease_owner.is_(None), queue.c.lease_owner != sa.bindparam("owner"))
# Run only once _held_by_others found nothing: other owners' leases left are dead ones.
_head = (
    sa.select(queue.c.id, queue.c.message_id, queue.c.output_id, queue.c.attempts,
              queue.c.available_at, queue.c.state, queue.c.lease_owner)
    .where(queue.c.destination == sa.bindparam("destination"),
           sa.or_(queue.c.state == READY, sa.and_(queue.c.state == LEASED, _not_mine)))
    .order_by(queue.c.id)
    .limit(sa.bindparam("limit"))
    .with_for_update(of=queue)
)
_take = (
    queue.update()
    .where(queue.c.id.in_(sa.bindparam("ids", expanding=True)))
    .values(state=LEASED, lease_owner=sa.bindparam("owner"), lease_until=None)
)
_message_content = (
    sa.select(messages.c.id, messages.c.control_id, messages.c.patient, messages.c.key_id,
              messages.c.content, messages.c.received_at)
    .where(messages.c.id.in_(sa.bindparam("ids", expanding=True)))
)
_output_content = (
    sa.select(outputs.c.id, outputs.c.key_id, outputs.c.content, outputs.c.content_type)
    .where(outputs.c.id.in_(sa.bindparam("ids", expanding=True)))
)
_ack = queue.delete().where(queue.c.id == sa.bindparam("eid"))
# Retries and dead letters change only an entry this process still holds: one that
# was taken over meanwhile is its new owner's to try. (A confirmation is a fact whoever
# holds the entry, so `_ack` deletes it regardless.)
_mine = sa.and_(queue.c.id == sa.bindparam("eid"), queue.c.state == LEASED,
                queue.c.lease_owner == sa.bindparam("owner"))
_retry = (
    queue.update()
    .where(_mine)
    .values(attempts=sa.bindparam("attempts"), available_at=sa.bindparam("at"),
            last_error=sa.bindparam("error"))
)
_dead = (
    queue.update()
    .where(_mine)
    .values(state=DEAD, attempts=sa.bindparam("attempts"), last_error=sa.bindparam("error"),
            lease_owner=None, lease_until=None)
)


class SqlQueue:
    """FIFO queues per destination key ("channel/destination"), in the store database;
    implements engine.queue.base.Queue."""

    def __init__(self, engine: sa.Engine, owner: str,
                 owner_ttl: float = owners.OWNER_TTL) -> None:
        self._engine = engine
        self.owner = owner
        self.owner_ttl = owner_ttl

    @staticmethod
    def put(uow: UnitOfWork, destination: str, message_id: str, output_id: str | None,
            now: float) -> None:
        uow.insert(queue, {
            "destination": destination, "message_id": message_id, "output_id": output_id,
            "state": READY, "attempts": 0, "available_at": now, "created_at": now,
        })

    def lease(self, destination: str, limit: int) -> UnitOfWork:
        """A unit of work whose result is the next `limit` entries, in order, leased to
        this process; nothing while another live process holds leases in `destination`
        (or is leasing it right now). Entries not yet due are included: the worker waits
        on them, which is what keeps the destination FIFO. Entries taken over from a dead
        owner are one "reclaimed" event per owner."""
        uow = UnitOfWork()
        held_by_others = (
            sa.select(queue.c.id)
            .where(queue.c.destination == destination, queue.c.state == LEASED,
                   queue.c.lease_owner != self.owner,
                   queue.c.lease_owner.in_(owners.live(self.owner_ttl).scalar_subquery()))
            .limit(1)
        )

        def run(conn: sa.Connection) -> list[Leased]:
            uow.events[:] = []  # assigned: the writer may run this again after a failure
            if not _lease_lock(conn, destination) or conn.execute(held_by_others).first():
                return []
            rows = conn.execute(_head, {"destination": destination, "owner": self.owner,
                                        "limit": limit}).all()
            if not rows:
                return []
            conn.execute(_take, {"ids": [r.id for r in rows], "owner": self.owner})
            reclaimed = Counter(r.lease_owner or "" for r in rows if r.state == LEASED)
            channel, _, dest = destination.partition("/")
            uow.events[:] = [Event(kind=Kind.RECLAIMED, channel=channel, destination=dest,
                                   detail={"owner": dead, "entries": n})
                             for dead, n in reclaimed.items()]
            return _with_content(conn, rows)

        uow.query = run
        return uow

    @staticmethod
    def ack(uow: UnitOfWork, entry_id: int) -> None:
        uow.execute(_ack, {"eid": entry_id})

    def retry_later(self, uow: UnitOfWork, entry_id: int, attempts: int, at: float,
                    error: str) -> None:
        uow.execute(_retry, {"eid": entry_id, "owner": self.owner, "attempts": attempts,
                             "at": at, "error": error})

    def dead_letter(self, uow: UnitOfWork, entry_id: int, attempts: int, error: str) -> None:
        uow.execute(_dead, {"eid": entry_id, "owner": self.owner, "attempts": attempts,
                            "error": error})

    def release(self, uow: UnitOfWork, destination: str | None = None,
                any_owner: bool = False) -> None:
        """Give leased entries back (shutdown; or start-up of the embedded engine, which
        alone uses its database and so may take back every lease)."""
        cond = [queue.c.state == LEASED]
        if not any_owner:
            cond.append(queue.c.lease_owner == self.owner)
        if destination is not None:
            cond.append(queue.c.destination == destination)
        uow.execute(queue.update().where(*cond).values(state=READY, lease_owner=None,
                                                       lease_until=None))

    @staticmethod
    def replay(destination: str, actor: str) -> UnitOfWork:
        """Put every dead letter of `destination` back at the tail of its queue; each
        message put back is one "requeued" event by `actor`."""
        return _clear_dead(destination, actor, Kind.REQUEUED, requeue=True)

    @staticmethod
    def discard(destination: str, actor: str) -> UnitOfWork:
        """Remove every dead letter of `destination`; each is one "discarded" event. The
        message itself stays in the store and can be reprocessed later."""
        return _clear_dead(destination, actor, Kind.DISCARDED, requeue=False)

    def dead_letters(self, destination: str, limit: int = 20) -> list[DeadLetter]:
        """The newest dead letters of one destination, newest first."""
        kept = (sa.select(dead_letter_answers.c.id)
                .where(dead_letter_answers.c.queue_id == queue.c.id).exists())
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(queue.c.message_id, queue.c.attempts, queue.c.last_error, kept)
                .where(queue.c.destination == destination, queue.c.state == DEAD)
                .order_by(queue.c.id.desc()).limit(limit)
            ).all()
        return [DeadLetter(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def retrying(self, destination: str, limit: int = 3) -> list[Retrying]:
        """The first retrying entries of one destination, in queue order: the head is
        the one holding the rest of a FIFO queue back."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(queue.c.message_id, queue.c.attempts, queue.c.available_at,
                          queue.c.last_error)
                .where(queue.c.destination == destination, queue.c.state != DEAD,
                       queue.c.attempts > 0)
                .order_by(queue.c.id).limit(limit)
            ).all()
        return [Retrying(*r) for r in rows]

    def stats(self) -> list[QueueStats]:
        """Counts per destination, from one grouped query."""
        retrying = sa.case((queue.c.attempts > 0, 1), else_=0)
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(queue.c.destination, queue.c.state, retrying.label("retrying"),
                          sa.func.count(), sa.func.min(queue.c.created_at))
                .group_by(queue.c.destination, queue.c.state, retrying)
            ).all()
        by_dest: dict[str, QueueStats] = {}
        for dest, state, is_retrying, count, oldest in rows:
            s = by_dest.setdefault(dest, QueueStats(dest))
            if state == DEAD:
                s.dead += count
                continue
            if state == LEASED:
                s.leased += count
            else:
                s.ready += count
            if is_retrying:
                s.retrying += count
            if oldest is not None and (s.oldest_at is None or oldest < s.oldest_at):
                s.oldest_at = oldest
        return sorted(by_dest.values(), key=lambda s: s.destination)


def _lease_lock(conn: sa.Connection, destination: str) -> bool:
    """Serialise leasing of one destination across processes, until the transaction
    ends; False if another process is leasing it right now (it will hold the head, so
    there is nothing to take). On PostgreSQL a non-blocking advisory lock: a blocking
    one would hold this process's whole writer batch, and could deadlock two writers
    leasing two destinations in opposite orders. SQLite's write lock already serialises."""
    if conn.dialect.name != "postgresql":
        return True
    digest = hashlib.blake2b(f"conduit.queue:{destination}".encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    return bool(conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(key))).scalar())


def _clear_dead(destination: str, actor: str, kind: Kind, requeue: bool) -> UnitOfWork:
    """A unit of work that empties a destination's dead letters, optionally putting them
    back at the tail, with one `kind` event per message; its result is the count."""
    uow = UnitOfWork()

    def run(conn: sa.Connection) -> int:
        dead = conn.execute(
            sa.select(queue.c.id, queue.c.message_id, queue.c.output_id)
            .where(queue.c.destination == destination, queue.c.state == DEAD)
            .order_by(queue.c.id)
        ).all()
        if not dead:
            return 0
        if requeue:
            now = time.time()
            conn.execute(queue.insert(), [{
                "destination": destination, "message_id": r.message_id,
                "output_id": r.output_id, "state": READY, "attempts": 0,
                "available_at": now, "created_at": now,
            } for r in dead])
        conn.execute(queue.delete().where(queue.c.id.in_([r.id for r in dead])))
        channel, _, dest = destination.partition("/")
        # Assigned, not appended: the writer may run this again after a failed batch.
        uow.events[:] = [Event(kind=kind, actor=actor, channel=channel, destination=dest,
                               message_id=r.message_id) for r in dead]
        return len(dead)

    uow.query = run
    return uow


def _with_content(conn: sa.Connection, rows: list[Any]) -> list[Leased]:
    message_ids = list({r.message_id for r in rows})
    meta = {m.id: m for m in conn.execute(_message_content, {"ids": message_ids})}
    output_ids = [r.output_id for r in rows if r.output_id]
    outs = ({o.id: o for o in conn.execute(_output_content, {"ids": output_ids})}
            if output_ids else {})
    leased = []
    for r in rows:
        m = meta[r.message_id]
        if r.output_id:
            o = outs[r.output_id]
            key_id, sealed, record_id, ctype = o.key_id, o.content, o.id, o.content_type
        else:
            key_id, sealed, record_id, ctype = m.key_id, m.content, m.id, ""
        leased.append(Leased(r.id, r.message_id, r.output_id, r.attempts, r.available_at,
                             m.control_id, m.patient, key_id, sealed, record_id, ctype,
                             m.received_at))
    return leased

