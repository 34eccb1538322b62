"""The Redis Streams queue shared by several engine processes (issue 14): each entry
taken once and each destination delivered in order whoever delivers it; a dead owner's
entries taken over, a live one's never; and a Redis restart under load on the test's own
server, after which nothing acknowledged is lost and nothing is delivered twice."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from engine.config.base import RetryConfig
from engine.errors import StoreError
from engine.events import Event, Kind
from engine.pipeline.delivery import DestinationWorker
from engine.queue import owners
from engine.queue.heartbeat import Heartbeat
from engine.queue.redis_streams import RedisStreamsQueue
from engine.queue.retry import RetryPolicy
from engine.security.crypto import Vault
from engine.security.keys import KeyRing
from engine.store.database import open_database
from engine.store.messages import MessageStore
from engine.store.schema import audit, queue, queue_acked
from engine.store.writer import UnitOfWork, Writer
from tests.fhir_server import Answer, FhirTestServer
from tests.harness import EngineHarness, adt, exchange, free_port
from tests.integration.conftest import REDIS_URL
from tests.integration.test_queue_leasing import HeldReceiver

DESTINATIONS = ("adt/ehr", "adt/lab")


def _mid(i: int) -> str:
    return f"M{i:025d}"


async def _fill(writer: Writer, store: MessageStore, start: int, stop: int) -> None:
    """Messages start..stop-1, each queued for every destination in its own commit."""
    for i in range(start, stop):
        uow = UnitOfWork()
        store.add_message(uow, {
            "id": _mid(i), "channel": "adt", "received_at": time.time(),
            "status": "accepted", "standard": "hl7v2", "message_type": "ADT^A01",
            "control_id": f"C{i}", "sender": "A^B", "peer": "127.0.0.1:1",
            "patient": None, "content_hash": "h", "error": None}, b"MSH|" + _mid(i).encode())
        for dest in DESTINATIONS:
            RedisStreamsQueue.put(uow, dest, _mid(i), None, time.time())
        uow.record(Event(kind=Kind.RECEIVED, channel="adt", message_id=_mid(i)))
        await writer.commit(uow)


async def _deliver(q: RedisStreamsQueue, writer: Writer,
                   delivered: dict[str, list[tuple[str, str]]], total: int,
                   batch: int = 7, seconds: float = 60,
                   sent: Callable[[], object] = lambda: None) -> None:
    """One engine process as far as the queue goes: beats, leases small batches of every
    destination, "delivers" each entry (records it, then calls `sent`) and confirms it,
    until everything was delivered by someone."""
    deadline = time.monotonic() + seconds
    while sum(len(v) for v in delivered.values()) < total:
        assert time.monotonic() < deadline, "the queues were not drained in time"
        await writer.commit(owners.beat(q.owner, q.owner_ttl))
        took = False
        for dest in DESTINATIONS:
            for entry in await writer.commit(q.lease(dest, batch)):
                delivered[dest].append((entry.message_id, q.owner))
                sent()
                uow = UnitOfWork()
                q.ack(uow, entry.id)
                await writer.commit(uow)
                took = True
        # A holder pauses between batches, so the others get their chance to take over
        # a destination (and to take an entry twice, if taking were not atomic).
        await asyncio.sleep(0.01 if took else 0.02)


def _check(delivered: dict[str, list[tuple[str, str]]], count: int) -> None:
    for dest in DESTINATIONS:
        ids = [mid for mid, _ in delivered[dest]]
        twice = sorted(m for m, n in Counter(ids).items() if n > 1)
        assert twice == [], f"{dest}: {len(twice)} entries delivered twice"
        assert ids == [_mid(i) for i in range(count)], f"{dest}: lost or out of order"


async def _open(url: str, keys: KeyRing) -> tuple[sa.Engine, Writer]:
    db = open_database(url)
    writer = Writer(db, keys.audit)
    writer.start()
    return db, writer


def _worker(q: RedisStreamsQueue, writer: Writer, keys: KeyRing, heartbeat: Heartbeat,
            receiver: object) -> DestinationWorker:
    """The delivery worker of destination adt/ehr on `q`, sending to `receiver`."""
    return DestinationWorker(
        channel="adt", name="ehr", destination=receiver,
        policy=RetryPolicy(RetryConfig()), timeout=5.0, queue=q, writer=writer,
        vault=Vault(keys), raw_content_type="x-application/hl7-v2+er7", heartbeat=heartbeat)


async def test_processes_sharing_the_queues_take_each_entry_once_and_in_order(
        pg_url, tmp_path, prefix) -> None:
    keys = KeyRing.load(tmp_path / "keys")
    db, writer = await _open(pg_url, keys)
    await _fill(writer, MessageStore(db, Vault(keys)), 0, 200)
    await writer.close()
    db.dispose()

    delivered: dict[str, list[tuple[str, str]]] = {dest: [] for dest in DESTINATIONS}
    processes = [await _open(pg_url, keys) for _ in range(3)]  # own pool and writer each
    queues = [RedisStreamsQueue(db, REDIS_URL, owner=f"host:{n}:test", prefix=prefix)
              for n, (db, _) in enumerate(processes)]
    try:
        await asyncio.gather(*(_deliver(q, w, delivered, 400)
                               for q, (_, w) in zip(queues, processes, strict=True)))
    finally:
        for db, w in processes:
            await w.close()
            db.dispose()
    _check(delivered, 200)
    for dest in DESTINATIONS:  # proof that the processes really competed
        assert len({owner for _, owner in delivered[dest]}) > 1, f"{dest}: no contest"
    assert queues[0].stats() == []


async def test_a_live_owner_keeps_its_destination_and_a_dead_ones_entries_are_taken_over(
        db_url, tmp_path, prefix) -> None:
    keys = KeyRing.load(tmp_path / "keys")
    db, writer = await _open(db_url, keys)
    ttl = 2.0  # seconds; the engine's is owners.OWNER_TTL
    a = RedisStreamsQueue(db, REDIS_URL, owner="host:1:aaaaaa", prefix=prefix, owner_ttl=ttl)
    b = RedisStreamsQueue(db, REDIS_URL, owner="host:2:bbbbbb", prefix=prefix, owner_ttl=ttl)
    try:
        await _fill(writer, MessageStore(db, Vault(keys)), 0, 10)
        await writer.commit(owners.beat(a.owner, ttl))
        held = await writer.commit(a.lease("adt/ehr", 4))
        assert [e.message_id for e in held] == [_mid(i) for i in range(4)]
        # While a beats, b takes nothing of that destination: not even the entries after
        # a's batch, which b would otherwise deliver before a's (FIFO).
        assert await writer.commit(b.lease("adt/ehr", 100)) == []
        assert len(await writer.commit(b.lease("adt/lab", 3))) == 3  # others are free

        # a stops beating (killed): once its heartbeat is older than the TTL, b's next
        # lease takes a's entries, then the rest, in order.
        deadline = time.monotonic() + 10 * ttl
        while not (taken := await writer.commit(b.lease("adt/ehr", 100))):
            assert time.monotonic() < deadline, "a dead owner's entries were not taken over"
            await asyncio.sleep(0.2)
        assert [e.message_id for e in taken] == [_mid(i) for i in range(10)]
        with db.connect() as conn:
            [reclaimed] = conn.execute(sa.select(audit.c.destination, audit.c.detail)
                                       .where(audit.c.kind == "reclaimed")).all()
        assert reclaimed.destination == "ehr"
        assert json.loads(reclaimed.detail) == {"owner": a.owner, "entries": 4}

        # a wakes up: what it still does with the entries it held changes nothing of b's,
        # and it leases nothing while b holds the destination.
        uow = UnitOfWork()
        a.retry_later(uow, held[0].id, 1, time.time() + 60, "HTTP 503")
        a.dead_letter(uow, held[1].id, 1, "HTTP 400")
        await writer.commit(uow)
        await writer.commit(owners.beat(a.owner, ttl))
        await writer.commit(owners.beat(b.owner, ttl))
        assert await writer.commit(a.lease("adt/ehr", 100)) == []
        assert a.retrying("adt/ehr") == [] and a.dead_letters("adt/ehr") == []
        ehr = next(s for s in a.stats() if s.destination == "adt/ehr")
        assert (ehr.ready, ehr.leased, ehr.retrying, ehr.dead) == (0, 10, 0, 0)
    finally:
        await writer.close()
        db.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """A redis-server of the test's own on a free loopback port, persisting every write
    (appendonly, appendfsync always) in `folder`, as production should run it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    break
            except redis.RedisError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        """SIGKILL: no chance to write anything more on the way out."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
async def test_a_redis_restart_under_load_loses_nothing_and_delivers_nothing_twice(
        pg_url, tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, "conduit.queue")
    server = OwnRedis(tmp_path)
    server.start()
    keys = KeyRing.load(tmp_path / "keys")
    producer_db, producer = await _open(pg_url, keys)
    store = MessageStore(producer_db, Vault(keys))
    processes = [await _open(pg_url, keys) for _ in range(2)]
    queues = [RedisStreamsQueue(db, server.url, owner=f"host:{n}:drill")
              for n, (db, _) in enumerate(processes)]
    delivered: dict[str, list[tuple[str, str]]] = {dest: [] for dest in DESTINATIONS}
    count = 600
    try:
        async def produce() -> None:
            for start in range(0, count, 20):  # messages keep coming throughout
                await _fill(producer, store, start, start + 20)
                await asyncio.sleep(0.02)

        restarted = asyncio.Event()

        def kill_midway() -> None:
            """Redis dies halfway, between a send and its confirmation, with the rest
            of the batch leased; it is back a second later, messages arriving meanwhile."""
            if sum(len(v) for v in delivered.values()) == count:
                server.kill()
                asyncio.get_running_loop().call_later(1.0, restarted.set)

        async def restart() -> None:
            await restarted.wait()
            server.start()

        await asyncio.gather(
            produce(), restart(),
            *(_deliver(q, w, delivered, 2 * count, seconds=120, sent=kill_midway)
              for q, (_, w) in zip(queues, processes, strict=True)))
        _check(delivered, count)
        assert queues[0].stats() == []
        assert "the Redis queue cannot be reached" in caplog.text  # the restart was felt
        assert "the Redis queue answers again" in caplog.text
    finally:
        server.kill()
        for db, w in [*processes, (producer_db, producer)]:
            await w.close()
            db.dispose()
        for q in queues:
            q.close()


async def test_an_engine_configured_for_redis_queues_delivers_through_it(
        tmp_path, pg_url, prefix) -> None:
    fhir = await FhirTestServer().start()
    fhir.script.append(Answer(503))
    harness = EngineHarness(tmp_path, store_url=pg_url, conf=f"""
        queue: {{type: redis, url: "{REDIS_URL}", prefix: {prefix}}}
        """)
    port = free_port()
    try:
        engine = await harness.start({"adt": f"""
            source: {{type: mllp, port: {port}}}
            mapping: hl7v2-adt-to-fhir@1
            retry: {{initial_delay: 50ms, jitter: 0}}
            destinations:
              - {{name: fhir, type: fhir, url: "{fhir.url}"}}
            """})
        assert isinstance(engine.services.queue, RedisStreamsQueue)
        batches = [[adt(f"RQ{c}-{i}", f"MRNRQ{c}{i}") for i in range(10)] for c in range(3)]
        results = await asyncio.gather(*(exchange(port, b) for b in batches))
        assert {a.value("MSA-1") for acks in results for a in acks} == {"AA"}
        await fhir.wait_for(30)
        await harness.settle(lambda: engine.services.stats.count("sent") == 30)
        assert engine.services.stats.count("retried") == 1
        assert engine.services.queue.stats() == []
        with engine.services.db.connect() as conn:  # the SQL queue was never used
            assert conn.execute(sa.select(sa.func.count()).select_from(queue)).scalar() == 0
        client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        assert client.smembers(f"{{{prefix}}}:dests") == {"adt/fhir"}
        client.close()
    finally:
        await harness.stop()
        await fhir.stop()


async def test_a_worker_whose_entries_were_taken_over_sends_no_more_of_them(
        db_url, tmp_path, prefix, caplog) -> None:
    """A frozen process (a VM paused past the TTL) whose entries another process took
    over from Redis: once its heartbeat tells it so, its worker stops sending from its old
    batch and leases nothing while the new owner is alive."""
    keys = KeyRing.load(tmp_path / "keys")
    db, writer = await _open(db_url, keys)
    ttl = 2.0
    a = RedisStreamsQueue(db, REDIS_URL, owner="host:1:aaaaaa", prefix=prefix, owner_ttl=ttl)
    b = RedisStreamsQueue(db, REDIS_URL, owner="host:2:bbbbbb", prefix=prefix, owner_ttl=ttl)
    heartbeat = Heartbeat(writer, a, every=3600, ttl=ttl)  # beats only when the test says
    receiver = HeldReceiver()
    worker = _worker(a, writer, keys, heartbeat, receiver)
    caplog.set_level(logging.WARNING, "conduit.delivery")
    try:
        await _fill(writer, MessageStore(db, Vault(keys)), 0, 10)
        await heartbeat.start()
        worker.start()
        await asyncio.wait_for(receiver.holding.wait(), 10)  # a sends the head, and hangs

        deadline = time.monotonic() + 10 * ttl  # a's heartbeat goes stale
        while not (taken := await writer.commit(b.lease("adt/ehr", 100))):
            assert time.monotonic() < deadline, "a frozen owner's entries were not taken over"
            await writer.commit(owners.beat(b.owner, ttl))
            await asyncio.sleep(0.2)
        assert [e.message_id for e in taken] == [_mid(i) for i in range(10)]
        await heartbeat._beat()  # a thaws: its heartbeat learns of the lapse
        receiver.let_through.set()

        deadline = time.monotonic() + 10
        while "leases no longer certain" not in caplog.text:
            assert time.monotonic() < deadline, "the worker went on with its old batch"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # room for a wrong send, were one coming
        assert receiver.sent == [_mid(0)]
        [ehr] = [s for s in b.stats() if s.destination == "adt/ehr"]
        # The head a sent is confirmed (delivery is a fact); the rest stay b's, none given
        # back by a.
        assert (ehr.ready, ehr.leased) == (0, 9)
    finally:
        await worker.stop()
        await heartbeat.stop()
        await writer.close()
        db.dispose()


async def test_an_entry_reaches_other_processes_only_once_its_message_is_committed(
        pg_url, tmp_path, prefix) -> None:
    """A lease runs in the writer's transaction, beside puts not committed yet: it must
    not publish those, or another process would lease an entry whose message it cannot
    read (and that may never be committed)."""
    keys = KeyRing.load(tmp_path / "keys")
    (db_a, writer_a), (db_b, writer_b) = [await _open(pg_url, keys) for _ in range(2)]
    a = RedisStreamsQueue(db_a, REDIS_URL, owner="host:1:aaaaaa", prefix=prefix)
    b = RedisStreamsQueue(db_b, REDIS_URL, owner="host:2:bbbbbb", prefix=prefix)
    try:
        open_transaction = asyncio.Event()
        loop = asyncio.get_running_loop()

        def hold(conn: sa.Connection) -> None:  # keeps b's transaction open a while
            loop.call_soon_threadsafe(open_transaction.set)
            time.sleep(1.0)

        held = UnitOfWork()
        held.query = hold
        # One transaction of b's writer, in this order: a put, b's lease of the
        # destination, and a unit that keeps the transaction open.
        put = asyncio.ensure_future(_fill(writer_b, MessageStore(db_b, Vault(keys)), 0, 1))
        leased_by_b = asyncio.ensure_future(writer_b.commit(b.lease("adt/ehr", 10)))
        holding = asyncio.ensure_future(writer_b.commit(held))
        await open_transaction.wait()
        assert writer_b.batches == 0  # all three in b's first transaction
        assert await writer_a.commit(a.lease("adt/ehr", 10)) == []  # not committed yet
        await asyncio.gather(put, holding)
        assert await leased_by_b == []
        await writer_a.commit(owners.beat(a.owner))
        [entry] = await writer_a.commit(a.lease("adt/ehr", 10))
        assert entry.message_id == _mid(0)
    finally:
        for db, w in ((db_a, writer_a), (db_b, writer_b)):
            await w.close()
            db.dispose()


class RefusingStore:
    """Refuses every commit on `db` while `away`: each transaction runs to its end, a
    lease's script in Redis included, and then fails, as when the database goes away
    between a lease's statements and its commit."""

    def __init__(self, db: sa.Engine) -> None:
        self.away = False
        self._db = db
        sa.event.listen(db, "commit", self._commit)

    def _commit(self, conn: sa.Connection) -> None:
        if self.away:  # the database's transaction ends here, with nothing of it kept
            conn.connection.dbapi_connection.rollback()
            raise sa.exc.OperationalError("COMMIT", None, ConnectionError("the store is away"))

    def close(self) -> None:
        sa.event.remove(self._db, "commit", self._commit)


@pytest.fixture
def no_gc():
    """The cyclic garbage collector off: a daemon that froze its start-up objects
    (gc.freeze) may go a long while without a full collection, so nothing the queue
    owes may wait for one."""
    gc.disable()
    yield
    gc.enable()


async def test_a_lease_whose_commit_failed_gives_its_entries_to_the_next_lease(
        db_url, tmp_path, prefix, no_gc) -> None:
    keys = KeyRing.load(tmp_path / "keys")
    db, writer = await _open(db_url, keys)
    store = RefusingStore(db)
    q = RedisStreamsQueue(db, REDIS_URL, owner="host:1:aaaaaa", prefix=prefix)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await _fill(writer, MessageStore(db, Vault(keys)), 0, 10)
        store.away = True
        with pytest.raises(StoreError):
            await writer.commit(q.lease("adt/ehr", 4))
        # The script did take the head in Redis before the commit failed.
        assert client.xpending(f"{{{prefix}}}:s:adt/ehr", "conduit")["pending"] == 4
        store.away = False
        taken = await writer.commit(q.lease("adt/ehr", 100))
        assert [e.message_id for e in taken] == [_mid(i) for i in range(10)]
        assert await writer.commit(q.lease("adt/ehr", 100)) == []  # handed out: once
    finally:
        store.close()
        client.close()
        q.close()
        await writer.close()
        db.dispose()


async def test_after_the_store_was_away_past_the_ttl_the_worker_delivers_everything(
        db_url, tmp_path, prefix, caplog, no_gc) -> None:
    """The store outage drill in small: the worker's lease runs its script and then
    fails to commit, the heartbeat lapses past the TTL (a new generation), the store
    comes back: every entry is delivered, in order, once."""
    keys = KeyRing.load(tmp_path / "keys")
    db, writer = await _open(db_url, keys)
    store = RefusingStore(db)
    ttl = 1.0
    q = RedisStreamsQueue(db, REDIS_URL, owner="host:1:aaaaaa", prefix=prefix, owner_ttl=ttl)
    heartbeat = Heartbeat(writer, q, every=0.2, ttl=ttl)
    receiver = HeldReceiver()
    receiver.let_through.set()
    worker = _worker(q, writer, keys, heartbeat, receiver)
    client = redis.Redis.from_url(REDIS_URL)
    caplog.set_level(logging.WARNING, "conduit")
    try:
        await _fill(writer, MessageStore(db, Vault(keys)), 0, 10)
        await heartbeat.start()
        store.away = True
        worker.start()
        deadline = time.monotonic() + 10
        while "cannot lease from the queue" not in caplog.text:
            assert time.monotonic() < deadline, "the worker's lease did not fail"
            await asyncio.sleep(0.05)
        assert client.xpending(f"{{{prefix}}}:s:adt/ehr", "conduit")["pending"] == 10
        while "heartbeat failed" not in caplog.text:
            assert time.monotonic() < deadline, "the heartbeat did not fail"
            await asyncio.sleep(0.05)
        await asyncio.sleep(ttl)  # the owner's row goes stale
        store.away = False
        deadline = time.monotonic() + 30
        while len(receiver.sent) < 10:
            assert time.monotonic() < deadline, f"delivered only {receiver.sent}"
            await asyncio.sleep(0.05)
        assert "no heartbeat for" in caplog.text  # the lapse was seen: a new generation
        assert receiver.sent == [_mid(i) for i in range(10)]
        await asyncio.sleep(0.2)  # room for a send twice, were one coming
        assert receiver.sent == [_mid(i) for i in range(10)]
    finally:
        await worker.stop()
        await heartbeat.stop()
        store.close()
        client.close()
        q.close()
        await writer.close()
        db.dispose()


async def test_a_batch_given_back_while_the_store_is_away_is_delivered_once_it_is_back(
        db_url, tmp_path, prefix, caplog) -> None:
    """The heartbeat lapses mid-batch while the store is away: the worker gives the
    batch back, which cannot be committed yet; once the store is back the batch is
    given back after all, and leased and delivered again."""
    keys = KeyRing.load(tmp_path / "keys")
    db, writer = await _open(db_url, keys)
    store = RefusingStore(db)
    ttl = 1.0
    q = RedisStreamsQueue(db, REDIS_URL, owner="host:1:aaaaaa", prefix=prefix, owner_ttl=ttl)
    heartbeat = Heartbeat(writer, q, every=0.2, ttl=ttl)
    receiver = HeldReceiver()  # holds the head's send until let through
    worker = _worker(q, writer, keys, heartbeat, receiver)
    caplog.set_level(logging.WARNING, "conduit")
    try:
        await _fill(writer, MessageStore(db, Vault(keys)), 0, 10)
        await heartbeat.start()
        worker.start()
        await asyncio.wait_for(receiver.holding.wait(), 10)  # the batch is leased
        store.away = True
        deadline = time.monotonic() + 10
        while heartbeat.token() is not None:
            assert time.monotonic() < deadline, "the heartbeat stayed trusted"
            await asyncio.sleep(0.05)
        receiver.let_through.set()
        while "leases no longer certain" not in caplog.text:
            assert time.monotonic() < deadline, "the worker went on with its batch"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the give-back is refused meanwhile
        store.away = False
        deadline = time.monotonic() + 30
        while set(receiver.sent) != {_mid(i) for i in range(10)}:
            assert time.monotonic() < deadline, f"delivered only {receiver.sent}"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # room for a send twice, were one coming
        # The head's confirmation was refused with the store away: it may be sent again
        # (at least once) if given back before its confirmation is recorded after all;
        # the rest once each, in order.
        assert receiver.sent[0] == _mid(0) and receiver.sent.count(_mid(0)) <= 2
        assert [m for m in receiver.sent if m != _mid(0)] == [_mid(i) for i in range(1, 10)]
    finally:
        await worker.stop()
        await heartbeat.stop()
        store.close()
        q.close()
        await writer.close()
        db.dispose()


async def test_a_confirmation_the_store_refused_is_recorded_once_it_is_back(
        db_url, tmp_path, prefix, caplog) -> None:
    """Sends confirmed while the store is away (no heartbeat lapse): once it is back
    their confirmations are recorded after all, each audited and out of the queue,
    without a restart and without sending anything twice."""
    keys = KeyRing.load(tmp_path / "keys")
    db, writer = await _open(db_url, keys)
    store = RefusingStore(db)
    q = RedisStreamsQueue(db, REDIS_URL, owner="host:1:aaaaaa", prefix=prefix)
    heartbeat = Heartbeat(writer, q, every=3600, ttl=3600)  # trusted throughout
    receiver = HeldReceiver()
    worker = _worker(q, writer, keys, heartbeat, receiver)
    caplog.set_level(logging.WARNING, "conduit")
    try:
        await _fill(writer, MessageStore(db, Vault(keys)), 0, 10)
        await heartbeat.start()
        worker.start()
        await asyncio.wait_for(receiver.holding.wait(), 10)
        store.away = True
        receiver.let_through.set()
        deadline = time.monotonic() + 10
        while "store write failed" not in caplog.text:  # the head's confirmation
            assert time.monotonic() < deadline, "no confirmation was refused"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        store.away = False
        deadline = time.monotonic() + 30
        while [s for s in q.stats() if s.destination == "adt/ehr"]:  # lab has no worker
            assert time.monotonic() < deadline, f"still queued: {q.stats()}"
            await asyncio.sleep(0.05)
        assert receiver.sent == [_mid(i) for i in range(10)]
        with db.connect() as conn:
            sent = conn.execute(sa.select(audit.c.message_id)
                                .where(audit.c.kind == "sent")).scalars().all()
        assert sorted(sent) == [_mid(i) for i in range(10)]
    finally:
        await worker.stop()
        await heartbeat.stop()
        store.close()
        q.close()
        await writer.close()
        db.dispose()


async def test_confirmations_redis_never_got_are_not_sent_again_by_whoever_takes_over(
        db_url, tmp_path, prefix) -> None:
    """Redis goes away; a confirms three deliveries (their commits succeed, their removal
    from Redis waits in a's memory) and is stopped, or killed, before Redis is back. b
    takes a's entries over: the three confirmed are removed, not sent again; the one a
    had not confirmed is b's to send. Their queue_acked rows then go."""
    keys = KeyRing.load(tmp_path / "keys")
    db, writer = await _open(db_url, keys)
    ttl = 2.0
    a = RedisStreamsQueue(db, REDIS_URL, owner="host:1:aaaaaa", prefix=prefix, owner_ttl=ttl)
    b = RedisStreamsQueue(db, REDIS_URL, owner="host:2:bbbbbb", prefix=prefix, owner_ttl=ttl)
    try:
        await _fill(writer, MessageStore(db, Vault(keys)), 0, 4)
        await writer.commit(owners.beat(a.owner, ttl))
        held = await writer.commit(a.lease("adt/ehr", 4))
        assert len(held) == 4
        a._redis_back_at = time.monotonic() + 3600  # Redis unreachable from now on
        uow = UnitOfWork()
        for entry in held[:3]:
            a.ack(uow, entry.id)
        await writer.commit(uow)
        a.close()  # stopped: the three removals it kept for Redis are gone with it

        deadline = time.monotonic() + 10 * ttl
        while not (taken := await writer.commit(b.lease("adt/ehr", 100))):
            assert time.monotonic() < deadline, "a's entries were not taken over"
            await asyncio.sleep(0.2)
        assert [e.message_id for e in taken] == [_mid(3)]  # the one a never confirmed
        await asyncio.sleep(0.1)  # b's removal of the three reaches Redis
        ehr = next(s for s in b.stats() if s.destination == "adt/ehr")
        assert (ehr.ready, ehr.leased) == (0, 1)
        uow = UnitOfWork()
        b.ack(uow, taken[0].id)
        await writer.commit(uow)
        await asyncio.sleep(0.1)
        assert await writer.commit(b.lease("adt/ehr", 100)) == []  # deletes applied rows
        with db.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(queue_acked)
                                ).scalar() == 0
        assert all(s.destination != "adt/ehr" for s in b.stats())
    finally:
        b.close()
        await writer.close()
        db.dispose()


async def test_an_entry_confirmed_twice_commits_both_times(db_url, tmp_path, prefix) -> None:
    """A confirmation whose commit's answer was lost is submitted again, and an owner
    whose entry was taken over may confirm it after the new owner did: the second commit
    must not fail on the entry's queue_acked row (its unit would be retried for ever)."""
    keys = KeyRing.load(tmp_path / "keys")
    db, writer = await _open(db_url, keys)
    q = RedisStreamsQueue(db, REDIS_URL, owner="host:1:aaaaaa", prefix=prefix)
    try:
        await _fill(writer, MessageStore(db, Vault(keys)), 0, 1)
        await writer.commit(owners.beat(q.owner, q.owner_ttl))
        [entry] = await writer.commit(q.lease("adt/ehr", 1))
        for _ in range(2):
            uow = UnitOfWork()
            q.ack(uow, entry.id)
            await writer.commit(uow)
    finally:
        q.close()
        await writer.close()
        db.dispose()
