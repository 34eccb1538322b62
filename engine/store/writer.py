"""The single writer: group commit for every durable change the engine makes.

Coroutines describe their changes as a UnitOfWork and await `commit`; one task gathers
whatever units are waiting, after a few rounds of the event loop in which more may come
(GATHER_ROUNDS), into one transaction, runs it on a dedicated thread (so the event loop
keeps serving sockets during fsync), and resolves every waiter once the transaction is
durable. While one transaction runs the next batch fills, so the cost of
a commit is shared by everyone who arrived meanwhile (DESIGN.md: 5,700 single-row
commits/s against 56,000 rows/s in batches of 100).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue as thread_queue
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from engine.errors import StoreError
from engine.events import Event
from engine.log_limit import RateLimitedLog
from engine.store import audit as audit_chain
from engine.store import claims
from engine.store.claims import Claim, Resend
from engine.store.database import execute_together, insert_rows
from engine.store.schema import messages, outputs, queue

log = logging.getLogger("conduit.store")

# Inserts run before statements, tables in this order, so rows exist before anything
# in the same batch refers to them.
_INSERT_ORDER = (messages, outputs, queue)

# Before each commit the writer lets the event loop run a few rounds (GATHER_ROUNDS, for
# GATHER_S at most). The tasks the last commit woke write their replies and send their
# deliveries meanwhile, and the units of work that record those (acknowledged, sent, the
# next lease) join this commit instead of needing one of their own. Every commit rewrites
# the last page of each index it touches, so fewer, larger commits cost less per message:
# with the bench's 8 senders, 3,350 commits instead of 5,600 for 22,000 messages, and a
# fifth less CPU per message (docs/performance.md). An idle loop runs the rounds in
# microseconds.
GATHER_ROUNDS = 8
GATHER_S = 0.002

# Keys deleted by one statement: under SQLite's oldest limit of 999 variables.
_DELETE_CHUNK = 500


class UnitOfWork:
    """Changes that must become durable together, with the events that record them."""

    __slots__ = ("after_commit", "claim", "deletes", "events", "inserts", "query",
                 "statements")

    def __init__(self) -> None:
        # A message stored as taken on, unless another copy was stored first
        # (engine.store.claims): then none of the unit is written, and its result is a
        # Resend.
        self.claim: Claim | None = None
        self.inserts: dict[sa.Table, list[dict[str, Any]]] = {}
        self.deletes: dict[sa.Table, list[Any]] = {}
        self.statements: list[tuple[sa.Executable, Any]] = []
        self.events: list[Event] = []
        self.query: Callable[[sa.Connection], Any] | None = None
        # Called on the event loop once the unit is durable, never if it was refused:
        # what lives outside the database (a Redis stream) may only learn of a change
        # after the commit (the outbox rule of engine.queue.base).
        self.after_commit: list[Callable[[], object]] = []

    def insert(self, table: sa.Table, row: dict[str, Any]) -> None:
        self.inserts.setdefault(table, []).append(row)

    def delete(self, table: sa.Table, key: Any) -> None:
        """Delete the row of `table` whose `id` is `key`. A batch's deletes from one table
        go in one statement: as one statement per row, each row's step let go of the GIL
        and waited to take it back from the busy event loop."""
        self.deletes.setdefault(table, []).append(key)

    def execute(self, statement: sa.Executable, params: Any = None) -> None:
        self.statements.append((statement, params))

    def record(self, event: Event) -> None:
        self.events.append(event)

    @classmethod
    def merged(cls, units: list[UnitOfWork]) -> UnitOfWork:
        """One unit doing what all of `units` do, to commit them all or none (units
        with a query of their own cannot be merged: whose result would it be?)."""
        whole = cls()
        for unit in units:
            assert unit.query is None, "a unit with a query cannot be merged"
            for table, rows in unit.inserts.items():
                whole.inserts.setdefault(table, []).extend(rows)
            for table, keys in unit.deletes.items():
                whole.deletes.setdefault(table, []).extend(keys)
            whole.statements += unit.statements
            whole.events += unit.events
            whole.after_commit += unit.after_commit
        return whole


class Writer:
    """Batches units of work into transactions on one thread."""

    def __init__(
        self,
        engine: sa.Engine,
        audit_key: bytes,
        on_committed: Callable[[list[Event]], None] | None = None,
        max_batch: int = 1000,
    ) -> None:
        self._engine = engine
        self._audit_key = audit_key
        self._on_committed = on_committed
        self._max_batch = max_batch
        self._failures = RateLimitedLog(log, every=10.0)  # a store away fails every batch
        self._pending: list[tuple[UnitOfWork, asyncio.Future]] = []
        self._wakeup = asyncio.Event()
        self._thread = _Thread("conduit-writer")
        self._conn: sa.Connection | None = None  # used on the writer thread only
        self._task: asyncio.Task | None = None
        self._closing = False
        self.batches = 0
        self.units = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="writer")

    async def commit(self, uow: UnitOfWork) -> Any:
        """Make `uow` durable; returns its query's result. Raises StoreError if the
        database refused it (nothing of it was written)."""
        return await self.submit(uow)

    def submit(self, uow: UnitOfWork) -> asyncio.Future:
        """Queue `uow` without waiting: for changes whose loss in a crash is harmless
        because they would be redone (a delivery confirmation re-sends at worst)."""
        if self._closing and self._task is None:
            raise StoreError("the store is closed")
        fut = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieve)
        self._pending.append((uow, fut))
        self._wakeup.set()
        return fut

    async def close(self) -> None:
        """Write everything already submitted, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self._thread.run(self._disconnect)
        self._thread.stop()

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._gather()
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                results = await self._thread.run(self._write, batch)
            except Exception as exc:  # one bad unit must not fail its neighbours
                results = await self._thread.run(self._write_each, batch)
                failed = sum(isinstance(r, Exception) for r in results)
                self._failures.log(logging.ERROR, "write", "store write failed for %d of "
                                   "%d units: %s", failed, len(batch), _brief(exc))
            committed: list[Event] = []
            for (uow, fut), result in zip(batch, results, strict=True):
                if isinstance(result, Exception):
                    if not fut.done():
                        fut.set_exception(StoreError(f"store write failed: {_brief(result)}"))
                    continue
                if not isinstance(result, Resend):  # else nothing of it was written
                    committed.extend(uow.events)
                    _run_after_commit(uow)
                if not fut.done():
                    fut.set_result(result)
            self.batches += 1
            self.units += len(batch)
            if committed and self._on_committed is not None:
                self._on_committed(committed)

    async def _gather(self) -> None:
        """Let the event loop run up to GATHER_ROUNDS rounds before a commit, so that
        work the last commit woke joins this one (see GATHER_ROUNDS)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + GATHER_S
        for _ in range(GATHER_ROUNDS):
            if len(self._pending) >= self._max_batch or loop.time() >= until:
                return
            await asyncio.sleep(0)

    def _transaction(self, units: list[UnitOfWork]) -> list[Any]:
        """One transaction on the writer's own connection, kept open between batches
        (a pool checkout, and on PostgreSQL a liveness ping, per batch would cost more
        than the batch); a connection that failed is replaced on the next batch."""
        if self._conn is None:
            self._conn = self._engine.connect()
        try:
            with self._conn.begin():
                return self._apply(self._conn, units)
        except sa.exc.DBAPIError as exc:
            if exc.connection_invalidated or self._conn.invalidated:
                self._disconnect()
            raise

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _write(self, batch: list[tuple[UnitOfWork, asyncio.Future]]) -> list[Any]:
        return self._transaction([uow for uow, _ in batch])

    def _write_each(self, batch: list[tuple[UnitOfWork, asyncio.Future]]) -> list[Any]:
        results: list[Any] = []
        for uow, _ in batch:
            try:
                results.append(self._transaction([uow])[0])
            except Exception as exc:
                results.append(exc)
        return results

    def _apply(self, conn: sa.Connection, units: list[UnitOfWork]) -> list[Any]:
        claimed = {i: uow.claim for i, uow in enumerate(units) if uow.claim is not None}
        if not claimed:
            return self._apply_all(conn, units)
        # the head's lock first: then a copy another process committed is seen
        head, resends, reused = claims.lock_and_check(conn, claimed)
        for place, original in reused.items():
            claims.flag_reuse(units[place].events, claimed[place], original)
        results = iter(self._apply_all(conn, [u for i, u in enumerate(units)
                                              if i not in resends], head))
        return [resends[i] if i in resends else next(results) for i in range(len(units))]

    def _apply_all(self, conn: sa.Connection, units: list[UnitOfWork],
                   head: tuple[int, str] | None = None) -> list[Any]:
        others = [t for t in dict.fromkeys(t for uow in units for t in uow.inserts)
                  if t not in _INSERT_ORDER]  # any other table after those, never dropped
        inserts = []
        for table in (*_INSERT_ORDER, *others):
            rows = [row for uow in units for row in uow.inserts.get(table, ())]
            if rows:
                inserts.append(insert_rows(conn, table, rows))
        results: list[Any] = [None] * len(units)
        if any(uow.statements or uow.deletes or uow.query is not None for uow in units):
            execute_together(conn, inserts)
            inserts = []
            deletes: dict[sa.Table, list[Any]] = {}
            for uow in units:
                for table, keys in uow.deletes.items():
                    deletes.setdefault(table, []).extend(keys)
            for table, keys in deletes.items():
                for start in range(0, len(keys), _DELETE_CHUNK):
                    chunk = keys[start:start + _DELETE_CHUNK]
                    conn.execute(table.delete().where(table.c.id.in_(chunk)))
            # The same statement from many units runs once, as an executemany. Units of
            # one batch touch different queue entries, so their relative order does not
            # matter.
            grouped: dict[int, tuple[sa.Executable, list[Any]]] = {}
            for uow in units:
                for statement, params in uow.statements:
                    if isinstance(params, dict):
                        grouped.setdefault(id(statement), (statement, []))[1].append(params)
                    else:
                        conn.execute(statement, params)
            for statement, params in grouped.values():
                conn.execute(statement, params)
            results = [uow.query(conn) if uow.query is not None else None for uow in units]
        events = [e for uow in units for e in uow.events]
        if events:  # messages' batches: their inserts go out with the chain head's read
            audit_chain.append(conn, self._audit_key, events, before=inserts, head=head)
        else:
            execute_together(conn, inserts)
        return results


class _Thread:
    """The writer's own thread, running one call at a time for the event loop: what
    run_in_executor did, without a pool's bookkeeping, which cost as much per batch as a
    small transaction's Python. A daemon: if the process ends without `stop`, a batch cut
    short was never acknowledged to anyone (SQLite rolls it back)."""

    def __init__(self, name: str) -> None:
        self._calls: thread_queue.SimpleQueue[tuple[Any, ...] | None] = \
            thread_queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def run(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        if self._thread.ident is None:  # not started yet
            self._thread.start()
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._calls.put((loop, fut, fn, args))
        return fut

    def stop(self) -> None:
        if self._thread.ident is not None:
            self._calls.put(None)
            self._thread.join()

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            loop, fut, fn, args = call
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # handed to the caller, as an executor would
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                loop.call_soon_threadsafe(_settle, fut, result, error)


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.cancelled():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


def _run_after_commit(uow: UnitOfWork) -> None:
    """A failing hook is logged and never undoes or fails the commit it follows: what it
    would have done is redone from the database (an outbox is published again)."""
    for hook in uow.after_commit:
        try:
            hook()
        except Exception as exc:
            log.error("after-commit hook failed: %s", _brief(exc))


def _retrieve(fut: asyncio.Future) -> None:
    """Mark a failure as seen: it was already logged, and a caller that awaits the
    future still gets the exception."""
    if not fut.cancelled():
        fut.exception()


def _brief(exc: BaseException) -> str:
    """First line of a database error, without bound parameters (they may be PHI)."""
    if isinstance(exc, sa.exc.StatementError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {str(exc.orig).splitlines()[0]}"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
