"""The queue backend on Redis Streams, for several engine processes (and hosts) sharing
their destinations' queues; the message store stays in SQL.

One stream per destination, one consumer group, one consumer per engine owner. The
guarantees of engine.queue.base, and how:

- Queued in the message's commit: `put` writes a `queue_outbox` row in the unit of work.
  The next lease of the destination, by any process, publishes the destination's
  committed outbox rows (in id order; read on a connection of their own, since the
  writer's transaction may hold puts not committed yet) and deletes them in its own
  transaction; an id Redis already holds is not added again, so a transaction that fails
  after publishing (or a crash) leaves rows that are published again harmlessly.
  Nothing reaches Redis before its commit. (A row left by a failed transaction is
  deleted by the next lease that drains the outbox, normally before its entry is handed
  out; were the entry confirmed first and the row then published again, it would be sent
  twice: at-least-once, as engine.queue.base allows.)
- Outcomes after their commit: `ack`, `retry_later`, `dead_letter` and `release` add an
  after-commit hook; the hooks of one writer batch are sent to Redis as one script call,
  scheduled before anyone awaiting the commit resumes. If Redis cannot be reached they
  are kept, in order, and sent again; meanwhile the entries stay this owner's, so none
  is leased again. An ack is also a `queue_acked` row in its commit: should this process
  stop or die before Redis took it, the lease that takes the entry over finds the row
  and removes the entry rather than hand it out, so nothing confirmed is sent twice. The
  row goes in a later lease's transaction, once Redis has removed the entry.
- FIFO per destination: leasing is one Lua script (engine.queue.redis_scripts), atomic
  in Redis: it takes nothing while another live owner holds entries of the destination,
  otherwise the head. Liveness is the SQL owners table (engine.queue.owners), the one
  the heartbeat keeps and trusts for half its TTL, so both backends take over a dead
  owner's entries by the same rule, by the database's clock, within OWNER_TTL; an owner
  missing from that list but active in Redis within half the TTL is also live (a new
  process whose first heartbeat the list did not show yet). An idle-time rule alone
  (XAUTOCLAIM's) would take the head from a live owner waiting out a long retry.
- FIFO per key (`by_key`): each published entry carries its message's patient
  pseudonym (field k), and LEASE_BY_KEY takes the first entry of each key that no live
  owner holds; other owners' entries hold back their keys only.
- Delivered entries are XACKed and XDELed at once, so a stream holds what is queued.

Redis must keep what it acknowledged: run it with `appendonly yes` and `appendfsync
always` (docs/operations.md). Entries leave the outbox once published, so a Redis that
restarts without its data loses them; the queue warns at start if AOF is off.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import threading
import time
from typing import Any, NamedTuple

import redis
import sqlalchemy as sa

from engine.events import Event, Kind
from engine.queue import owners
from engine.queue.base import DeadLetter, Leased, QueueStats, Retrying
from engine.queue.holds import publish_lock_key
from engine.queue.redis_scripts import FREE, GROUP, LEASE, LEASE_BY_KEY, OUTCOMES
from engine.queue.sql import content_of, with_content
from engine.store.database import KeptReader, conflict_insert, pipelined, reader
from engine.store.schema import (
    dead_letter_answers,
    dead_taken,
    messages,
    queue_acked,
    queue_outbox,
)
from engine.store.writer import UnitOfWork

log = logging.getLogger("conduit.queue")

DEAD_TAKEN_KEPT = 30 * 86400.0  # seconds a taken dead letter's id is remembered
PUBLISH_BATCH = 1000  # outbox rows a lease publishes at most (the rest by the next one)
ACKED_DELETE = 500  # queue_acked rows a lease deletes at most (SQLite takes 999 variables)
# After Redis failed to answer, it is left alone this long (leases take nothing, outcomes
# wait): the writer thread and the event loop, which call it, must not stall on a Redis
# that is away, at most a connect timeout per pause.
REDIS_PAUSE = 1.0


class _Row(NamedTuple):  # what engine.queue.sql.with_content reads of an entry
    id: int
    message_id: str
    output_id: str | None
    attempts: int
    available_at: float


class _Held(NamedTuple):
    destination: str
    stream_id: str
    message_id: str
    output_id: str | None


class _Taking(NamedTuple):
    destination: str
    transaction: sa.Transaction | None  # the writer's, in which the lease ran
    entries: dict[int, _Held]


class RedisStreamsQueue:
    """FIFO queues per destination key in Redis Streams; implements
    engine.queue.base.Queue. `prefix` separates engines (or tests) sharing one Redis."""

    def __init__(self, engine: sa.Engine, url: str, owner: str, prefix: str = "conduit",
                 owner_ttl: float = owners.OWNER_TTL) -> None:
        self._reads = reader(engine)  # never waits on the writer (SQLite: no write turn)
        self._outbox_reads = KeptReader(engine)  # used on the writer thread
        self.owner = owner
        self.owner_ttl = owner_ttl
        self._redis = redis.Redis.from_url(url, decode_responses=True, socket_timeout=2.0,
                                           socket_connect_timeout=0.5)
        self._p = "{" + prefix + "}"
        self._lease_script = self._redis.register_script(LEASE)
        self._lease_by_key_script = self._redis.register_script(LEASE_BY_KEY)
        self._outcome_script = self._redis.register_script(OUTCOMES)
        self._lock = threading.Lock()  # _held and _taking: the loop and the writer thread
        self._held: dict[int, _Held] = {}  # handed to this process's workers
        # Leases that ran and are not handed out yet (by their after-commit hook). The
        # writer runs a transaction's hooks before it starts the next, so a lease of the
        # destination in a later transaction that finds one here knows its commit failed
        # and offers its entries again at once: left to the garbage collector dropping
        # the failed unit of work, they stayed out of reach for as long as a quiet daemon
        # with frozen start-up objects (gc.freeze) went without a full collection.
        # Leases in one transaction keep apart. (A failed batch is written again unit by
        # unit before any hook runs: two leases of one destination in it would share
        # entries; a process leases a destination from its one worker, once at a time.)
        self._taking: dict[int, _Taking] = {}
        self._tokens = itertools.count()
        self._outcomes: list[list[str]] = []  # committed, not yet applied in Redis
        self._acks_applied: list[int] = []  # acked in Redis: their queue_acked rows can go
        # An ack's row, written once however often the ack is: a confirmation committed
        # whose answer was lost is submitted again, and an owner whose entry was taken
        # over may confirm it after its new owner did.
        self._ack_row = conflict_insert(engine.dialect.name, queue_acked) \
            .on_conflict_do_nothing(index_elements=["entry_id"])
        self._flush_pending = False
        self._redis_back_at = 0.0  # time.monotonic() after a failure: see REDIS_PAUSE

    def check_persistence(self) -> bool:
        """False (and a warning) when Redis would lose the queues on restart."""
        try:
            aof = self._redis.config_get("appendonly").get("appendonly")
        except redis.RedisError:  # CONFIG may be disabled (managed Redis): cannot tell
            return True
        if aof != "yes":
            log.warning("the Redis queue's server runs without appendonly: a restart "
                        "loses every queued entry (docs/operations.md)")
        return aof == "yes"

    def close(self) -> None:
        self._redis.close()
        self._outbox_reads.close()

    def _key(self, kind: str, destination: str) -> str:
        return f"{self._p}:{kind}:{destination}"

    @staticmethod
    def put(uow: UnitOfWork, destination: str, message_id: str, output_id: str | None,
            now: float) -> None:
        uow.insert(queue_outbox, {"destination": destination, "message_id": message_id,
                                  "output_id": output_id, "created_at": now})

    def lease(self, destination: str, limit: int, by_key: bool = False) -> UnitOfWork:
        """Publish the destination's outbox, then lease up to `limit` entries from the
        head (engine.queue.redis_scripts.LEASE; LEASE_BY_KEY `by_key`); dead owners'
        entries taken over are one "reclaimed" event per owner. If Redis cannot be
        reached nothing is leased."""
        uow = UnitOfWork()
        token = next(self._tokens)
        script = self._lease_by_key_script if by_key else self._lease_script

        def run(conn: sa.Connection) -> list[Leased]:
            uow.events[:] = []  # assigned: the writer may run this again after a failure
            uow.after_commit[:] = []
            if time.monotonic() < self._redis_back_at:
                return []
            transaction = conn.get_transaction()
            with self._lock:
                self._taking.pop(token, None)  # a failed attempt's entries are offered again
                for t, taking in list(self._taking.items()):  # see _taking
                    if taking.destination == destination and taking.transaction is not transaction:
                        del self._taking[t]
                held = [h.stream_id for h in self._held.values() if h.destination == destination]
                held += [h.stream_id for taking in self._taking.values()
                         if taking.destination == destination
                         for h in taking.entries.values()]
                done = self._done(destination) if by_key else []
                applied = self._acks_applied[:ACKED_DELETE]
            rows, live = self._publishable(conn, destination)
            args: list[Any] = [self._p, destination, self.owner, limit,
                               int(self.owner_ttl * 500), FREE, len(rows)]
            for r in rows:
                args += [r.id, r.message_id, r.output_id or "", repr(r.created_at),
                         r.patient or ""]
            args += [len(held), *held, len(done), *done, *live]
            try:
                entries, reclaimed = script(keys=[f"{self._p}:ix"], args=args)
            except redis.RedisError as exc:
                self._redis_failed(exc)
                return []
            self._redis_answered()
            taken: dict[int, _Held] = {}
            found = []
            for sid, oid, message_id, output_id, queued_at, tried in entries:
                attempts, at = json.loads(tried)[:2] if tried else (0, float(queued_at))
                found.append(_Row(int(oid), message_id, output_id or None, attempts, at))
                taken[int(oid)] = _Held(destination, sid, message_id, output_id or None)
            channel, _, dest = destination.partition("/")
            uow.events[:] = [Event(kind=Kind.RECLAIMED, channel=channel, destination=dest,
                                   detail={"owner": dead, "entries": n})
                             for dead, n in zip(reclaimed[::2], reclaimed[1::2], strict=True)]
            # the published rows' and applied acks' deletes, the acks of entries taken
            # and the content's read: one round trip
            published = [queue_outbox.delete().where(
                queue_outbox.c.id.in_([r.id for r in rows]))] if rows else []
            if applied:
                published.append(queue_acked.delete().where(
                    queue_acked.c.entry_id.in_(applied)))
            reads = [sa.select(queue_acked.c.entry_id).where(
                queue_acked.c.entry_id.in_(list(taken))), content_of(found)] if found else []
            answers = pipelined(conn, *published, *reads)
            acked = {entry_id for (entry_id,) in answers[-2]} if found else set()
            for entry_id in acked:  # confirmed before, its removal lost: remove it now
                del taken[entry_id]
            with self._lock:
                self._taking[token] = _Taking(destination, transaction, taken)
            uow.after_commit[:] = [functools.partial(self._handed_out, token)] + [
                functools.partial(self._apply, ["a", str(entry_id)]) for entry_id in acked]
            if applied:
                uow.after_commit.append(functools.partial(self._deleted_acks, applied))
            found = [r for r in found if r.id not in acked]
            return with_content(found, answers[-1]) if found else []

        uow.query = run
        return uow

    def _deleted_acks(self, deleted: list[int]) -> None:
        gone = set(deleted)
        with self._lock:
            self._acks_applied = [i for i in self._acks_applied if i not in gone]

    def _done(self, destination: str) -> list[str]:
        """Stream ids of this owner's entries of `destination` confirmed or dead-lettered
        by a commit, not yet applied in Redis (_outcomes, which the event loop appends
        to: copied). A lease by key passes them by, so the patient's next entry goes at
        once rather than after the flush. Called with _lock held."""
        ids = {int(o[1]) for o in list(self._outcomes) if o[0] in ("a", "d")}
        return [h.stream_id for oid in ids
                if (h := self._held.get(oid)) is not None and h.destination == destination]

    def _publishable(self, conn: sa.Connection, destination: str
                     ) -> tuple[list[Any], list[str]]:
        """The destination's committed outbox rows (none while another process publishes
        them) and the live owners. On PostgreSQL the publishing lock and the owners go
        out in one round trip, with the transaction's BEGIN; the rows are read on a
        connection kept open between leases (see _outbox)."""
        if conn.dialect.name == "postgresql":
            [[(locked,)], live] = pipelined(
                conn, sa.select(sa.func.pg_try_advisory_xact_lock(publish_lock_key(destination))),
                owners.live(self.owner_ttl))
        else:  # SQLite's write lock already serialises publishers
            locked, live = True, [tuple(r) for r in conn.execute(owners.live(self.owner_ttl))]
        rows = self._outbox_reads.read(lambda committed: _outbox(committed, destination)) \
            if locked else []
        return rows, [owner for (owner,) in live]

    def _handed_out(self, token: int) -> None:
        with self._lock:
            taking = self._taking.pop(token, None)
            if taking is not None:
                self._held.update(taking.entries)

    def ack(self, uow: UnitOfWork, entry_id: int) -> None:
        uow.execute(self._ack_row, {"entry_id": entry_id, "acked_at": time.time()})
        uow.after_commit.append(functools.partial(self._apply, ["a", str(entry_id)]))

    def retry_later(self, uow: UnitOfWork, entry_id: int, attempts: int, at: float,
                    error: str) -> None:
        with self._lock:
            held = self._held.get(entry_id)
        if held is None:  # not this owner's: nothing to do, as in the SQL queue
            return
        state = json.dumps([attempts, at, error, held.message_id])
        uow.after_commit.append(functools.partial(
            self._apply, ["r", str(entry_id), self.owner, state]))

    def dead_letter(self, uow: UnitOfWork, entry_id: int, attempts: int, error: str) -> None:
        with self._lock:
            held = self._held.get(entry_id)
        if held is None:  # not this owner's: nothing to do, as in the SQL queue
            return
        dead = json.dumps([entry_id, held.message_id, held.output_id, attempts, error])
        uow.after_commit.append(functools.partial(
            self._apply, ["d", str(entry_id), self.owner, dead]))

    def release(self, uow: UnitOfWork, destination: str | None = None,
                any_owner: bool = False) -> None:
        uow.after_commit.append(functools.partial(
            self._apply, ["l", destination or "", "" if any_owner else self.owner]))

    def replay(self, destination: str, actor: str) -> UnitOfWork:
        """Every dead letter back at the tail, as new outbox rows (new ids, no
        attempts), published by the next lease; forgotten as dead once committed."""
        return self._clear_dead(destination, actor, Kind.REQUEUED, requeue=True)

    def discard(self, destination: str, actor: str) -> UnitOfWork:
        """Every dead letter removed; the messages stay in the store."""
        return self._clear_dead(destination, actor, Kind.DISCARDED, requeue=False)

    def _clear_dead(self, destination: str, actor: str, kind: Kind,
                    requeue: bool) -> UnitOfWork:
        uow = UnitOfWork()

        def run(conn: sa.Connection) -> int:
            members = self._redis.zrange(self._key("dead", destination), 0, -1)
            found = [json.loads(m) for m in members]
            taken = _take_dead(conn, [int(d[0]) for d in found])
            dead = [d for d in found if int(d[0]) in taken]  # not another's at once
            if requeue and dead:
                now = time.time()
                conn.execute(queue_outbox.insert(), [
                    {"destination": destination, "message_id": d[1], "output_id": d[2],
                     "created_at": now} for d in dead])
            channel, _, dest = destination.partition("/")
            uow.events[:] = [Event(kind=kind, actor=actor, channel=channel, destination=dest,
                                   message_id=d[1]) for d in dead]
            uow.after_commit[:] = [functools.partial(
                self._apply, ["z", destination, str(len(members)), *members])] if found else []
            return len(dead)

        uow.query = run
        return uow

    def _apply(self, outcome: list[str]) -> None:
        """An outcome is committed: queue it for Redis. Called by the writer on the event
        loop; the batch goes out before the committing coroutines resume."""
        self._outcomes.append(outcome)
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        outcomes = list(self._outcomes)
        wait = self._redis_back_at - time.monotonic()
        if not outcomes or wait > 0:
            if outcomes:
                self._flush_later(wait)
            return
        try:
            self._outcome_script(keys=[f"{self._p}:ix"],
                                 args=[self._p, FREE, *itertools.chain(*outcomes)])
        except redis.RedisError as exc:
            self._redis_failed(exc, f"; {len(outcomes)} outcome(s) kept to send again")
            self._flush_later(REDIS_PAUSE)
            return
        self._redis_answered()
        del self._outcomes[:len(outcomes)]
        with self._lock:
            for op, *args in outcomes:
                if op == "a":
                    self._acks_applied.append(int(args[0]))
                if op in ("a", "d"):
                    self._held.pop(int(args[0]), None)
                elif op == "l":
                    given_back = [oid for oid, h in self._held.items()
                                  if not args[0] or h.destination == args[0]]
                    for oid in given_back:
                        del self._held[oid]
        if self._outcomes:  # more arrived meanwhile
            self._flush_later(0)

    def _redis_failed(self, exc: Exception, detail: str = "") -> None:
        """Pause Redis calls; one warning per outage, not one per call."""
        if not self._redis_back_at:
            # Redis's own words (an OOM refusal, a script error) carry no message data.
            log.warning("the Redis queue cannot be reached (%s: %s)%s", type(exc).__name__,
                        str(exc).splitlines()[0][:200] if str(exc) else "", detail)
        self._redis_back_at = time.monotonic() + REDIS_PAUSE

    def _redis_answered(self) -> None:
        if self._redis_back_at:
            self._redis_back_at = 0.0
            log.warning("the Redis queue answers again")

    def _flush_later(self, delay: float) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_later(max(delay, 0.0), self._flush)

    def dead_letters(self, destination: str, limit: int = 20) -> list[DeadLetter]:
        """The newest dead letters of one destination, newest first."""
        dead = [json.loads(m) for m in
                self._redis.zrevrange(self._key("dead", destination), 0, limit - 1)]
        kept: set[int] = set()
        if dead:
            with self._reads.connect() as conn:
                kept = set(conn.execute(
                    sa.select(dead_letter_answers.c.queue_id).distinct()
                    .where(dead_letter_answers.c.queue_id.in_([d[0] for d in dead]))
                ).scalars())
        return [DeadLetter(d[1], d[3], d[4], d[0] in kept) for d in dead]

    def retrying(self, destination: str, limit: int = 3) -> list[Retrying]:
        """The first entries of one destination tried before, in stream order."""
        tried = self._redis.hgetall(self._key("try", destination))
        if not tried:
            return []
        places = self._redis.hmget(f"{self._p}:ix", list(tried))
        order = []
        for state, place in zip(tried.values(), places, strict=True):
            if place:  # else acknowledged meanwhile
                ms, _, seq = place.rpartition("\x1f")[2].partition("-")
                order.append(((int(ms), int(seq)), json.loads(state)))
        order.sort(key=lambda o: o[0])
        return [Retrying(s[3], s[0], s[1], s[2]) for _, s in order[:limit]]

    def stats(self) -> list[QueueStats]:
        """Counts per destination: Redis's streams, plus outbox rows not published yet
        (ready)."""
        by_dest: dict[str, QueueStats] = {}
        dests = sorted(self._redis.smembers(f"{self._p}:dests"))
        with self._redis.pipeline(transaction=False) as pipe:
            for d in dests:
                pipe.xlen(self._key("s", d))
                pipe.xpending(self._key("s", d), GROUP)
                pipe.hlen(self._key("try", d))
                pipe.zcard(self._key("dead", d))
                pipe.xrange(self._key("s", d), count=1)
            replies = pipe.execute()
        for n, d in enumerate(dests):
            length, pending, tried, dead, first = replies[5 * n:5 * n + 5]
            free = sum(c["pending"] for c in pending["consumers"] if c["name"] == FREE)
            leased = pending["pending"] - free
            by_dest[d] = QueueStats(d, ready=length - leased, leased=leased, retrying=tried,
                                    dead=dead,
                                    oldest_at=float(first[0][1]["t"]) if first else None)
        with self._reads.connect() as conn:
            unpublished = conn.execute(
                sa.select(queue_outbox.c.destination, sa.func.count(),
                          sa.func.min(queue_outbox.c.created_at))
                .group_by(queue_outbox.c.destination)).all()
        for d, count, oldest in unpublished:
            s = by_dest.setdefault(d, QueueStats(d))
            s.ready += count
            if s.oldest_at is None or oldest < s.oldest_at:
                s.oldest_at = oldest
        return sorted((s for s in by_dest.values() if s.ready or s.leased or s.dead),
                      key=lambda s: s.destination)


def from_config(config: Any, engine: sa.Engine, owner: str) -> RedisStreamsQueue:
    """The queue a `queue: {type: redis}` configuration asks for (engine.registry)."""
    return RedisStreamsQueue(engine, config.url, owner, prefix=config.prefix)


def _take_dead(conn: sa.Connection, entry_ids: list[int]) -> set[int]:
    """The dead letters this transaction takes for a retry or discard: those no other
    took first (on PostgreSQL an insert of the same entry waits for the other's commit,
    then takes nothing)."""
    if not entry_ids:
        return set()
    now = time.time()
    insert = conflict_insert(conn.dialect.name, dead_taken)
    conn.execute(dead_taken.delete().where(dead_taken.c.taken_at < now - DEAD_TAKEN_KEPT))
    taken: set[int] = set()
    for at in range(0, len(entry_ids), 1000):  # within SQLite's bound parameters
        taken.update(conn.execute(
            insert.values([{"entry_id": i, "taken_at": now} for i in entry_ids[at:at + 1000]])
            .on_conflict_do_nothing().returning(dead_taken.c.entry_id)).scalars())
    return taken


def _outbox(committed: sa.Connection, destination: str) -> list[Any]:
    """The destination's committed outbox rows in id order, read on a connection of
    their own: the writer's transaction also holds puts not committed yet, which must
    reach no other process before they are. With each, its message's patient pseudonym:
    the key of FIFO per key, published whatever the destination's order, so a change of
    order finds every entry keyed. Read only under the publishing lock (PostgreSQL: a
    transaction-scoped advisory lock, tried without waiting, so two writers never wait
    on each other's rows; SQLite's write lock already serialises)."""
    return committed.execute(
        sa.select(queue_outbox.c.id, queue_outbox.c.message_id, queue_outbox.c.output_id,
                  queue_outbox.c.created_at, messages.c.patient)
        .select_from(queue_outbox.outerjoin(messages,
                                            messages.c.id == queue_outbox.c.message_id))
        .where(queue_outbox.c.destination == destination)
        .order_by(queue_outbox.c.id).limit(PUBLISH_BATCH)).all()
