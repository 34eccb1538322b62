"""What the on-call has been told: the last notification sent for each alert that holds,
kept in the store in the same commit as its ALERT audit event.

Which process speaks for the cluster (engine.ops.leader) changes when a holder stops or
dies, and every process speaks anew after a restart. Each process tracks every alert,
but only the store knows what was sent, so a process that starts speaking reconciles its
tracker with it: it sends the clear of an alert that ended while nobody spoke (or while
the engine was down), the fire of one that began then, and nothing twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import msgspec
import sqlalchemy as sa

from engine.config.alerts import Rule
from engine.ops.alerts.rules import Reading
from engine.ops.alerts.tracker import Active, Notification
from engine.store.database import conflict_insert
from engine.store.schema import alerts_told
from engine.store.writer import UnitOfWork, Writer

Key = tuple[str, str]  # (rule, subject), as the tracker keys its alerts


class Told:
    """The ALERT events and the told state, in the store behind `writer`."""

    def __init__(self, writer: Writer) -> None:
        self._writer = writer

    async def record(self, notes: list[Notification]) -> None:
        """Audit `notes` and keep what they told, in one commit."""
        unit = UnitOfWork()
        for note in notes:
            unit.record(note.event())
        unit.query = _remember(notes)
        await self._writer.commit(unit)

    async def recall(self) -> dict[Key, Notification]:
        """What the on-call was last told of each alert that holds."""
        unit = UnitOfWork()
        unit.query = _told
        return await self._writer.commit(unit)


def _remember(notes: list[Notification]) -> Callable[[sa.Connection], None]:
    """A fire or a repeat is kept, a clear forgets."""
    t = alerts_told
    latest = {n.key: n for n in notes}  # the last note wins

    def write(conn: sa.Connection) -> None:
        for (rule, subject), note in latest.items():
            if note.state == "cleared":
                conn.execute(t.delete().where(t.c.rule == rule, t.c.subject == subject))
                continue
            upsert = conflict_insert(conn.dialect.name, t).values(
                rule=rule, subject=subject, notification=msgspec.json.encode(note).decode())
            conn.execute(upsert.on_conflict_do_update(
                index_elements=[t.c.rule, t.c.subject],
                set_={"notification": upsert.excluded.notification}))

    return write


def _told(conn: sa.Connection) -> dict[Key, Notification]:
    rows = conn.execute(sa.select(alerts_told.c.notification))
    notes = (msgspec.json.decode(raw, type=Notification) for (raw,) in rows)
    return {n.key: n for n in notes}


def reconcile(notes: list[Notification], active: dict[Key, Active],
              readings: Iterable[tuple[Rule, Reading]], told: dict[Key, Notification],
              now: float) -> list[Notification]:
    """What a process that starts speaking sends, given this round's `notes` from its
    tracker (which now holds `active`) and what the on-call was `told` before."""
    out: list[Notification] = []
    for note in notes:
        if note.state == "cleared":
            if note.key in told:
                out.append(note)
        elif note.key not in told:  # a repeat of a fire nobody sent is that fire
            out.append(dataclasses.replace(note, state="fired"))
        elif note.state == "repeated":
            out.append(note)
    noted = {n.key for n in notes}
    out += [alert.fired(now) for key, alert in active.items()
            if key not in noted and key not in told]
    current = {(rule.name, r.subject): r for rule, r in readings}
    out += [dataclasses.replace(note, state="cleared", at=now,
                                reading=current.get(key, note.reading))
            for key, note in told.items() if key not in noted and key not in active]
    return out
