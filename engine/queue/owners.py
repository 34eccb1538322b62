"""Queue owners: the engine processes that may hold leases, and how long they are alive.

Several engine processes share the queues of one PostgreSQL database. Each is an owner
with a row in `queue_owners` that it beats every few seconds (engine.queue.heartbeat);
an owner silent for OWNER_TTL seconds (SIGKILL, power cut, lost network) is dead, and
the next process that leases one of its destinations takes its entries over. Times are
the database's clock, never a host's, so hosts whose clocks disagree still agree on who
is alive.
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from engine.store.schema import owner_peers, queue_owners
from engine.store.writer import UnitOfWork

OWNER_TTL = 4.0  # seconds without a heartbeat after which an owner is dead (issue 14: within 5 s)
HEARTBEAT_EVERY = 1.0  # seconds between heartbeats; several fit in one TTL
FORGET_AFTER = 86400.0  # rows of owners silent this long are removed at start-up


def new_owner_id() -> str:
    """Host, pid and a random part: a restarted process (the same pid 1 in a container)
    is a new owner, never mistaken for the dead one whose leases it may take over."""
    return f"{socket.gethostname()[:24]}:{os.getpid()}:{secrets.token_hex(3)}"


class db_now(FunctionElement):  # named like the SQL function it stands for
    """The database's clock, in seconds since the epoch."""

    type = sa.Float()
    inherit_cache = True


@compiles(db_now)
def _now_generic(element: Any, compiler: Any, **kw: Any) -> str:
    return "CAST(EXTRACT(EPOCH FROM CURRENT_TIMESTAMP) AS DOUBLE PRECISION)"


@compiles(db_now, "postgresql")
def _now_postgresql(element: Any, compiler: Any, **kw: Any) -> str:
    # clock_timestamp(), not now(): a writer transaction may run for a while
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


@compiles(db_now, "sqlite")
def _now_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


def live(ttl: float = OWNER_TTL) -> sa.Select:
    """The owners that beat within the last `ttl` seconds."""
    return sa.select(queue_owners.c.owner).where(queue_owners.c.heartbeat_at >= db_now() - ttl)


def beat(owner: str, ttl: float = OWNER_TTL, *, peers: str | None = None) -> UnitOfWork:
    """A unit of work that records a heartbeat of `owner` (and its connected peers, a
    JSON object, when given); its result is True when the owner was alive until now,
    False when its row was missing or stale (the first beat, or one after a lapse: its
    leases may have been taken over meanwhile)."""
    t = queue_owners

    def run(conn: sa.Connection) -> bool:
        if peers is not None:
            _keep_peers(conn, owner, peers)
        kept = conn.execute(t.update().where(t.c.owner == owner, t.c.heartbeat_at >= db_now() - ttl)
                            .values(heartbeat_at=db_now()))
        if kept.rowcount:
            return True
        if not conn.execute(t.update().where(t.c.owner == owner)
                            .values(heartbeat_at=db_now())).rowcount:
            conn.execute(t.insert().from_select(
                ["owner", "started_at", "heartbeat_at"],
                sa.select(sa.literal(owner, sa.String), db_now(), db_now())))
        return False

    uow = UnitOfWork()
    uow.query = run
    return uow


def _keep_peers(conn: sa.Connection, owner: str, peers: str) -> None:
    """Only `owner` writes its row, so an update then an insert cannot race."""
    p = owner_peers
    if not conn.execute(p.update().where(p.c.owner == owner).values(peers=peers)).rowcount:
        conn.execute(p.insert().values(owner=owner, peers=peers))


def live_peers(conn: sa.Connection, ttl: float = OWNER_TTL) -> list[str]:
    """The peers JSON of every owner alive now."""
    return list(conn.execute(sa.select(owner_peers.c.peers)
                             .where(owner_peers.c.owner.in_(live(ttl)))).scalars())


def retire(uow: UnitOfWork, owner: str) -> None:
    """Remove `owner`'s rows (shutdown, after its leases were given back)."""
    uow.execute(queue_owners.delete().where(queue_owners.c.owner == owner))
    uow.execute(owner_peers.delete().where(owner_peers.c.owner == owner))


def forget(uow: UnitOfWork, age: float = FORGET_AFTER) -> None:
    """Remove the rows of owners silent for `age` seconds: processes that were killed.
    Harmless for their leases: an owner without a row is as dead as a silent one."""
    uow.execute(queue_owners.delete().where(queue_owners.c.heartbeat_at < db_now() - age))
    uow.execute(owner_peers.delete().where(
        owner_peers.c.owner.not_in(sa.select(queue_owners.c.owner))))
