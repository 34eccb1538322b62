"""The message store, the queue and the audit trail, on SQLite and on PostgreSQL."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from engine.events import Event, Kind
from engine.queue.sql import SqlQueue
from engine.security.crypto import Vault
from engine.security.keys import KeyRing
from engine.store import audit
from engine.store.database import open_database
from engine.store.messages import MessageStore
from engine.store.schema import audit as audit_table
from engine.store.schema import audit_head, messages
from engine.store.writer import UnitOfWork, Writer


@pytest.fixture
async def env(db_url, tmp_path):
    keys = KeyRing.load(tmp_path / "keys")
    vault = Vault(keys)
    db = open_database(db_url)
    writer = Writer(db, keys.audit)
    writer.start()
    store = MessageStore(db, vault)
    q = SqlQueue(db, owner="test")
    yield db, writer, store, q, keys
    await writer.close()
    db.dispose()


async def _add(writer, store, q, n, destination="ch/dest", text=b"MSH|^~\\&|secret"):
    ids = []
    for i in range(n):
        uow = UnitOfWork()
        mid = f"M{i:025d}"
        store.add_message(uow, {
            "id": mid, "channel": "ch", "received_at": time.time(), "status": "accepted",
            "standard": "hl7v2", "message_type": "ADT^A01", "control_id": f"C{i}",
            "sender": "A^B", "peer": "127.0.0.1:1", "patient": None,
            "content_hash": "h", "error": None}, text + str(i).encode())
        q.put(uow, destination, mid, None, time.time())
        uow.record(Event(kind=Kind.RECEIVED, channel="ch", message_id=mid))
        ids.append(mid)
        await writer.commit(uow)
    return ids


async def test_content_is_sealed_at_rest_and_readable_with_audit(env):
    db, writer, store, q, _ = env
    [mid] = await _add(writer, store, q, 1)
    with db.connect() as conn:
        stored = conn.execute(sa.select(messages.c.content)).scalar_one()
    assert b"secret" not in stored
    assert await store.read(writer, mid, actor="alice", reason="ticket 42") == b"MSH|^~\\&|secret0"
    with db.connect() as conn:
        viewed = conn.execute(sa.select(audit_table).where(audit_table.c.kind == "viewed")).one()
    assert (viewed.actor, viewed.message_id) == ("alice", mid)


async def test_queue_is_fifo_and_leases_are_exclusive(env):
    _, writer, store, q, _ = env
    ids = await _add(writer, store, q, 5)
    first = await writer.commit(q.lease("ch/dest", 3))
    assert [e.message_id for e in first] == ids[:3]
    second = await writer.commit(q.lease("ch/dest", 10))
    assert [e.message_id for e in second] == ids[3:]
    assert await writer.commit(q.lease("ch/dest", 10)) == []
    assert await writer.commit(q.lease("other/dest", 10)) == []


async def test_ack_retry_dead_letter_and_replay(env):
    _, writer, store, q, _ = env
    ids = await _add(writer, store, q, 3)
    a, b, c = await writer.commit(q.lease("ch/dest", 10))
    uow = UnitOfWork()
    q.ack(uow, a.id)
    q.retry_later(uow, b.id, 1, time.time() + 60, "HTTP 503")
    q.dead_letter(uow, c.id, 1, "HTTP 400")
    await writer.commit(uow)
    [s] = q.stats()
    assert (s.ready, s.leased, s.retrying, s.dead) == (0, 1, 1, 1)
    # Leases given back keep their place and their attempt count.
    release = UnitOfWork()
    q.release(release)
    await writer.commit(release)
    again = await writer.commit(q.lease("ch/dest", 10))
    assert [(e.message_id, e.attempts) for e in again] == [(ids[1], 1)]
    assert again[0].available_at > time.time() + 50
    assert await writer.commit(q.replay("ch/dest", "cli:bob")) == 1
    [s] = q.stats()
    assert s.dead == 0
    tail = await writer.commit(q.lease("ch/dest", 10))
    assert [e.message_id for e in tail] == [ids[2]]
    assert tail[0].attempts == 0


async def test_audit_chain_verifies(env):
    db, writer, store, q, keys = env
    await _add(writer, store, q, 20)
    with db.connect() as conn:
        result = audit.verify(conn, keys.audit)
    assert result.broken is None
    assert result.events == 20


@pytest.mark.parametrize("tamper", ["edit", "delete-middle", "delete-tail", "reorder",
                                    "rehash-without-key"])
async def test_audit_tampering_is_detected(env, tamper):
    db, writer, store, q, keys = env
    await _add(writer, store, q, 10)
    t = audit_table
    with db.begin() as conn:
        if tamper == "edit":
            conn.execute(t.update().where(t.c.seq == 4).values(actor="mallory"))
        elif tamper == "delete-middle":
            conn.execute(t.delete().where(t.c.seq == 5))
        elif tamper == "delete-tail":
            conn.execute(t.delete().where(t.c.seq == 10))
        elif tamper == "reorder":
            row4 = conn.execute(sa.select(t).where(t.c.seq == 4)).mappings().one()
            row5 = conn.execute(sa.select(t).where(t.c.seq == 5)).mappings().one()
            conn.execute(t.delete().where(t.c.seq.in_([4, 5])))
            conn.execute(t.insert(), [{**row5, "seq": 4}, {**row4, "seq": 5}])
        else:  # an attacker without the audit key recomputes the chain with another key
            rows = conn.execute(sa.select(t).order_by(t.c.seq)).mappings().all()
            prev = audit.GENESIS
            for row in rows:
                fields = {**row, "actor": "mallory" if row["seq"] == 3 else row["actor"]}
                digest = audit.link_hash(b"k" * 32, prev, fields)
                conn.execute(t.update().where(t.c.seq == row["seq"]).values(
                    actor=fields["actor"], prev_hash=prev, hash=digest))
                prev = digest
            conn.execute(audit_head.update().values(hash=prev))
    with db.connect() as conn:
        result = audit.verify(conn, keys.audit)
    assert result.broken is not None
    expected = {"edit": 4, "delete-middle": 6, "delete-tail": 10, "reorder": 4,
                "rehash-without-key": 1}[tamper]
    assert result.broken.seq == expected


async def test_failed_unit_does_not_fail_its_batch_neighbours(env):
    _, writer, store, q, _ = env
    [mid] = await _add(writer, store, q, 1)
    dup = UnitOfWork()
    dup.insert(messages, {"id": mid, "channel": "ch", "received_at": 0.0, "status": "x",
                          "size": 0, "content_hash": "", "key_id": "", "content": b""})
    good = UnitOfWork()
    good.record(Event(kind=Kind.ADMIN, detail={"action": "test"}))
    f1, f2 = writer.submit(dup), writer.submit(good)
    with pytest.raises(Exception, match="store write failed"):
        await f1
    await f2
