"""Queue leases shared by several engine processes on one database (issue 9, items 3
and 4): every entry is taken by one process only, a destination is delivered in id
order whoever delivers it, and the leases of a process that stopped beating are taken
over by the next one that leases, with a "reclaimed" event."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter

import sqlalchemy as sa

from engine.config.base import RetryConfig
from engine.events import Event, Kind
from engine.message import Outbound, Sent
from engine.pipeline.delivery import DestinationWorker
from engine.queue import owners
from engine.queue.heartbeat import Heartbeat
from engine.queue.retry import RetryPolicy
from engine.queue.sql import SqlQueue
from engine.security.crypto import Vault
from engine.security.keys import KeyRing
from engine.store.database import open_database
from engine.store.messages import MessageStore
from engine.store.schema import audit, queue, queue_owners
from engine.store.writer import UnitOfWork, Writer

DESTINATIONS = ("adt/ehr", "adt/lab")


async def _fill(writer: Writer, store: MessageStore, per_destination: int) -> None:
    """`per_destination` entries in each destination, committed 50 messages at a time."""
    for start in range(0, per_destination, 50):
        uow = UnitOfWork()
        for i in range(start, min(start + 50, per_destination)):
            mid = f"M{i:025d}"
            store.add_message(uow, {
                "id": mid, "channel": "adt", "received_at": time.time(),
                "status": "accepted", "standard": "hl7v2", "message_type": "ADT^A01",
                "control_id": f"C{i}", "sender": "A^B", "peer": "127.0.0.1:1",
                "patient": None, "content_hash": "h", "error": None}, b"MSH|" + mid.encode())
            for dest in DESTINATIONS:
                SqlQueue.put(uow, dest, mid, None, time.time())
        uow.record(Event(kind=Kind.ADMIN, detail={"action": "test-fill"}))
        await writer.commit(uow)


async def _process(name: str, url: str, audit_key: bytes,
                   delivered: dict[str, list[tuple[int, str]]], total: int) -> None:
    """One engine process as far as the queue goes: its own connection pool, writer and
    owner id; leases small batches of every destination, "delivers" each entry (records
    it) and confirms it, until everything was delivered by someone."""
    db = open_database(url)
    writer = Writer(db, audit_key)
    writer.start()
    q = SqlQueue(db, owner=name)
    deadline = time.monotonic() + 60
    try:
        while sum(len(v) for v in delivered.values()) < total:
            assert time.monotonic() < deadline, "the queues were not drained in time"
            await writer.commit(owners.beat(name))
            took = False
            for dest in DESTINATIONS:
                batch = await writer.commit(q.lease(dest, 7))
                for entry in batch:
                    delivered[dest].append((entry.id, name))
                    uow = UnitOfWork()
                    q.ack(uow, entry.id)
                    await writer.commit(uow)
                took = took or bool(batch)
            # A holder pauses between batches, so the others get their chance to take
            # over a destination (and to take an entry twice, if taking is not atomic).
            await asyncio.sleep(0.01 if took else 0.002)
    finally:
        await writer.close()
        db.dispose()


async def test_processes_sharing_a_database_take_each_entry_once_and_in_order(
        pg_url, tmp_path) -> None:
    keys = KeyRing.load(tmp_path / "keys")
    db = open_database(pg_url)
    writer = Writer(db, keys.audit)
    writer.start()
    await _fill(writer, MessageStore(db, Vault(keys)), 200)
    with db.connect() as conn:
        expected = {dest: conn.execute(sa.select(queue.c.id).where(queue.c.destination == dest)
                                       .order_by(queue.c.id)).scalars().all()
                    for dest in DESTINATIONS}
    await writer.close()
    db.dispose()
    total = sum(len(ids) for ids in expected.values())
    assert total == 400

    delivered: dict[str, list[tuple[int, str]]] = {dest: [] for dest in DESTINATIONS}
    await asyncio.gather(*(_process(f"host:{n}:test", pg_url, keys.audit, delivered, total)
                           for n in range(3)))

    for dest in DESTINATIONS:
        ids = [entry_id for entry_id, _ in delivered[dest]]
        twice = sorted(i for i, n in Counter(ids).items() if n > 1)
        assert twice == [], f"{dest}: {len(twice)} entries delivered twice"
        assert ids == expected[dest], f"{dest}: not delivered in queue order"
        # Proof that the processes really competed: the destination changed hands.
        owners_seen = {name for _, name in delivered[dest]}
        assert len(owners_seen) > 1, f"{dest}: only {owners_seen} delivered; no contest"


async def _env(url: str, tmp_path, vault: list[Vault] | None = None):
    keys = KeyRing.load(tmp_path / "keys")
    db = open_database(url)
    writer = Writer(db, keys.audit)
    writer.start()
    await _fill(writer, MessageStore(db, Vault(keys)), 10)
    if vault is not None:
        vault.append(Vault(keys))
    return db, writer


def _silence(db: sa.Engine, owner: str, seconds: float) -> None:
    """Make `owner`'s last heartbeat `seconds` older, as if it had stopped beating."""
    with db.begin() as conn:
        conn.execute(queue_owners.update().where(queue_owners.c.owner == owner)
                     .values(heartbeat_at=queue_owners.c.heartbeat_at - seconds))


async def test_a_live_owner_keeps_its_destination_and_a_dead_ones_leases_are_reclaimed(
        db_url, tmp_path) -> None:
    db, writer = await _env(db_url, tmp_path)
    a, b = SqlQueue(db, owner="host:1:aaaaaa"), SqlQueue(db, owner="host:2:bbbbbb")
    try:
        assert await writer.commit(owners.beat(a.owner)) is False  # first beat: a new owner
        assert await writer.commit(owners.beat(b.owner)) is False
        assert await writer.commit(owners.beat(a.owner)) is True
        held = await writer.commit(a.lease("adt/ehr", 4))
        assert [e.message_id for e in held] == [f"M{i:025d}" for i in range(4)]
        # While a beats, b takes nothing of that destination: not even the entries after
        # a's batch, which b would otherwise deliver before a's (FIFO).
        assert await writer.commit(b.lease("adt/ehr", 100)) == []
        assert len(await writer.commit(b.lease("adt/lab", 3))) == 3  # others are free

        _silence(db, a.owner, owners.OWNER_TTL + 1)
        taken = await writer.commit(b.lease("adt/ehr", 100))
        assert [e.message_id for e in taken] == [f"M{i:025d}" for i in range(10)]
        with db.connect() as conn:
            [reclaimed] = conn.execute(sa.select(audit.c.destination, audit.c.detail)
                                       .where(audit.c.kind == "reclaimed")).all()
        assert reclaimed.destination == "ehr"
        assert json.loads(reclaimed.detail) == {"owner": a.owner, "entries": 4}

        # a wakes up: its heartbeat tells it the lapse, and what it still does with the
        # entries it held changes nothing of b's.
        assert await writer.commit(owners.beat(a.owner)) is False
        uow = UnitOfWork()
        a.retry_later(uow, held[0].id, 1, time.time() + 60, "HTTP 503")
        a.dead_letter(uow, held[1].id, 1, "HTTP 400")
        await writer.commit(uow)
        with db.connect() as conn:
            rows = conn.execute(sa.select(queue.c.state, queue.c.lease_owner, queue.c.attempts)
                                .where(queue.c.id.in_([held[0].id, held[1].id]))).all()
        assert rows == [("leased", b.owner, 0)] * 2
        assert await writer.commit(a.lease("adt/ehr", 100)) == []  # b is alive
    finally:
        await writer.close()
        db.dispose()


async def test_leases_of_an_owner_without_a_row_are_reclaimed(db_url, tmp_path) -> None:
    """Leases left by a process that never beat (the previous version of the engine)
    or whose row is gone are as takeable as those of a silent owner."""
    db, writer = await _env(db_url, tmp_path)
    try:
        old = SqlQueue(db, owner="oldhost:4242")
        assert len(await writer.commit(old.lease("adt/ehr", 5))) == 5
        new = SqlQueue(db, owner="host:3:cccccc")
        await writer.commit(owners.beat(new.owner))
        taken = await writer.commit(new.lease("adt/ehr", 100))
        assert [e.message_id for e in taken] == [f"M{i:025d}" for i in range(10)]
    finally:
        await writer.close()
        db.dispose()


async def test_heartbeat_tells_a_lapse_and_gives_everything_back_on_stop(
        db_url, tmp_path) -> None:
    db, writer = await _env(db_url, tmp_path)
    q = SqlQueue(db, owner="host:5:dddddd")
    heartbeat = Heartbeat(writer, q, every=3600)  # beats only when the test says
    try:
        await heartbeat.start()
        token = heartbeat.token()
        assert token is not None and heartbeat.holds(token)
        assert len(await writer.commit(q.lease("adt/ehr", 3))) == 3

        _silence(db, q.owner, owners.OWNER_TTL + 1)  # a frozen VM, a lost network
        await heartbeat._beat()
        assert not heartbeat.holds(token), "a batch leased before the lapse is still trusted"
        assert heartbeat.token() not in (None, token)

        await heartbeat.stop()
        assert heartbeat.token() is None
        with db.connect() as conn:
            assert conn.execute(sa.select(queue_owners.c.owner)).all() == []
            states = conn.execute(sa.select(queue.c.state).distinct()).scalars().all()
        assert states == ["ready"]
    finally:
        await heartbeat.stop()
        await writer.close()
        db.dispose()


class HeldReceiver:
    """A destination that records what it is sent and holds the first send until the
    test lets it through."""

    address = "test:held"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.holding = asyncio.Event()
        self.let_through = asyncio.Event()

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def healthcheck(self) -> str | None:
        return None

    async def send(self, outbound: Outbound) -> Sent:
        self.sent.append(outbound.message_id)
        if len(self.sent) == 1:
            self.holding.set()
            await self.let_through.wait()
        return Sent("200")


async def test_a_process_whose_leases_were_taken_over_sends_no_more_of_them(
        db_url, tmp_path, caplog) -> None:
    """A frozen process (a VM paused past the TTL) whose entries another process took
    over: once its heartbeat tells it so, its worker stops sending from its old batch
    and leases nothing while the new owner is alive."""
    vault: list[Vault] = []
    db, writer = await _env(db_url, tmp_path, vault)
    a, b = SqlQueue(db, owner="host:1:aaaaaa"), SqlQueue(db, owner="host:2:bbbbbb")
    heartbeat = Heartbeat(writer, a, every=3600)  # beats only when the test says
    receiver = HeldReceiver()
    worker = DestinationWorker(
        channel="adt", name="ehr", destination=receiver,
        policy=RetryPolicy(RetryConfig()), timeout=5.0, queue=a, writer=writer,
        vault=vault[0], raw_content_type="x-application/hl7-v2+er7", heartbeat=heartbeat)
    caplog.set_level(logging.WARNING, "conduit.delivery")
    try:
        await heartbeat.start()
        worker.start()
        await asyncio.wait_for(receiver.holding.wait(), 10)  # a sends the head, and hangs

        _silence(db, a.owner, owners.OWNER_TTL + 1)
        await writer.commit(owners.beat(b.owner))
        taken = await writer.commit(b.lease("adt/ehr", 100))
        assert len(taken) == 10  # b took a's batch over
        await heartbeat._beat()  # a thaws: its heartbeat learns of the lapse
        receiver.let_through.set()

        deadline = time.monotonic() + 10
        while "leases no longer certain" not in caplog.text:
            assert time.monotonic() < deadline, "the worker went on with its old batch"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # room for a wrong send, were one coming
        assert receiver.sent == [f"M{0:025d}"]
        with db.connect() as conn:
            owners_left = conn.execute(
                sa.select(queue.c.lease_owner).where(queue.c.destination == "adt/ehr")
                .distinct()).scalars().all()
        assert owners_left == [b.owner]
    finally:
        await worker.stop()
        await heartbeat.stop()
        await writer.close()
        db.dispose()
