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

FIFO per key (`by_key`, engine.queue.by_key): the key is the message's patient
pseudonym, joined from `messages` (no column of the queue's own: existing stores gain
no columns). Leasing is serialised the same way; live owners' leases hold back their
keys only.
"""

from __future__ import annotations

import hashlib
import heapq
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any, NamedTuple

import sqlalchemy as sa

from engine.events import Event, Kind
from engine.queue import owners
from engine.queue.base import BY_KEY_WINDOW, DeadLetter, Leased, QueueStats, Retrying
from engine.queue.by_key import Seen, first_free_per_key
from engine.security.crypto import ABSENT
from engine.store.schema import dead_letter_answers, messages, outputs, queue
from engine.store.writer import UnitOfWork

__all__ = ["DeadLetter", "Leased", "QueueStats", "Retrying", "SqlQueue"]

READY, LEASED, DEAD = "ready", "leased", "dead"


def _content_query(with_raw: bool) -> sa.Select:
    """A leased batch's messages, each with its leased outputs (LEFT JOIN: a raw entry
    or an output gone has none), in one round trip. The message's own sealed content
    only `with_raw`: most destinations send an output, and reading every raw message
    with it doubled what a lease read."""
    o = outputs
    joined = messages.outerjoin(o, sa.and_(
        o.c.message_id == messages.c.id, o.c.id.in_(sa.bindparam("outputs", expanding=True))))
    raw = messages.c.content if with_raw else sa.null()
    return (sa.select(messages.c.id, messages.c.control_id, messages.c.patient,
                      messages.c.received_at, messages.c.key_id, raw.label("content"),
                      o.c.id.label("output_id"), o.c.key_id.label("output_key_id"),
                      o.c.content.label("output_content"), o.c.content_type)
            .select_from(joined)
            .where(messages.c.id.in_(sa.bindparam("ids", expanding=True))))


_with_raw, _outputs_only = _content_query(True), _content_query(False)
# Retries and dead letters change only an entry this process still holds: one that
# was taken over meanwhile is its new owner's to try. (A confirmation is a fact whoever
# holds the entry, so `ack` deletes it regardless.)
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

    def lease(self, destination: str, limit: int, by_key: bool = False) -> UnitOfWork:
        """A unit of work whose result is the next `limit` entries, in order, leased to
        this process; nothing while another live process holds leases in `destination`
        (or is leasing it right now). Entries not yet due are included: the worker waits
        on them, which is what keeps the destination FIFO. Entries taken over from a dead
        owner are one "reclaimed" event per owner. `by_key`: the first entry of each
        patient that no live owner holds instead (engine.queue.by_key)."""
        uow = UnitOfWork()
        owner, ttl = self.owner, self.owner_ttl

        def run(conn: sa.Connection) -> list[Leased]:
            uow.events[:] = []  # assigned: the writer may run this again after a failure
            sql = _lease_sql(conn.dialect)
            if sql.lock and not conn.exec_driver_sql(sql.lock, (_lock_key(destination),)
                                                     ).scalar():
                return []
            if by_key:
                rows = _key_heads(conn, sql, destination, owner, ttl, limit)
            elif conn.exec_driver_sql(sql.held_by_others, (destination, owner, ttl)).first():
                return []
            else:
                rows = conn.exec_driver_sql(sql.head, (destination, owner, limit)).all()
            if not rows:
                return []
            ids = tuple(r[0] for r in rows)
            conn.exec_driver_sql(sql.take(len(ids)), (owner, *ids))
            reclaimed = Counter(r[6] or "" for r in rows if r[5] == LEASED)
            channel, _, dest = destination.partition("/")
            uow.events[:] = [Event(kind=Kind.RECLAIMED, channel=channel, destination=dest,
                                   detail={"owner": dead, "entries": n})
                             for dead, n in reclaimed.items()]
            return [_leased(r) for r in rows]

        uow.query = run
        return uow

    @staticmethod
    def ack(uow: UnitOfWork, entry_id: int) -> None:
        uow.delete(queue, entry_id)

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


class _LeaseSql:
    """A lease's statements as plain SQL for one dialect: they run in every lease, and
    building, caching and compiling them as expressions (and processing each bound id
    of an IN list) cost more than the statements themselves.

    `held_by_others`: a lease of a live other owner in the destination (owners beat in
    engine.queue.owners; times are the database's clock). `head`: the next entries in id
    order, ready or leased by an owner that is not this one (run only once
    held_by_others found nothing: such leases are dead ones), with the content each
    delivers, locked FOR UPDATE on PostgreSQL so no entry is taken twice even by
    something that skips the advisory lock. `lock`: on PostgreSQL a non-blocking advisory
    lock, serialising leasing of one destination across processes until the transaction
    ends (a blocking one would hold this process's whole writer batch, and could
    deadlock two writers leasing two destinations in opposite orders); SQLite's single
    writer already serialises, so None."""

    def __init__(self, dialect: sa.Dialect) -> None:
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        now = str(owners.db_now().compile(dialect=dialect))
        postgresql = dialect.name == "postgresql"
        self._mark = mark
        self.lock = f"SELECT pg_try_advisory_xact_lock({mark})" if postgresql else None
        self.held_by_others = (
            f"SELECT id FROM queue WHERE destination = {mark} AND state = '{LEASED}' "
            f"AND lease_owner <> {mark} AND lease_owner IN (SELECT owner FROM queue_owners "
            f"WHERE heartbeat_at >= {now} - {mark}) LIMIT 1")
        self.head = (
            "SELECT q.id, q.message_id, q.output_id, q.attempts, q.available_at, q.state, "
            "q.lease_owner, m.id, m.control_id, m.patient, m.key_id, m.content, "
            "m.received_at, o.key_id, o.content, o.content_type "
            "FROM queue q LEFT OUTER JOIN messages m ON m.id = q.message_id "
            "LEFT OUTER JOIN outputs o ON o.id = q.output_id "
            f"WHERE q.destination = {mark} AND (q.state = '{READY}' OR (q.state = "
            f"'{LEASED}' AND (q.lease_owner IS NULL OR q.lease_owner <> {mark}))) "
            f"ORDER BY q.id LIMIT {mark}" + (" FOR UPDATE OF q" if postgresql else ""))
        self._takes: dict[int, str] = {}
        # FIFO per key (_key_heads): every owner beating within the TTL; the leased
        # entries with their keys; the ready ones from an id on; the chosen heads by id,
        # checked again under their row locks.
        self.live = f"SELECT owner FROM queue_owners WHERE heartbeat_at >= {now} - {mark}"
        keyed = ("FROM queue q LEFT OUTER JOIN messages m ON m.id = q.message_id "
                 f"WHERE q.destination = {mark} AND q.state = ")
        self.leased = f"SELECT q.id, m.patient, q.lease_owner {keyed}'{LEASED}' ORDER BY q.id"
        self.ready = (f"SELECT q.id, m.patient {keyed}'{READY}' AND q.id > {mark} "
                      f"ORDER BY q.id LIMIT {mark}")
        self._head_by_ids = self.head.replace(
            f"WHERE q.destination = {mark} AND", "WHERE q.id IN ({ids}) AND q.destination = "
            f"{mark} AND").replace(
            f" LIMIT {mark}", "")
        self._heads: dict[int, str] = {}

    def heads(self, count: int) -> str:
        """The head rows of `count` entries by id (the ids, then this owner), those still
        ready or leased by another owner."""
        sql = self._heads.get(count)
        if sql is None:
            sql = self._heads[count] = self._head_by_ids.replace(
                "{ids}", ", ".join([self._mark] * count))
        return sql

    def take(self, count: int) -> str:
        """Lease `count` entries by id (the owner, then the ids)."""
        sql = self._takes.get(count)
        if sql is None:
            sql = self._takes[count] = (
                f"UPDATE queue SET state = '{LEASED}', lease_owner = {self._mark}, "
                f"lease_until = NULL WHERE id IN ({', '.join([self._mark] * count)})")
        return sql


_lease_sqls: dict[tuple[str, str], _LeaseSql] = {}


def _lease_sql(dialect: sa.Dialect) -> _LeaseSql:
    found = _lease_sqls.get((dialect.name, dialect.paramstyle))
    if found is None:
        found = _lease_sqls[(dialect.name, dialect.paramstyle)] = _LeaseSql(dialect)
    return found


KEY_SCAN = 256  # ready entries read at a time while looking for free keys


def _key_heads(conn: sa.Connection, sql: _LeaseSql, destination: str, owner: str,
               ttl: float, limit: int) -> list[Any]:
    """The head rows (as _LeaseSql.head) of up to `limit` entries, each the first of its
    key and held by no live owner (engine.queue.by_key), in id order."""
    live = set(conn.exec_driver_sql(sql.live, (ttl,)).scalars())
    live.add(owner)  # its own leases are in flight or waiting for a retry
    leased = [Seen(r[0], r[1] or "", r[2] or "")
              for r in conn.exec_driver_sql(sql.leased, (destination,))]

    def ready() -> Any:
        after = -1
        while True:
            rows = conn.exec_driver_sql(sql.ready, (destination, after, KEY_SCAN)).all()
            yield from (Seen(r[0], r[1] or "", None) for r in rows)
            if len(rows) < KEY_SCAN:
                return
            after = rows[-1][0]

    free = first_free_per_key(heapq.merge(leased, ready(), key=lambda e: e.id), live,
                              limit, BY_KEY_WINDOW)
    if not free:
        return []
    return conn.exec_driver_sql(sql.heads(len(free)),
                                (*(f.id for f in free), destination, owner)).all()


def _lock_key(destination: str) -> int:
    """The advisory lock's key of a destination: 64 bits of a hash of its name."""
    digest = hashlib.blake2b(f"conduit.queue:{destination}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _leased(r: Any) -> Leased:
    """A head row (_LeaseSql.head) as the entry it leases, with the content it delivers:
    its output's, or the raw message's when it has no output."""
    if r[7] is None or (r[2] and r[13] is None):
        return _absent(r)
    if r[2]:
        key_id, sealed, record_id, ctype = r[13], r[14], r[2], r[15]
    else:
        key_id, sealed, record_id, ctype = r[10], r[11], r[1], ""
    return Leased(r[0], r[1], r[2], r[3], r[4], r[8], r[9], key_id, bytes(sealed),
                  record_id, ctype, r[12])


def _absent(r: Any) -> Leased:
    """An entry whose message or output the store lacks (its queue in Redis kept while
    the database went back to a backup; a row deleted by hand): leased all the same, so
    the worker dead-letters it saying why instead of the destination stalling on it."""
    entry_id, message_id, output_id, attempts, available_at = r[:5]
    return Leased(entry_id, message_id, output_id, attempts, available_at, "", None,
                  ABSENT, b"", output_id or message_id, "", available_at)


def _clear_dead(destination: str, actor: str, kind: Kind, requeue: bool) -> UnitOfWork:
    """A unit of work that empties a destination's dead letters, optionally putting them
    back at the tail, with one `kind` event per message; its result is the count."""
    uow = UnitOfWork()

    def run(conn: sa.Connection) -> int:
        # Taken by their delete: a second retry or discard at the same moment (another
        # process) waits for this one's rows and finds them gone, so no dead letter is
        # put back twice, or put back and reported discarded.
        dead = sorted(conn.execute(
            queue.delete().where(queue.c.destination == destination, queue.c.state == DEAD)
            .returning(queue.c.id, queue.c.message_id, queue.c.output_id)).all())
        uow.events[:] = []  # assigned: the writer may run this again after a failed batch
        if not dead:
            return 0
        if requeue:
            now = time.time()
            conn.execute(queue.insert(), [{
                "destination": destination, "message_id": r.message_id,
                "output_id": r.output_id, "state": READY, "attempts": 0,
                "available_at": now, "created_at": now,
            } for r in dead])
        channel, _, dest = destination.partition("/")
        uow.events[:] = [Event(kind=kind, actor=actor, channel=channel, destination=dest,
                               message_id=r.message_id) for r in dead]
        return len(dead)

    uow.query = run
    return uow


class _Content(NamedTuple):
    """A row of _content_query, by position (engine.store.database.pipelined gives
    plain tuples)."""

    id: str
    control_id: str
    patient: str | None
    received_at: float
    key_id: str
    content: bytes | None
    output_id: str | None
    output_key_id: str | None
    output_content: bytes | None
    content_type: str | None


def content_of(rows: list[Any]) -> sa.Select:
    """The query reading what a leased batch sends (with_content reads its rows)."""
    output_ids = [r.output_id for r in rows if r.output_id]
    query = _outputs_only if len(output_ids) == len(rows) else _with_raw
    return query.params(ids=list({r.message_id for r in rows}), outputs=output_ids)


def with_content(rows: list[Any], found: Iterable[Any]) -> list[Leased]:
    """The leased entries `rows` with their content, from content_of's rows; an entry
    whose message or output is gone (pruned, discarded) is absent."""
    meta: dict[str, _Content] = {}
    outs: dict[str, _Content] = {}
    for row in map(_Content._make, found):
        meta[row.id] = row
        if row.output_id is not None:
            outs[row.output_id] = row
    leased = []
    for r in rows:
        m = meta.get(r.message_id)
        o = outs.get(r.output_id) if r.output_id else None
        if m is None or (r.output_id and o is None):
            leased.append(_absent(r))
            continue
        if o is not None:
            key_id, sealed, record_id, ctype = (o.output_key_id, o.output_content,
                                                o.output_id, o.content_type)
        else:
            key_id, sealed, record_id, ctype = m.key_id, m.content, m.id, ""
        leased.append(Leased(r.id, r.message_id, r.output_id, r.attempts, r.available_at,
                             m.control_id, m.patient, key_id, sealed, record_id, ctype,
                             m.received_at))
    return leased


def _with_content(conn: sa.Connection, rows: list[Any]) -> list[Leased]:
    return with_content(rows, conn.execute(content_of(rows)))

