"""Dead letters retried or discarded from two processes of one PostgreSQL database at
once (two hosts' status pages, or `conduit queue retry` while an operator clicks Retry
on the page) on the SQL queue: each dead letter is put back once or removed once, and
the audit trail says what happened to it.

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

from engine.queue.sql import SqlQueue
from engine.store import audit as audit_chain
from engine.store.database import open_database
from engine.store.schema import audit, queue
from engine.store.writer import UnitOfWork, Writer

DEST = "adt/fhir"
MESSAGE = "01JDEADLETTER0000000000001"

# engine/queue/sql.py (_clear_dead) reads the dead letters, then inserts and deletes:
# both processes read the same ones. The fix takes them with one
# DELETE ... RETURNING first (the second process's delete waits for the first's commit
# and then finds none), and requeues only what it deleted. That file is being edited by
# the lead engineer, who applies the fix; these markers go with it.
_OPEN = pytest.mark.xfail(strict=True, reason="engine/queue/sql.py _clear_dead reads "
                          "before it deletes; fix described in the helper report")


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


@_OPEN
def test_two_retries_at_once_put_a_dead_letter_back_once(two):
    """Put back twice, it would be delivered twice to the same receiver."""
    results = _race(two, SqlQueue.replay(DEST, "ops-a"), SqlQueue.replay(DEST, "ops-b"))
    states, kinds = _state(two[0])
    assert states == ["ready"], "the dead letter was put back more than once"
    assert sorted(results) == [0, 1]
    assert kinds == {"requeued": 1}


@_OPEN
def test_a_dead_letter_discarded_is_not_retried_by_another_process(two):
    """An operator discards a dead letter (the receiver must not get it) while another
    retries: the retry finds nothing left to put back."""
    results = _race(two, SqlQueue.discard(DEST, "ops-a"), SqlQueue.replay(DEST, "ops-b"))
    states, kinds = _state(two[0])
    assert states == [], "a discarded dead letter was queued for delivery again"
    assert results == (1, 0)
    assert kinds == {"discarded": 1}


@_OPEN
def test_the_trail_does_not_say_discarded_for_a_dead_letter_another_process_retried(two):
    results = _race(two, SqlQueue.replay(DEST, "ops-a"), SqlQueue.discard(DEST, "ops-b"))
    states, kinds = _state(two[0])
    assert states == ["ready"]
    assert results == (1, 0)
    assert kinds == {"requeued": 1}, "the trail says discarded, yet it will be delivered"
