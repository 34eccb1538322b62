"""Retention (engine.store.retention) on the real stores and queues: content older than a
channel's retention goes, batch by batch, audited, and never while a queue (SQL or Redis
Streams) still holds the message; what stays still resolves and still verifies."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time

import pytest
import redis
import sqlalchemy as sa

from engine.events import Event, Kind
from engine.message import Answer
from engine.queue.holds import RedisHolds, holds_for
from engine.queue.redis_streams import RedisStreamsQueue
from engine.queue.sql import SqlQueue
from engine.security.crypto import Vault
from engine.security.keys import KeyRing
from engine.store import answers
from engine.store import audit as audit_chain
from engine.store.database import open_database
from engine.store.messages import MessageStore
from engine.store.retention import PRUNED, ContentPruned, Pruner, pruned
from engine.store.schema import audit, dead_letter_answers, messages, outputs
from engine.store.writer import UnitOfWork, Writer

DAY = 86400.0
DEST = "adt/ehr"
REDIS_URL = "redis://127.0.0.1:6379/0"


def id_at(at: float) -> str:
    """A message id as the engine would have made it at time `at` (ids sort by time)."""
    raw = int(at * 1000).to_bytes(6, "big") + os.urandom(10)
    return base64.b32hexencode(raw).decode()[:26]


def redis_prefix(db: sa.Engine) -> str:
    return "conduit-retention-" + hashlib.sha1(str(db.url).encode()).hexdigest()[:16]


class Store:
    """One store database with its writer, message store and a queue backend."""

    def __init__(self, db_url: str, keys_dir, queue_kind: str) -> None:
        keys = KeyRing.load(keys_dir)
        self.keys = keys
        self.vault = Vault(keys)
        self.db = open_database(db_url)
        self.writer = Writer(self.db, keys.audit)
        self.store = MessageStore(self.db, self.vault)
        self.q = (SqlQueue(self.db, owner="host:1:retention") if queue_kind == "sql" else
                  RedisStreamsQueue(self.db, REDIS_URL, "host:1:retention",
                                    prefix=redis_prefix(self.db)))
        self.n = 0

    async def add(self, age_days: float, *, queued: bool = True, output: bool = True,
                  channel: str = "adt") -> str:
        """A message received `age_days` ago, with an output, queued for DEST."""
        self.n += 1
        at = time.time() - age_days * DAY
        mid = id_at(at)
        uow = UnitOfWork()
        self.store.add_message(uow, {
            "id": mid, "channel": channel, "received_at": at, "status": "accepted",
            "standard": "hl7v2", "message_type": "ADT^A01", "control_id": f"C{self.n}",
            "sender": "EPIC^NORTH", "peer": "127.0.0.1:1", "patient": f"pseud{self.n}",
            "content_hash": "h" * 64, "error": None}, b"MSH|^~\\&|PID|SMITH^ALEX|" + mid.encode())
        out = (self.store.add_output(uow, mid, "adt@1", "application/fhir+json",
                                     b'{"name": "SMITH"}') if output else None)
        if queued:
            self.q.put(uow, f"{channel}/ehr", mid, out, time.time())
        uow.record(Event(kind=Kind.RECEIVED, channel=channel, message_id=mid))
        await self.writer.commit(uow)
        return mid

    async def deliver_all(self) -> None:
        """Lease every entry of DEST and confirm it."""
        while entries := await self.writer.commit(self.q.lease(DEST, 100)):
            uow = UnitOfWork()
            for e in entries:
                self.q.ack(uow, e.id)
            await self.writer.commit(uow)
            await asyncio.sleep(0.01)  # the Redis queue applies outcomes after the commit

    async def dead_letter_head(self) -> str:
        """Lease the head of DEST and dead-letter it, keeping the receiver's answer."""
        [entry] = await self.writer.commit(self.q.lease(DEST, 1))
        uow = UnitOfWork()
        self.q.dead_letter(uow, entry.id, 3, "HTTP 422")
        answers.keep(uow, self.vault, entry_id=entry.id, message_id=entry.message_id,
                     destination=DEST, code="422", reason="HTTP 422",
                     answer=Answer(b'{"issue": "SMITH already exists"}',
                                   "application/fhir+json"))
        await self.writer.commit(uow)
        await asyncio.sleep(0.01)
        return entry.message_id

    def pruner(self, retention_days: float = 30, **kw) -> Pruner:
        return Pruner(self.writer, lambda: {"adt": retention_days * DAY},
                      holds=holds_for(self.q), **kw)

    def content(self, mid: str) -> bytes:
        return self.store.open_raw(mid)

    def rows(self, table: sa.Table, mid: str) -> list:
        col = table.c.id if table is messages else table.c.message_id
        with self.db.connect() as conn:
            return conn.execute(sa.select(table.c.key_id, table.c.content)
                                .where(col == mid)).all()

    def pruned_events(self) -> list[dict]:
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(audit.c.detail, audit.c.actor, audit.c.channel)
                                .where(audit.c.kind == "admin").order_by(audit.c.seq)).all()
        return [{**json.loads(r.detail), "actor": r.actor, "channel": r.channel}
                for r in rows if json.loads(r.detail).get("action") == "retention-pruned"]

    def verify(self):
        with self.db.connect() as conn:
            return audit_chain.verify(conn, self.keys.audit)


@pytest.fixture(params=["sql", "redis"])
async def st(request, db_url, tmp_path):
    s = Store(db_url, tmp_path / "keys", request.param)
    s.writer.start()
    yield s
    await s.writer.close()
    _close(s, redis_keys=request.param == "redis")


def _close(st: Store, *, redis_keys: bool) -> None:
    """Close the store's database, first removing the Redis keys its queue made."""
    if redis_keys:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{{{redis_prefix(st.db)}}}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    st.db.dispose()


async def test_old_delivered_content_goes_and_everything_else_stays(st):
    delivered = [await st.add(40), await st.add(35)]
    young = await st.add(5)
    await st.deliver_all()
    dead = await st.add(45)
    await st.dead_letter_head()  # the head now is the 45-day-old one
    queued = await st.add(50)  # still waiting for the receiver

    [result] = await st.pruner().run_once()

    assert (result.messages, result.outputs, result.held) == (2, 2, 2)
    for mid in delivered:
        with pytest.raises(ContentPruned, match="pruned under its channel's retention"):
            st.content(mid)
        with pytest.raises(ContentPruned):
            await st.store.read(st.writer, mid, "user:ana", "INC-1")
        assert st.rows(messages, mid) == [(PRUNED, b"")]
        assert st.rows(outputs, mid) == [(PRUNED, b"")]
        assert st.store.open_outputs(mid) == []
        stored = st.store.get(mid)  # the metadata remains: the id still resolves
        assert (stored.control_id, stored.status, stored.patient) != (None, None, None)
        assert stored.status == "accepted" and pruned(st.db, mid)
    for mid in (young, dead, queued):
        assert st.content(mid).endswith(mid.encode())
        assert not pruned(st.db, mid)
        assert st.rows(outputs, mid)[0].key_id != PRUNED
    [event] = st.pruned_events()
    assert event["channel"] == "adt" and event["actor"] == "retention"
    assert (event["messages"], event["outputs"], event["retention"]) == (2, 2, "30d")
    assert sorted(event["ids"]) == sorted(delivered)
    assert "SMITH" not in json.dumps(event)
    assert st.verify().broken is None


async def test_held_messages_go_once_delivered_or_discarded(st):
    dead = await st.add(45)
    queued = await st.add(50)
    await st.dead_letter_head()
    pruner = st.pruner()
    [first] = await pruner.run_once()
    assert (first.messages, first.held) == (0, 2)
    assert st.pruned_events() == []

    await st.writer.commit(st.q.discard(DEST, "user:ops"))  # the dead letter, given up
    await asyncio.sleep(0.01)
    [second] = await pruner.run_once()
    assert (second.messages, second.answers, second.held) == (1, 1, 1)
    assert pruned(st.db, dead) and not pruned(st.db, queued)
    assert st.rows(dead_letter_answers, dead) == [(PRUNED, b"")]

    await st.deliver_all()
    [third] = await pruner.run_once()
    assert (third.messages, third.held) == (1, 0)
    assert pruned(st.db, queued)
    assert [e["ids"] for e in st.pruned_events()] == [[dead], [queued]]
    assert (await pruner.run_once())[0].messages == 0  # nothing twice
    assert st.verify().broken is None


async def test_a_requeued_dead_letter_keeps_its_content(st):
    mid = await st.add(45)
    await st.dead_letter_head()
    await st.writer.commit(st.q.replay(DEST, "user:ops"))
    await asyncio.sleep(0.01)
    [result] = await st.pruner().run_once()
    assert (result.messages, result.held) == (0, 1)
    [entry] = await st.writer.commit(st.q.lease(DEST, 10))  # and it can still be sent
    assert entry.message_id == mid
    assert st.vault.open(entry.key_id, entry.sealed, entry.record_id) == b'{"name": "SMITH"}'
    assert st.content(mid).endswith(mid.encode())


async def test_batches_are_bounded_and_each_audited(st):
    old = [await st.add(40 + i, queued=False) for i in range(12)]
    [result] = await st.pruner(batch=5).run_once()
    assert result.messages == 12
    events = st.pruned_events()
    assert [e["messages"] for e in events] == [5, 5, 2]
    assert sorted(i for e in events for i in e["ids"]) == sorted(old)
    assert all(pruned(st.db, mid) for mid in old)
    assert st.verify().broken is None


async def test_other_channels_and_channels_without_retention_are_left_alone(st):
    other = await st.add(400, queued=False, channel="lab")
    mine = await st.add(400, queued=False)
    results = await Pruner(st.writer, lambda: {"adt": 30 * DAY}).run_once()
    assert [(r.channel, r.messages) for r in results] == [("adt", 1)]
    assert pruned(st.db, mine) and not pruned(st.db, other)


async def test_a_controlled_clock_decides_what_is_old(st):
    mid = await st.add(0, queued=False)
    assert (await st.pruner(retention_days=1).run_once())[0].messages == 0
    later = st.pruner(retention_days=1, clock=lambda: time.time() + 2 * DAY)
    assert (await later.run_once())[0].messages == 1
    assert pruned(st.db, mid)


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
async def test_two_engines_pruning_one_store_count_each_message_once(db, tmp_path, request):
    url = (f"sqlite:///{tmp_path / 'conduit.db'}" if db == "sqlite"
           else request.getfixturevalue("pg_url"))
    a = Store(url, tmp_path / "keys", "sql")
    b = Store(url, tmp_path / "keys", "sql")
    for s in (a, b):
        s.writer.start()
    try:
        old = [await a.add(40, queued=False) for _ in range(60)]
        results = await asyncio.gather(a.pruner(batch=7).run_once(),
                                       b.pruner(batch=7).run_once())
        for _ in range(3):  # a pass that found the other at work finishes on a later one
            if not any(r.busy for rs in results for r in rs):
                break
            results = await asyncio.gather(a.pruner(batch=7).run_once(),
                                           b.pruner(batch=7).run_once())
        assert all(pruned(a.db, mid) for mid in old)
        events = a.pruned_events()
        assert sum(e["messages"] for e in events) == 60
        assert sorted(i for e in events for i in e["ids"]) == sorted(old)
        assert a.verify().broken is None
    finally:
        for s in (a, b):
            await s.writer.close()
            s.db.dispose()


async def test_a_redis_backlog_too_long_to_read_holds_the_channel_back(tmp_path):
    st = Store(f"sqlite:///{tmp_path / 'conduit.db'}", tmp_path / "keys", "redis")
    st.writer.start()
    try:
        delivered = await st.add(40, queued=False)
        backlog = [await st.add(40) for _ in range(3)]
        assert len(await st.writer.commit(st.q.lease(DEST, 1))) == 1  # all published
        cautious = Pruner(st.writer, lambda: {"adt": 30 * DAY},
                          holds=RedisHolds(st.q, max_scan=2))
        [result] = await cautious.run_once()
        assert (result.busy, result.messages) == (True, 0)
        assert not pruned(st.db, delivered)
        [result] = await st.pruner().run_once()
        assert (result.busy, result.messages, result.held) == (False, 1, 3)
        assert pruned(st.db, delivered)
        assert not any(pruned(st.db, mid) for mid in backlog)
    finally:
        await st.writer.close()
        _close(st, redis_keys=True)


async def test_the_pruner_and_a_publishing_lease_exclude_each_other_on_postgresql(
        pg_url, tmp_path):
    """While another transaction publishes a destination's outbox (holding its lock), the
    pruner leaves the channel for the next pass; while the pruner holds it, a lease
    publishes nothing (the same lock: engine.queue.redis_streams._publishable)."""
    from engine.queue.holds import publish_lock_key

    st = Store(pg_url, tmp_path / "keys", "redis")
    st.writer.start()
    try:
        delivered = await st.add(40, queued=False)
        await st.add(40)  # an outbox row of adt/ehr, not published yet
        lock = sa.select(sa.func.pg_try_advisory_xact_lock(publish_lock_key(DEST)))
        with st.db.connect() as holder:
            assert holder.execute(lock).scalar()
            [result] = await st.pruner().run_once()
            assert (result.busy, result.messages) == (True, 0)
            with st.db.connect() as other:
                assert st.q._publishable(other, DEST)[0] == []  # a lease would publish nothing
                other.rollback()
            holder.rollback()
        with st.db.connect() as other:
            assert len(st.q._publishable(other, DEST)[0]) == 1
            other.rollback()
        [result] = await st.pruner().run_once()
        assert (result.busy, result.messages, result.held) == (False, 1, 1)
        assert pruned(st.db, delivered)
    finally:
        await st.writer.close()
        _close(st, redis_keys=True)
