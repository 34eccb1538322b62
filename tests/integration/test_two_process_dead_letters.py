"""Dead letters retried or discarded from two processes of one PostgreSQL database at
once (two hosts' status pages, or `conduit queue retry` while an operator clicks Retry
on the page), on the SQL queue and on Redis Streams: each dead letter is put back once
or removed once, and the audit trail says what happened to it.

One process's retry or discard is held open after its statements (as a transaction is
between its last statement and its commit) while the other's runs on its own Writer
and connection, as it would in another process.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from engine.queue import owners
from engine.queue.redis_streams import RedisStreamsQueue
from engine.queue.sql import SqlQueue
from engine.security.crypto import Vault
from engine.security.keys import KeyRing
from engine.store import audit as audit_chain
from engine.store.database import open_database
from engine.store.messages import MessageStore
from engine.store.schema import audit, queue
from engine.store.writer import UnitOfWork, Writer
from tests.integration.test_redis_queue import REDIS_URL, _fill, _mid, _open

DEST = "adt/fhir"
MESSAGE = "01JDEADLETTER0000000000001"


@pytest.fixture
def two(pg_url: str) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    """The store's database as two processes open it (a pool each), one dead letter."""
    a, b = open_database(pg_url), open_database(pg_url)
    now = time.time()
    with a.begin() as conn:
        conn.execute(queue.insert().values(destination=DEST, message_id=MESSAGE,
                                           state="dead", attempts=5, available_at=now,
                                           created_at=now, last_error="HTTP 500"))
    yield a, b
    a.dispose()
    b.dispose()


def _held_open(db: sa.Engine, uow: UnitOfWork, key: bytes) -> tuple[sa.Connection, Any]:
    """`uow` run as the Writer runs it, its transaction left open: (connection, result)."""
    conn = db.connect()
    conn.begin()
    result = uow.query(conn)
    if uow.events:
        audit_chain.append(conn, key, uow.events)
    return conn, result


def _commit_elsewhere(db: sa.Engine, uow: UnitOfWork, key: bytes) -> tuple[threading.Thread,
                                                                           dict[str, Any]]:
    """`uow` committed by a Writer of its own on another thread: the other process."""
    out: dict[str, Any] = {}

    async def run() -> None:
        writer = Writer(db, key)
        writer.start()
        try:
            out["result"] = await writer.commit(uow)
        finally:
            await writer.close()

    def main() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # reported by the caller
            out["error"] = exc

    thread = threading.Thread(target=main)
    thread.start()
    return thread, out


def _waiting_on_a_lock(db: sa.Engine) -> bool:
    with db.connect() as conn:
        return bool(conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'").scalar())


def _race(two: tuple[sa.Engine, sa.Engine], first: UnitOfWork, second: UnitOfWork
          ) -> tuple[Any, Any]:
    """`first` held open in one process while `second` commits in the other; the second
    is given time to read, and is let go once it waits or finishes."""
    a, b = two
    key = os.urandom(32)
    conn, first_result = _held_open(a, first, key)
    thread, out = _commit_elsewhere(b, second, key)
    deadline = time.monotonic() + 10
    while thread.is_alive() and not _waiting_on_a_lock(a) and time.monotonic() < deadline:
        time.sleep(0.05)
    conn.commit()
    conn.close()
    thread.join(20)
    assert "error" not in out, out
    return first_result, out["result"]


def _state(db: sa.Engine) -> tuple[list[str], dict[str, int]]:
    """The entries of DEST by state, and the audit events about MESSAGE by kind."""
    with db.connect() as conn:
        states = sorted(conn.execute(sa.select(queue.c.state)
                                     .where(queue.c.destination == DEST)).scalars())
        kinds = dict(conn.execute(sa.select(audit.c.kind, sa.func.count())
                                  .where(audit.c.message_id == MESSAGE)
                                  .group_by(audit.c.kind)).all())
    return states, kinds


def test_two_retries_at_once_put_a_dead_letter_back_once(two):
    """Put back twice, it would be delivered twice to the same receiver."""
    results = _race(two, SqlQueue.replay(DEST, "ops-a"), SqlQueue.replay(DEST, "ops-b"))
    states, kinds = _state(two[0])
    assert states == ["ready"], "the dead letter was put back more than once"
    assert sorted(results) == [0, 1]
    assert kinds == {"requeued": 1}


def test_a_dead_letter_discarded_is_not_retried_by_another_process(two):
    """An operator discards a dead letter (the receiver must not get it) while another
    retries: the retry finds nothing left to put back."""
    results = _race(two, SqlQueue.discard(DEST, "ops-a"), SqlQueue.replay(DEST, "ops-b"))
    states, kinds = _state(two[0])
    assert states == [], "a discarded dead letter was queued for delivery again"
    assert results == (1, 0)
    assert kinds == {"discarded": 1}


def test_the_trail_does_not_say_discarded_for_a_dead_letter_another_process_retried(two):
    results = _race(two, SqlQueue.replay(DEST, "ops-a"), SqlQueue.discard(DEST, "ops-b"))
    states, kinds = _state(two[0])
    assert states == ["ready"]
    assert results == (1, 0)
    assert kinds == {"requeued": 1}, "the trail says discarded, yet it will be delivered"


async def test_two_retries_at_once_put_a_redis_dead_letter_back_once(pg_url, tmp_path, prefix):
    keys = KeyRing.load(tmp_path / "keys")
    (db_a, writer_a), (db_b, writer_b) = [await _open(pg_url, keys) for _ in range(2)]
    a = RedisStreamsQueue(db_a, REDIS_URL, owner="host:1:aaaaaa", prefix=prefix)
    b = RedisStreamsQueue(db_b, REDIS_URL, owner="host:2:bbbbbb", prefix=prefix)
    try:
        await _fill(writer_a, MessageStore(db_a, Vault(keys)), 0, 1)
        await writer_a.commit(owners.beat(a.owner))
        [entry] = await writer_a.commit(a.lease("adt/ehr", 10))
        uow = UnitOfWork()
        a.dead_letter(uow, entry.id, 5, "HTTP 400")
        await writer_a.commit(uow)
        await _until(lambda: len(a.dead_letters("adt/ehr")) == 1)

        open_transaction = asyncio.Event()
        loop = asyncio.get_running_loop()

        def hold(conn: sa.Connection) -> None:  # keeps a's retry's transaction open
            loop.call_soon_threadsafe(open_transaction.set)
            time.sleep(1.0)

        held = UnitOfWork()
        held.query = hold
        first = asyncio.ensure_future(writer_a.commit(a.replay("adt/ehr", "ops-a")))
        holding = asyncio.ensure_future(writer_a.commit(held))
        await open_transaction.wait()
        second = await writer_b.commit(b.replay("adt/ehr", "ops-b"))
        await asyncio.gather(first, holding)
        await _until(lambda: a.dead_letters("adt/ehr") == [])

        again = await writer_a.commit(a.lease("adt/ehr", 10))
        assert [e.message_id for e in again] == [_mid(0)], "put back more than once"
        assert sorted([await first, second]) == [0, 1]
    finally:
        for db, w in ((db_a, writer_a), (db_b, writer_b)):
            await w.close()
            db.dispose()


async def _until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.05)
