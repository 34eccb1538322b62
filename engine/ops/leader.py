"""Which process speaks for the whole cluster: a lease in the shared store.

Every host's primary process watches the cluster (its status page, its alert rules,
counted from the shared audit trail), so each sees the same alert begin at the same
moment; if each also sent it, an on-call phone would ring once per host. The one holding
the `alerts` lease sends; the others keep their trackers current, so when the holder
dies the next one takes over within LEASE_TTL without firing again what already fired.

Times are the database's clock (engine.queue.owners.db_now), as for queue owners, so
hosts with skewed clocks still agree on when a lease lapsed.
"""

from __future__ import annotations

import logging
import time

import sqlalchemy as sa

from engine.every import Every
from engine.queue.owners import db_now
from engine.store.database import conflict_insert
from engine.store.schema import cluster_leases
from engine.store.writer import UnitOfWork, Writer

log = logging.getLogger("conduit.cluster")

LEASE_TTL = 5.0  # seconds a holder that stopped renewing keeps the lease
RENEW_EVERY = 1.0


def claim(name: str, owner: str, ttl: float = LEASE_TTL) -> UnitOfWork:
    """A unit whose result is True when `owner` holds lease `name` after it: renewed if
    it held it, taken if the lease lapsed or never existed, refused otherwise."""
    t = cluster_leases

    def run(conn: sa.Connection) -> bool:
        taken = conn.execute(
            t.update().where(t.c.name == name,
                             sa.or_(t.c.owner == owner, t.c.until < db_now()))
            .values(owner=owner, until=db_now() + ttl))
        if taken.rowcount:
            return True
        # The first claim on this store: one insert wins, the others do nothing.
        insert = conflict_insert(conn.dialect.name, t).from_select(
            ["name", "owner", "until"],
            sa.select(sa.literal(name), sa.literal(owner), db_now() + ttl))
        # RETURNING, since the driver's row count of an INSERT ... SELECT is unreliable
        inserted = conn.execute(insert.on_conflict_do_nothing(index_elements=["name"])
                                .returning(t.c.name))
        return inserted.first() is not None

    unit = UnitOfWork()
    unit.query = run
    return unit


def release(name: str, owner: str) -> UnitOfWork:
    """Give the lease up at a clean stop, so another takes it at its next renewal."""
    unit = UnitOfWork()
    unit.execute(cluster_leases.delete().where(cluster_leases.c.name == name,
                                               cluster_leases.c.owner == owner))
    return unit


class ClusterLease:
    """Holds (or waits for) lease `name` for `owner` while started."""

    def __init__(self, writer: Writer, name: str, owner: str, ttl: float = LEASE_TTL) -> None:
        self._writer = writer
        self.name = name
        self.owner = owner
        self._ttl = ttl
        self._held = False
        self._trusted_until = 0.0  # time.monotonic()
        self._renewal = Every(RENEW_EVERY, self._claim, name=f"lease {name}", log=log,
                              failure=f"could not renew the cluster's {name} lease")

    async def start(self) -> None:
        await self._claim()
        self._renewal.start()

    @property
    def held(self) -> bool:
        """Held, and renewed recently enough that nobody else can have taken it: a store
        stalled past half the TTL makes this process go quiet rather than speak twice."""
        return self._held and time.monotonic() < self._trusted_until

    async def stop(self) -> None:
        await self._renewal.stop()
        if self._held:
            self._held = False
            await self._writer.commit(release(self.name, self.owner))

    async def _claim(self) -> None:
        submitted = time.monotonic()
        held = await self._writer.commit(claim(self.name, self.owner, self._ttl))
        if held != self._held:
            log.info("%s the cluster's %s lease", "took" if held else "lost", self.name)
        self._held = held
        self._trusted_until = submitted + self._ttl / 2
