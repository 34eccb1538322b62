"""Opening the database: SQLite (WAL, full fsync, immediate write transactions) or
PostgreSQL, with tables created on first use."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import operator
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite

from engine.errors import StoreError
from engine.store.schema import SEAL_ROW, UNSEALED, audit_head, metadata

log = logging.getLogger("conduit.store")

PRIVATE_DIR = 0o700  # the data folder the engine makes
PRIVATE_FILE = 0o600  # conduit.db and, as SQLite copies its mode, -wal and -shm
_READ_ONLY = "conduit_read_only"
_SCHEMA_LOCK = 0x636F6E64756974  # "conduit": the advisory lock held while creating tables
T = TypeVar("T")


def reader(engine: sa.Engine) -> sa.Engine:
    """The same database for lookups that never write (who holds this token?). On SQLite
    their transactions are deferred: in WAL mode a reader sees the last commit and never
    queues behind the writer's lock, which every IMMEDIATE transaction takes."""
    return engine.execution_options(**{_READ_ONLY: True})


def snapshot_reader(engine: sa.Engine) -> sa.Engine:
    """A reader whose transaction sees one moment through all its statements, for a read
    that must agree with itself while other processes write (walking the audit chain,
    then its head): REPEATABLE READ on PostgreSQL, whose READ COMMITTED default gives
    each statement a newer snapshot; a SQLite reader's deferred transaction already
    reads one snapshot, and never holds the writers up."""
    db = reader(engine)
    if db.dialect.name == "postgresql":
        db = db.execution_options(isolation_level="REPEATABLE READ")
    return db


def conflict_insert(dialect: str, table: sa.Table) -> Any:
    """An INSERT into `table` that takes ON CONFLICT clauses (on_conflict_do_nothing,
    on_conflict_do_update): PostgreSQL's and SQLite's, which read alike."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def default_url(data_dir: str | Path) -> str:
    return f"sqlite:///{Path(data_dir) / 'conduit.db'}"


def open_database(url: str) -> sa.Engine:
    """Create the engine and the tables. SQLite gets WAL (readers never wait for the
    writer), synchronous=FULL (a committed message survives power loss) and BEGIN
    IMMEDIATE (writers queue on the lock instead of failing mid-transaction)."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            private_store(Path(path))
        engine = sa.create_engine(
            url, connect_args={"isolation_level": None, "timeout": 30,
                               "check_same_thread": False,
                               "cached_statements": CACHED_STATEMENTS},
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        turn = _WriteTurn(Path(path + ".write-lock")) if path and path != ":memory:" else None

        @event.listens_for(engine, "begin")
        def _begin(conn) -> None:
            read_only = conn.get_execution_options().get(_READ_ONLY, False)
            if not read_only and turn is not None:
                turn.take(conn)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        if turn is not None:
            event.listen(engine, "commit", turn.give)
            event.listen(engine, "rollback", turn.give)
            # A connection given back mid-transaction gives its turn back too.
            event.listen(engine.pool, "checkin", lambda dbapi_conn, _record: turn.release(
                dbapi_conn))
            event.listen(engine.pool, "close", lambda dbapi_conn, _record: turn.forget(
                dbapi_conn))
    else:
        engine = sa.create_engine(url, pool_size=4, max_overflow=4, pool_pre_ping=True)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Workers of one group start together on a new database: one creates the
                # tables while the others wait, then find them (DDL is transactional).
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
            metadata.create_all(conn)
            # create_all skips the indexes of a table that exists: a store made by an
            # earlier version gets those added since here.
            for table in metadata.sorted_tables:
                for index in table.indexes:
                    index.create(conn, checkfirst=True)
            # Replaced by ix_audit_patient_other (engine.store.schema.MESSAGE_HOPS).
            conn.exec_driver_sql("DROP INDEX IF EXISTS ix_audit_patient")
            heads = set(conn.execute(sa.select(audit_head.c.id)).scalars())
            if 1 not in heads:
                conn.execute(audit_head.insert().values(id=1, seq=0, hash="0" * 64))
            if SEAL_ROW not in heads:  # the head's seal (engine.store.audit): at the next event
                conn.execute(audit_head.insert().values(id=SEAL_ROW, seq=0, hash=UNSEALED))
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"cannot open the store at {_safe(url)}: {exc.__class__.__name__}: "
                         f"{str(exc).splitlines()[0]}") from exc
    return engine


def private_store(path: Path) -> None:
    """Make the SQLite file at `path` readable by its owner only before SQLite opens it.

    The store holds sealed content but also users, token hashes, the audit trail and
    patient pseudonyms in the clear; made by SQLite under the usual umask it was 0644 in
    a 0755 folder, for any local user to copy. SQLite makes -wal and -shm with the main
    file's mode, so creating the main file 0600 (os.open, not os.umask: the umask is the
    whole process's, and the engine is multithreaded) covers all three. Files of ours an
    older version left open to others are closed, with a warning naming them."""
    make_private_folder(path.parent)
    for suffix in ("", "-wal", "-shm"):
        make_private(Path(f"{path}{suffix}"))
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        pass  # SQLite opens it as it is (read-only, if it must)
    except OSError as exc:
        raise StoreError(f"cannot open the store {path}: {exc.strerror or exc}") from None


def make_private_folder(folder: Path) -> None:
    """The store's folder, made 0700 if missing. One the engine made a moment ago
    (Engine.start and the data folder's lock make it with the umask's mode before the
    store is opened) is still empty, and is made 0700 too; a folder already in use is
    the admin's to set. One that cannot be made (a file in the way, no permission) is a
    StoreError the CLI says in one line, not a traceback."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    except OSError as exc:
        raise StoreError(f"cannot make the data folder {folder}: "
                         f"{exc.strerror or exc}") from None
    info = folder.stat()
    if (info.st_mode & 0o077 and info.st_uid == os.geteuid()
            and all(p.name == "conduit.lock" for p in folder.iterdir())):
        os.chmod(folder, PRIVATE_DIR)


def make_private(path: Path) -> None:
    """Close a store file of ours that others may read (0600), with a warning naming
    it: someone may have copied it already. Another user's file is left, and said."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if not info.st_mode & 0o077:
        return
    was = stat.S_IMODE(info.st_mode)
    if info.st_uid != os.geteuid():
        log.warning("store file %s is readable by other users (mode %04o) and is not "
                    "ours to change: make it 0600", path, was)
        return
    os.chmod(path, PRIVATE_FILE)
    log.warning("store file %s was readable by other users (mode %04o); made it 0600",
                path, was)


class _WriteTurn:
    """Whose turn it is to write, across the processes of one SQLite file.

    SQLite lets one writer in at a time and makes the others poll, sleeping up to 100 ms
    between tries: with several worker processes (`conduit run --workers N`) each commit
    then waited on sleeps rather than on the other's commit. A blocking flock on a file
    beside the database queues writers in the kernel instead, which wakes the next one
    the moment the lock is given back. BEGIN IMMEDIATE still guards against any writer
    that does not take its turn (the sqlite3 shell, an older engine)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fds: dict[int, int] = {}  # id(DBAPI connection) -> its own descriptor
        self._held: set[int] = set()  # connections whose turn it is

    def take(self, conn: sa.Connection) -> None:
        key = id(conn.connection.dbapi_connection)
        if key in self._held:
            return
        fd = self._fds.get(key)
        if fd is None:  # one descriptor per connection: flock excludes each from the others
            fd = self._fds[key] = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._held.add(key)

    def give(self, conn: sa.Connection) -> None:
        self.release(conn.connection.dbapi_connection)

    def release(self, dbapi_conn: Any) -> None:
        key = id(dbapi_conn)
        if key in self._held:
            self._held.discard(key)
            fcntl.flock(self._fds[key], fcntl.LOCK_UN)

    def forget(self, dbapi_conn: Any) -> None:
        """A connection closed for good: its descriptor goes too."""
        self.release(dbapi_conn)
        fd = self._fds.pop(id(dbapi_conn), None)
        if fd is not None:
            os.close(fd)


class KeptReader:
    """One read-only connection kept open between reads, for a read asked very often (a
    pool checkout, on PostgreSQL with its liveness ping, and a transaction's begin and
    end cost more round trips than the read). Each read is its own snapshot: autocommit
    on PostgreSQL, a rollback on SQLite. Reads from several threads take turns; a
    connection that failed is replaced on the next read."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = reader(engine)
        self._conn: sa.Connection | None = None
        self._lock = threading.Lock()

    def read(self, query: Callable[[sa.Connection], T]) -> T:
        with self._lock:
            if self._conn is None:
                self._conn = self._engine.connect()
                if self._conn.dialect.name == "postgresql":
                    self._conn.execution_options(isolation_level="AUTOCOMMIT")
            try:
                result = query(self._conn)
                self._conn.rollback()  # ends the read: the next one sees newer commits
                return result
            except Exception:
                self._drop()
                raise

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


# A driver-level statement and its parameters: one row, or a list of rows for an INSERT
# made by insert_tuples (the only statements given a list).
Statement = tuple[str, "list[tuple[Any, ...]] | tuple[Any, ...]"]

# Variables one SQLite statement may bind on any build (999 before 3.32, 32,766 since).
_SQLITE_VARIABLES = 999
_MOST_ROWS = 64
# Statements each SQLite connection keeps prepared (the sqlite3 module's default is 128):
# the writer's inserts alone have up to _MOST_ROWS texts per table.
CACHED_STATEMENTS = 1024


def bulk_insert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows through the driver in one go (see insert_rows)."""
    execute_together(conn, [insert_rows(conn, table, rows)])


def insert_rows(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> Statement:
    """The insert of many rows as one driver-level statement.

    The hot path writes a few rows per message; SQLAlchemy's per-row parameter processing
    cost as much as SQLite itself, and these columns need none (str, int, float, bytes,
    None), so rows go to the driver as tuples. Rows must share their keys.
    """
    columns = tuple(rows[0])
    values = operator.itemgetter(*columns)
    return insert_tuples(conn, table, columns, [values(row) for row in rows]
                         if len(columns) > 1 else [(values(row),) for row in rows])


def insert_tuples(conn: sa.Connection, table: sa.Table, columns: tuple[str, ...],
                  rows: list[tuple[Any, ...]]) -> Statement:
    """insert_rows for rows already in `columns` order: the audit trail builds them so."""
    return _insert_sql(table.name, columns, conn.dialect.paramstyle), rows


def execute_together(conn: sa.Connection, statements: list[Statement],
                     then: str | None = None) -> Any:
    """Run driver-level statements in order, in the connection's transaction, then the
    query `then` (no parameters), whose one row is returned.

    On PostgreSQL they go out in one pipeline, so a writer batch's inserts cost one round
    trip to the server rather than one per table: on loopback the waits for each
    statement's answer, not the server's work, were most of a batch's time. (The
    statements return nothing: a pipeline's results arrive only at its end, which
    SQLAlchemy cannot read. A driver error comes as the driver's own; the writer's
    rollback after it replaces a connection the server cut, as it does after any
    statement.)
    """
    if conn.dialect.name != "postgresql":
        for sql, params in statements:
            if isinstance(params, list) and len(params) > 1:
                _insert_in_chunks(conn, sql, params)
            else:
                conn.exec_driver_sql(sql, params)
        return conn.exec_driver_sql(then).one() if then is not None else None
    if not statements and then is None:
        return None
    raw = conn.connection.dbapi_connection
    with raw.pipeline(), raw.cursor() as cursor:
        for sql, params in statements:
            if isinstance(params, list):
                cursor.executemany(sql, params)
            else:
                cursor.execute(sql, params)
        if then is None:
            return None
        cursor.execute(then)
        return cursor.fetchone()  # ends the pipeline's flight: one round trip for all


def _insert_in_chunks(conn: sa.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """SQLite: the rows of an INSERT in statements of up to 64 rows, instead of one step
    per row. The sqlite3 module lets go of the GIL around every step and must take it
    back after; under a busy event loop those waits were a third of the writer thread's
    time, and they stretch every commit (docs/performance.md). A batch's rows of one table
    mostly go in one statement; each table then has up to 64 statement texts, which the
    driver keeps prepared (CACHED_STATEMENTS)."""
    most = min(_MOST_ROWS, _SQLITE_VARIABLES // len(rows[0]))
    for done in range(0, len(rows), most):
        chunk = rows[done:done + most]
        conn.exec_driver_sql(_many_rows(sql, len(chunk)),
                             tuple(v for row in chunk for v in row))


@functools.lru_cache(maxsize=CACHED_STATEMENTS)
def _many_rows(sql: str, n: int) -> str:
    """`INSERT ... VALUES (?, ?)` as the same INSERT of `n` rows."""
    head, row = sql.rsplit(" VALUES ", 1)
    return f"{head} VALUES {', '.join([row] * n)}"


def pipelined(conn: sa.Connection, *statements: sa.Executable) -> list[list[tuple[Any, ...]]]:
    """The rows of each statement, run in order in the connection's transaction: on
    PostgreSQL in one pipeline, so a transaction's first statements (and its BEGIN) cost
    one round trip when none needs another's answer. Plain tuples: no result processing,
    so for columns of plain types (str, int, float, bytes)."""
    if conn.dialect.name != "postgresql":
        results = [conn.execute(s) for s in statements]
        return [[tuple(r) for r in result] if result.returns_rows else [] for result in results]
    expanded = [s.compile(dialect=conn.dialect).construct_expanded_state()
                for s in statements]  # IN lists written out, as SQLAlchemy sends them
    raw = conn.connection.dbapi_connection
    with raw.pipeline() as pipeline:
        cursors = [raw.cursor() for _ in expanded]
        try:
            for cursor, state in zip(cursors, expanded, strict=True):
                cursor.execute(state.statement, state.parameters)
            pipeline.sync()  # the one round trip: every result is in after it
            return [[tuple(r) for r in cursor.fetchall()] if cursor.description else []
                    for cursor in cursors]
        finally:
            for cursor in cursors:
                cursor.close()


@functools.cache
def _insert_sql(table: str, columns: tuple[str, ...], paramstyle: str) -> str:
    mark = "?" if paramstyle == "qmark" else "%s"
    return (f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join([mark] * len(columns))})")


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)
