"""The statistics of a whole cluster, read from the audit trail every process appends to.

One process sees only the events it commits. When several share the store (worker
processes of `conduit run --workers N`, or engines on several hosts on one PostgreSQL
database), the process that serves the status page, /metrics and alerts counts what
all of them did by following the trail: the counts an operator reads are then exactly
the events the trail holds, whoever wrote them, at the cost of a second's delay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import msgspec
import sqlalchemy as sa

from engine.events import Event, Kind
from engine.every import Every
from engine.store.schema import audit, audit_totals_mark
from engine.store.totals import Total, roll_up

log = logging.getLogger("conduit.stats")

FOLLOW_EVERY = 0.5  # seconds between reads of the trail's new events
CHUNK = 5000  # events read at most per query

_KINDS = {k.value: k for k in Kind}
_after = (sa.select(audit.c.seq, audit.c.at_us, audit.c.kind, audit.c.actor, audit.c.channel,
                    audit.c.destination, audit.c.message_id, audit.c.peer,
                    audit.c.content_hash, audit.c.patient, audit.c.detail)
          .where(audit.c.seq > sa.bindparam("after")).order_by(audit.c.seq)
          .limit(sa.bindparam("chunk")))


def seed_point(conn: sa.Connection) -> tuple[list[Total], int]:
    """The totals of every event through the roll-up mark, and that mark: following the
    trail from it counts each event once. One transaction, the mark row locked by the
    roll-up, so no other process moves the mark between the two."""
    totals = roll_up(conn)
    mark = conn.execute(sa.select(audit_totals_mark.c.through)
                        .where(audit_totals_mark.c.id == 1)).scalar()
    return totals, mark or 0


class TrailFeed:
    """Feeds every event appended after `after` to `observe`, in order, with the time it
    was recorded."""

    def __init__(self, db: sa.Engine, observe: Callable[[list[Event], float], None],
                 after: int, every: float = FOLLOW_EVERY) -> None:
        self._db = db
        self._observe = observe
        self.after = after
        # The store away: counts wait, traffic does not.
        self._every = Every(every, self.follow, name="trail feed", log=log,
                            failure="could not follow the audit trail for the statistics")

    def start(self) -> None:
        self._every.start()

    async def stop(self) -> None:
        await self._every.stop()

    async def follow(self) -> int:
        """Read and feed what was appended since the last call; the number of events."""
        fed = 0
        while True:
            rows = await asyncio.to_thread(self._read)
            for at, events in _by_time(rows):
                self._observe(events, at)
            fed += len(rows)
            if rows:
                self.after = rows[-1].seq
            if len(rows) < CHUNK:
                return fed

    def _read(self) -> list[Any]:
        with self._db.connect() as conn:
            return conn.execute(_after, {"after": self.after, "chunk": CHUNK}).all()


def _by_time(rows: list[Any]) -> list[tuple[float, list[Event]]]:
    """Consecutive events recorded at one instant (one commit) together, as the writer
    hands them to the statistics of the process that committed them."""
    groups: list[tuple[float, list[Event]]] = []
    for r in rows:
        kind = _KINDS.get(r.kind)
        if kind is None:  # written by a newer engine: nothing here counts it
            continue
        event = Event(kind=kind, actor=r.actor, channel=r.channel, destination=r.destination,
                      message_id=r.message_id, peer=r.peer, content_hash=r.content_hash,
                      patient=r.patient, detail=msgspec.json.decode(r.detail))
        at = r.at_us / 1e6
        if groups and groups[-1][0] == at:
            groups[-1][1].append(event)
        else:
            groups.append((at, [event]))
    return groups
