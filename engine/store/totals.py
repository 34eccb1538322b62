"""Running totals of audit events per (kind, channel, destination), rolled up from the
trail itself so counts outlive the process that saw the events.

A roll-up counts only the events after its mark and moves the mark in the same
transaction; the mark row is locked first, so two processes on one PostgreSQL database
never count an event twice. Appends to the trail are serialised on its head row, so
event numbers become visible in order and nothing below the mark can appear later.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from engine.store.schema import audit, audit_totals, audit_totals_mark

Total = tuple[str, str, str, int]  # kind, channel ("" for none), destination, count
# Not an event kind: the fields conversions left behind (a mapped event's `left_behind`),
# totalled beside the events so the per-channel count outlives the process too.
FIELDS_DROPPED = "fields-dropped"


def roll_up(conn: sa.Connection) -> list[Total]:
    """Add the events after the mark to the totals; returns every total."""
    mark = _locked_mark(conn)
    if mark is None:  # the first roll-up on this database; another process may race it
        try:
            with conn.begin_nested():
                conn.execute(audit_totals_mark.insert().values(id=1, through=0))
        except sa.exc.IntegrityError:
            pass  # theirs was first: wait for it and take its mark
        mark = _locked_mark(conn) or 0
    channel = sa.func.coalesce(audit.c.channel, "")
    destination = sa.func.coalesce(audit.c.destination, "")
    new = conn.execute(
        sa.select(audit.c.kind, channel, destination, sa.func.count(), sa.func.max(audit.c.seq))
        .where(audit.c.seq > mark).group_by(audit.c.kind, channel, destination)
    ).all()
    new += _fields_dropped(conn, mark, channel)
    if new:
        known = {(k, c, d) for k, c, d in conn.execute(sa.select(
            audit_totals.c.kind, audit_totals.c.channel, audit_totals.c.destination))}
        key = ((audit_totals.c.kind == sa.bindparam("k"))
               & (audit_totals.c.channel == sa.bindparam("c"))
               & (audit_totals.c.destination == sa.bindparam("d")))
        grown = [{"k": k, "c": c, "d": d, "add": n} for k, c, d, n, _ in new
                 if (k, c, d) in known]
        if grown:
            conn.execute(audit_totals.update().where(key)
                         .values(n=audit_totals.c.n + sa.bindparam("add")), grown)
        fresh = [{"kind": k, "channel": c, "destination": d, "n": n} for k, c, d, n, _ in new
                 if (k, c, d) not in known]
        if fresh:
            conn.execute(audit_totals.insert(), fresh)
        conn.execute(audit_totals_mark.update().where(audit_totals_mark.c.id == 1)
                     .values(through=max(last for *_, last in new)))
    return [tuple(r) for r in conn.execute(sa.select(
        audit_totals.c.kind, audit_totals.c.channel, audit_totals.c.destination,
        audit_totals.c.n))]


def _fields_dropped(conn: sa.Connection, mark: int, channel: sa.ColumnElement
                    ) -> list[tuple[str, str, str, int, int]]:
    """The left-behind fields of the mapped events after the mark, per channel; only
    the events that left something behind are read."""
    rows = conn.execute(
        sa.select(channel, audit.c.detail, audit.c.seq)
        .where(audit.c.seq > mark, audit.c.kind == "mapped",
               audit.c.detail.contains('"left_behind"'))
    ).all()
    by_channel: dict[str, list[int]] = {}
    for name, detail, seq in rows:
        n, last = by_channel.setdefault(name, [0, 0])
        by_channel[name] = [n + len(json.loads(detail).get("left_behind", ())), max(last, seq)]
    return [(FIELDS_DROPPED, name, "", n, last) for name, (n, last) in by_channel.items()]


def _locked_mark(conn: sa.Connection) -> int | None:
    """The last event counted, with the mark row locked until the transaction ends."""
    return conn.execute(sa.select(audit_totals_mark.c.through)
                        .where(audit_totals_mark.c.id == 1).with_for_update()).scalar()
