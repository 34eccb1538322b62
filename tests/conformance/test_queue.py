"""What every queue backend must do (engine.queue.base.Queue), run against each one.

A backend is added to QUEUES; every test then runs against it on both store databases
(the message store, which holds the content, is always SQL). The tests use only the
protocol, the Writer and the message store, as the engine does, never a backend's
tables. What needs several owners of one database (exclusive destinations, leases of a
dead owner taken over, a heartbeat) is in tests/integration/test_queue_leasing.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable

import pytest
import redis
import sqlalchemy as sa

from engine.errors import StoreError
from engine.events import Event, Kind
from engine.queue import owners
from engine.queue.base import Leased, Queue
from engine.queue.redis_streams import RedisStreamsQueue
from engine.queue.sql import SqlQueue
from engine.security.crypto import Vault
from engine.security.keys import KeyRing
from engine.store.database import open_database
from engine.store.messages import MessageStore
from engine.store.writer import UnitOfWork, Writer

DEST, OTHER = "adt/ehr", "adt/lab"

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_prefix(db: sa.Engine) -> str:
    """A key prefix of the test's own: every test has a store database of its own."""
    return "conduit-test-" + hashlib.sha1(str(db.url).encode()).hexdigest()[:16]


# name -> how to build that backend on a store database, for one owner.
QUEUES: dict[str, Callable[[sa.Engine, str], Queue]] = {
    "sql": lambda db, owner: SqlQueue(db, owner=owner),
    "redis": lambda db, owner: RedisStreamsQueue(db, REDIS_URL, owner=owner,
                                                 prefix=redis_prefix(db)),
}


class Env:
    """One backend on a fresh store, with the writer the engine commits through."""

    def __init__(self, make: Callable[[sa.Engine, str], Queue], db: sa.Engine,
                 writer: Writer, store: MessageStore, vault: Vault,
                 events: list[Event]) -> None:
        self.make = make
        self.db = db
        self.writer = writer
        self.store = store
        self.vault = vault
        self.events = events  # everything committed, in order
        self.q = make(db, "host:1:conformance")
        self.audit_key = b""
        self._n = 0

    async def add(self, n: int, *destinations: str, now: float | None = None,
                  output: bool = False) -> list[str]:
        """`n` messages, each queued for `destinations` (DEST if none) in the same
        commit as the message; their ids, in order."""
        ids = []
        for _ in range(n):
            self._n += 1
            mid = f"M{self._n:025d}"
            uow = UnitOfWork()
            self.store.add_message(uow, _row(mid, self._n), b"MSH|raw|" + mid.encode())
            out = (self.store.add_output(uow, mid, "adt@1", "application/fhir+json",
                                         b'{"out": "%s"}' % mid.encode()) if output else None)
            for dest in destinations or (DEST,):
                self.q.put(uow, dest, mid, out, time.time() if now is None else now)
            uow.record(Event(kind=Kind.RECEIVED, channel="adt", message_id=mid))
            await self.writer.commit(uow)
            ids.append(mid)
        return ids

    async def add_for(self, *patients: str | None) -> list[str]:
        """One message per patient pseudonym given (None: a message without a patient),
        in order, each queued for DEST in its own commit; their ids."""
        ids = []
        for patient in patients:
            self._n += 1
            mid = f"M{self._n:025d}"
            uow = UnitOfWork()
            self.store.add_message(uow, {**_row(mid, self._n), "patient": patient},
                                   b"MSH|raw|" + mid.encode())
            self.q.put(uow, DEST, mid, None, time.time())
            await self.writer.commit(uow)
            ids.append(mid)
        return ids

    async def lease(self, destination: str = DEST, limit: int = 100) -> list[Leased]:
        return await self.writer.commit(self.q.lease(destination, limit))

    async def lease_by_key(self, limit: int = 100, q: Queue | None = None) -> list[Leased]:
        return await self.writer.commit((q or self.q).lease(DEST, limit, by_key=True))

    async def apply(self, change: Callable[[UnitOfWork], object]) -> None:
        uow = UnitOfWork()
        change(uow)
        await self.writer.commit(uow)

    async def release(self, destination: str | None = None) -> None:
        await self.apply(lambda uow: self.q.release(uow, destination))

    def stats(self) -> dict[str, tuple[int, int, int, int]]:
        return {s.destination: (s.ready, s.leased, s.retrying, s.dead) for s in self.q.stats()}


def _row(mid: str, n: int) -> dict:
    return {"id": mid, "channel": "adt", "received_at": time.time(), "status": "accepted",
            "standard": "hl7v2", "message_type": "ADT^A01", "control_id": f"C{n}",
            "sender": "A^B", "peer": "127.0.0.1:1", "patient": f"pseudonym-{n}",
            "content_hash": "h", "error": None}


def ids_of(entries: list[Leased]) -> list[str]:
    return [e.message_id for e in entries]


@pytest.fixture(params=sorted(QUEUES))
async def env(request, db_url, tmp_path):
    keys = KeyRing.load(tmp_path / "keys")
    vault = Vault(keys)
    db = open_database(db_url)
    events: list[Event] = []
    writer = Writer(db, keys.audit, on_committed=events.extend)
    writer.start()
    e = Env(QUEUES[request.param], db, writer, MessageStore(db, vault), vault, events)
    e.audit_key = keys.audit  # for a second writer, as another process has
    yield e
    await writer.close()
    if request.param == "redis":  # the test's keys go with it
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{{{redis_prefix(db)}}}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    db.dispose()


async def test_implements_the_protocol(env):
    assert isinstance(env.q, Queue)
    assert env.q.owner == "host:1:conformance"
    assert env.q.stats() == []
    assert await env.lease() == []


async def test_put_then_lease_is_fifo_per_destination(env):
    ids = await env.add(6, DEST, OTHER)
    more = await env.add(3, OTHER)
    assert ids_of(await env.lease(OTHER)) == ids + more
    assert ids_of(await env.lease(DEST)) == ids


async def test_lease_respects_limit_and_never_gives_an_entry_twice(env):
    ids = await env.add(5)
    assert ids_of(await env.lease(limit=2)) == ids[:2]
    assert ids_of(await env.lease(limit=2)) == ids[2:4]
    assert ids_of(await env.lease(limit=10)) == ids[4:]
    assert await env.lease() == []


async def test_leases_committed_together_never_share_an_entry(env):
    """Units of work the writer gathers into one transaction, as workers' leases are."""
    ids = await env.add(12)
    batches = await asyncio.gather(*(env.lease(limit=3) for _ in range(5)))
    taken = [mid for batch in batches for mid in ids_of(batch)]
    assert sorted(taken) == ids
    for batch in batches:  # each batch is a run of the queue, in order
        if batch:
            start = ids.index(batch[0].message_id)
            assert ids_of(batch) == ids[start:start + len(batch)]


async def test_content_and_ids_come_back_as_put(env):
    now = time.time() - 30
    [raw_id] = await env.add(1, now=now)
    [out_id] = await env.add(1, output=True)
    raw, out = await env.lease()
    assert (raw.message_id, raw.output_id, raw.attempts) == (raw_id, None, 0)
    assert raw.available_at == pytest.approx(now)
    assert (raw.control_id, raw.patient, raw.content_type) == ("C1", "pseudonym-1", "")
    assert raw.record_id == raw_id
    assert env.vault.open(raw.key_id, raw.sealed, raw.record_id) == b"MSH|raw|" + raw_id.encode()
    assert raw.received_at == pytest.approx(env.store.get(raw_id).received_at)

    [output] = env.store.outputs_of(out_id)
    assert (out.message_id, out.output_id, out.record_id) == (out_id, output["id"], output["id"])
    assert out.content_type == "application/fhir+json"
    opened = env.vault.open(out.key_id, out.sealed, out.record_id)
    assert opened == b'{"out": "%s"}' % out_id.encode()
    assert raw.id != out.id


async def test_put_is_part_of_the_message_commit(env):
    """Queued in the same commit as the message: a refused commit queues nothing, and a
    unit of work never committed queues nothing."""
    [mid] = await env.add(1)
    uow = UnitOfWork()
    env.store.add_message(uow, _row(mid, 1), b"again")  # the same id: the commit fails
    env.q.put(uow, OTHER, mid, None, time.time())
    with pytest.raises(StoreError):
        await env.writer.commit(uow)
    uncommitted = UnitOfWork()
    env.q.put(uncommitted, OTHER, mid, None, time.time())
    assert await env.lease(OTHER) == []
    assert set(env.stats()) == {DEST}


async def test_ack_removes_the_entry(env):
    ids = await env.add(3)
    a, b, c = await env.lease()
    await env.apply(lambda uow: env.q.ack(uow, b.id))
    assert env.stats() == {DEST: (0, 2, 0, 0)}
    await env.release()
    assert ids_of(await env.lease()) == [ids[0], ids[2]]
    await env.apply(lambda uow: (env.q.ack(uow, a.id), env.q.ack(uow, c.id)))
    assert env.q.stats() == []
    assert await env.lease() == []


async def test_retry_later_keeps_the_entry_at_the_head(env):
    ids = await env.add(3)
    head, *_ = await env.lease()
    due = time.time() + 60
    await env.apply(lambda uow: env.q.retry_later(uow, head.id, 2, due, "HTTP 503"))
    assert env.stats() == {DEST: (0, 3, 1, 0)}  # still leased by this owner
    [r] = env.q.retrying(DEST)
    assert (r.message_id, r.attempts, r.last_error) == (ids[0], 2, "HTTP 503")
    assert r.next_at == pytest.approx(due)

    await env.release()
    again = await env.lease(limit=2)  # not yet due, and still given first: the worker waits
    assert ids_of(again) == ids[:2]
    assert (again[0].attempts, again[1].attempts) == (2, 0)
    assert again[0].available_at == pytest.approx(due)
    assert again[1].available_at <= time.time()


async def test_retrying_lists_the_first_entries_tried_before_in_queue_order(env):
    ids = await env.add(5)
    entries = await env.lease()
    due = time.time() + 60

    def refuse(uow):
        for n, e in enumerate(entries[:4]):
            env.q.retry_later(uow, e.id, n + 1, due, f"refused {n}")
    await env.apply(refuse)
    assert [(r.message_id, r.attempts) for r in env.q.retrying(DEST)] == [
        (ids[0], 1), (ids[1], 2), (ids[2], 3)]  # 3 by default
    assert len(env.q.retrying(DEST, limit=10)) == 4
    assert env.q.retrying(OTHER) == []


async def test_dead_letter_takes_the_entry_out_with_its_reason(env):
    ids = await env.add(4)
    _, b, c, _ = await env.lease()
    await env.apply(lambda uow: env.q.dead_letter(uow, b.id, 3, "HTTP 400"))
    await env.apply(lambda uow: env.q.dead_letter(uow, c.id, 1, "gave up"))
    assert env.stats() == {DEST: (0, 2, 0, 2)}
    assert [(d.message_id, d.attempts, d.last_error, d.answer_kept)
            for d in env.q.dead_letters(DEST)] == [
        (ids[2], 1, "gave up", False), (ids[1], 3, "HTTP 400", False)]  # newest first
    assert ids_of(env.q.dead_letters(DEST, limit=1)) == [ids[2]]
    assert env.q.retrying(DEST) == []
    await env.release()
    assert ids_of(await env.lease()) == [ids[0], ids[3]]


async def test_replay_puts_dead_letters_back_at_the_tail_with_an_event_each(env):
    ids = await env.add(4)
    entries = await env.lease()
    await env.apply(lambda uow: [env.q.dead_letter(uow, e.id, 5, "HTTP 400")
                                 for e in entries[:2]])
    await env.release()
    env.events.clear()
    assert await env.writer.commit(env.q.replay(DEST, "cli:bob")) == 2
    assert [(e.kind, e.actor, e.channel, e.destination, e.message_id) for e in env.events] == [
        (Kind.REQUEUED, "cli:bob", "adt", "ehr", mid) for mid in ids[:2]]
    assert env.q.dead_letters(DEST) == []
    again = await env.lease()
    assert ids_of(again) == ids[2:] + ids[:2]
    assert [e.attempts for e in again] == [0] * 4
    assert await env.writer.commit(env.q.replay(DEST, "cli:bob")) == 0


async def test_discard_removes_dead_letters_with_an_event_each(env):
    ids = await env.add(3)
    entries = await env.lease()
    await env.apply(lambda uow: [env.q.dead_letter(uow, e.id, 1, "HTTP 400")
                                 for e in entries[1:]])
    await env.release()
    env.events.clear()
    assert await env.writer.commit(env.q.discard(DEST, "web:alice")) == 2
    assert [(e.kind, e.actor, e.message_id) for e in env.events] == [
        (Kind.DISCARDED, "web:alice", mid) for mid in ids[1:]]
    assert env.q.dead_letters(DEST) == []
    assert env.stats() == {DEST: (1, 0, 0, 0)}
    assert ids_of(await env.lease()) == ids[:1]
    assert all(env.store.get(mid) is not None for mid in ids)  # the messages stay


async def test_release_gives_leases_back_in_place(env):
    ids = await env.add(3, DEST, OTHER)
    assert ids_of(await env.lease(limit=2)) == ids[:2]
    assert ids_of(await env.lease(OTHER)) == ids
    await env.release(OTHER)  # only that destination
    assert env.stats() == {DEST: (1, 2, 0, 0), OTHER: (3, 0, 0, 0)}
    await env.release()  # every lease of this owner
    assert env.stats() == {DEST: (3, 0, 0, 0), OTHER: (3, 0, 0, 0)}
    assert ids_of(await env.lease()) == ids


async def test_release_of_any_owner_takes_back_every_lease(env):
    """Start-up of an engine that alone uses its queues: leases a crash left behind, by
    an owner that will not come back, are taken back at once."""
    ids = await env.add(3)
    gone = env.make(env.db, "host:2:crashed")
    assert len(await env.writer.commit(gone.lease(DEST, 2))) == 2
    await env.release()  # this owner's leases only: not the crashed one's
    assert env.stats() == {DEST: (1, 2, 0, 0)}
    await env.apply(lambda uow: env.q.release(uow, any_owner=True))
    assert env.stats() == {DEST: (3, 0, 0, 0)}
    assert ids_of(await env.lease()) == ids


async def test_destinations_are_independent(env):
    ids = await env.add(3, DEST, OTHER)
    mine = await env.lease(DEST)
    due = time.time() + 60
    await env.apply(lambda uow: (env.q.retry_later(uow, mine[0].id, 1, due, "HTTP 503"),
                                 env.q.dead_letter(uow, mine[1].id, 1, "HTTP 400"),
                                 env.q.ack(uow, mine[2].id)))
    assert env.stats() == {DEST: (0, 1, 1, 1), OTHER: (3, 0, 0, 0)}
    assert env.q.dead_letters(OTHER) == [] and env.q.retrying(OTHER) == []
    assert await env.writer.commit(env.q.replay(OTHER, "cli:bob")) == 0
    assert await env.writer.commit(env.q.discard(OTHER, "cli:bob")) == 0
    assert len(env.q.dead_letters(DEST)) == 1
    theirs = await env.lease(OTHER)
    assert ids_of(theirs) == ids
    assert [e.attempts for e in theirs] == [0, 0, 0]


async def test_stats_count_each_state_and_the_oldest_entry(env):
    t0 = time.time() - 100
    await env.add(1, DEST, OTHER, now=t0)
    await env.add(4, DEST, now=t0 + 10)
    a, b, c, *_ = await env.lease(limit=3)
    await env.apply(lambda uow: (env.q.retry_later(uow, b.id, 1, time.time() + 60, "503"),
                                 env.q.dead_letter(uow, c.id, 1, "400")))
    dest, other = env.q.stats()  # sorted by destination
    assert (dest.destination, dest.ready, dest.leased, dest.retrying, dest.dead) == (
        DEST, 2, 2, 1, 1)
    assert dest.oldest_at == pytest.approx(t0)
    assert (other.destination, other.ready, other.leased, other.dead) == (OTHER, 1, 0, 0)
    assert other.oldest_at == pytest.approx(t0)

    # Dead letters are not waiting to be delivered: they do not age the queue.
    await env.apply(lambda uow: env.q.dead_letter(uow, a.id, 1, "400"))
    await env.release()
    [dest] = [s for s in env.q.stats() if s.destination == DEST]
    assert (dest.ready, dest.leased, dest.retrying, dest.dead) == (3, 0, 1, 2)
    assert dest.oldest_at == pytest.approx(t0 + 10)


# ------------------------------------------------- FIFO per key (the patient pseudonym)


async def test_by_key_leases_the_first_entry_of_each_patient_in_queue_order(env):
    a1, a2, b1, c1, _b2, n1, _n2, _c2 = await env.add_for(
        "pa", "pa", "pb", "pc", "pb", None, None, "pc")
    heads = await env.lease_by_key()
    assert ids_of(heads) == [a1, b1, c1, n1]  # messages without a patient: one key
    assert await env.lease_by_key() == []  # each patient's head is held by this owner
    await env.apply(lambda uow: env.q.ack(uow, heads[0].id))
    assert ids_of(await env.lease_by_key()) == [a2]
    assert env.stats() == {DEST: (3, 4, 0, 0)}


async def test_by_key_respects_the_limit_and_gives_no_entry_twice(env):
    ids = await env.add_for(*(f"p{i % 5}" for i in range(15)))
    first = await env.lease_by_key(limit=2)
    second = await env.lease_by_key(limit=2)
    third = await env.lease_by_key(limit=10)
    assert ids_of(first + second + third) == ids[:5]
    assert await env.lease_by_key() == []


async def test_by_key_leases_committed_together_share_no_entry_and_no_patient(env):
    ids = await env.add_for(*(f"p{i % 4}" for i in range(12)))
    batches = await asyncio.gather(*(env.lease_by_key(limit=2) for _ in range(5)))
    taken = [mid for batch in batches for mid in ids_of(batch)]
    assert sorted(taken) == ids[:4]  # each patient's head once; the rest wait


async def test_by_key_a_retrying_entry_holds_back_its_patient_only(env):
    a1, b1, _a2, b2, c1 = await env.add_for("pa", "pb", "pa", "pb", "pc")
    held = await env.lease_by_key()
    assert ids_of(held) == [a1, b1, c1]
    head_a, head_b, head_c = held
    due = time.time() + 60
    await env.apply(lambda uow: (env.q.retry_later(uow, head_a.id, 1, due, "HTTP 503"),
                                 env.q.ack(uow, head_b.id), env.q.ack(uow, head_c.id)))
    assert ids_of(await env.lease_by_key()) == [b2]  # a2 waits behind a1's retry
    [r] = env.q.retrying(DEST)
    assert (r.message_id, r.attempts) == (a1, 1)

    await env.release()  # given back in place: a1, not yet due, still comes first
    again = await env.lease_by_key()
    assert ids_of(again) == [a1, b2]
    assert again[0].attempts == 1 and again[0].available_at == pytest.approx(due)


async def test_by_key_a_dead_letter_holds_back_nothing(env):
    """As in strict FIFO, a dead letter leaves the queue: the patient's next message goes
    on (the operator replays the dead one, to the tail)."""
    a1, a2, _b1 = await env.add_for("pa", "pa", "pb")
    head_a, _ = await env.lease_by_key()
    await env.apply(lambda uow: env.q.dead_letter(uow, head_a.id, 3, "HTTP 400"))
    assert ids_of(await env.lease_by_key()) == [a2]
    assert ids_of(env.q.dead_letters(DEST)) == [a1]


async def test_by_key_another_live_owner_holds_back_only_its_patients(env):
    """Processes share a destination by patient: each takes the heads the other does not
    hold, and never a patient the other is delivering."""
    a1, b1, a2, c1, _b2 = await env.add_for("pa", "pb", "pa", "pc", "pb")
    other = env.make(env.db, "host:2:alive")
    for live in (env.q, other):
        await env.writer.commit(owners.beat(live.owner))
    theirs = await env.lease_by_key(limit=1, q=other)
    assert ids_of(theirs) == [a1]
    assert ids_of(await env.lease_by_key()) == [b1, c1]  # not a2: a1 is the other's
    assert await env.lease_by_key(q=other) == []
    await env.apply(lambda uow: other.ack(uow, theirs[0].id))
    assert ids_of(await env.lease_by_key(q=other)) == [a2]
    assert not [e for e in env.events if e.kind == Kind.RECLAIMED]


async def test_by_key_a_dead_owners_entries_are_taken_over_in_each_patients_order(env):
    a1, b1, a2, b2, c1 = await env.add_for("pa", "pb", "pa", "pb", "pc")
    gone = env.make(env.db, "host:2:crashed")  # never beats: dead once idle
    assert ids_of(await env.lease_by_key(limit=2, q=gone)) == [a1, b1]
    env.q.owner_ttl = 0.2  # how long this owner waits on an owner it cannot see beating
    await asyncio.sleep(0.3)
    env.events.clear()
    taken = await env.lease_by_key()
    assert ids_of(taken) == [a1, b1, c1]  # the heads again, not a2 or b2
    [reclaimed] = [e for e in env.events if e.kind == Kind.RECLAIMED]
    assert reclaimed.detail == {"owner": "host:2:crashed", "entries": 2}
    await env.apply(lambda uow: [env.q.ack(uow, e.id) for e in taken])
    assert ids_of(await env.lease_by_key()) == [a2, b2]
    await env.writer.commit(owners.beat(env.q.owner))
    assert await env.lease_by_key(q=gone) == []  # back, it finds its patients taken


async def test_strict_and_by_key_leases_agree_on_what_is_held(env):
    """A destination switched between orders: a strict lease waits for everything this
    owner holds; a by_key lease after strict ones holds back the patients leased."""
    a1, b1, a2, c1 = await env.add_for("pa", "pb", "pa", "pc")
    assert ids_of(await env.lease(limit=2)) == [a1, b1]
    assert ids_of(await env.lease_by_key()) == [c1]
    await env.release()
    assert ids_of(await env.lease()) == [a1, b1, a2, c1]



async def test_by_key_two_owners_delivering_at_once_keep_each_patients_order(env):
    """Two owners, each with a writer of its own, lease by patient and confirm as fast as
    they can: every entry is delivered once, each patient's in queue order."""
    patients = [f"p{i % 7}" for i in range(70)]
    ids = await env.add_for(*patients)
    patient_of = dict(zip(ids, patients, strict=True))
    delivered: list[tuple[str, str]] = []  # (message id, owner), as confirmed
    second = Writer(env.db, env.audit_key)
    second.start()
    owners_ = [(env.q, env.writer), (env.make(env.db, "host:2:conformance"), second)]
    for q, writer in owners_:
        await writer.commit(owners.beat(q.owner))

    async def deliver(q: Queue, writer: Writer) -> None:
        deadline = time.monotonic() + 30
        while len(delivered) < len(ids):
            assert time.monotonic() < deadline, "not drained in time"
            batch = await writer.commit(q.lease(DEST, 3, by_key=True))
            for entry in batch:
                delivered.append((entry.message_id, q.owner))
                uow = UnitOfWork()
                q.ack(uow, entry.id)
                await writer.commit(uow)
            await asyncio.sleep(0 if batch else 0.005)

    try:
        await asyncio.gather(*(deliver(q, w) for q, w in owners_))
    finally:
        await second.close()
    got = [mid for mid, _ in delivered]
    assert sorted(got) == ids  # each once
    for p in set(patients):
        assert [m for m in got if patient_of[m] == p] == [m for m in ids if patient_of[m] == p]
    assert {owner for _, owner in delivered} == {q.owner for q, _ in owners_}
