"""X12 control numbers per trading partner, kept in the store so they survive restarts
and are never handed out twice, even by two engine processes on one PostgreSQL database.

A partner refuses (or silently drops) an interchange whose ISA13 it has already seen
from us, so the number must move forward durably before anything goes out. One
statement does it: an upsert that inserts 1 for a new partner or adds one to the last
number (back to 1 after 999999999, the nine digits ISA13 has), returning the new value.
On PostgreSQL the row lock taken by the update serialises concurrent takers; on SQLite
the statement runs in its own write transaction (BEGIN IMMEDIATE, see database.py).

Numbers are taken before a message is routed; a message then filtered or failed leaves
a gap. Partners check for repeats, not gaps, so that is harmless.
"""

from __future__ import annotations

import sqlalchemy as sa

from engine.store.database import conflict_insert
from engine.store.schema import x12_control_numbers

MAX_CONTROL = 999_999_999

_table = x12_control_numbers


def _upsert(dialect: str) -> sa.Executable:
    statement = conflict_insert(dialect, _table).values(partner=sa.bindparam("partner"), last=1)
    return statement.on_conflict_do_update(
        index_elements=[_table.c.partner],
        set_={"last": sa.case((_table.c.last >= MAX_CONTROL, 1),
                              else_=_table.c.last + 1)},
    ).returning(_table.c.last)


def take(db: sa.Engine, partner: str) -> int:
    """The next control number for `partner` (1 the first time), durable on return."""
    if db.dialect.name not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"control numbers on {db.dialect.name}")
    with db.begin() as conn:
        return int(conn.execute(_upsert(db.dialect.name), {"partner": partner}).scalar_one())


def last(db: sa.Engine, partner: str) -> int | None:
    """The last number given to `partner`, None before the first."""
    with db.connect() as conn:
        value = conn.execute(sa.select(_table.c.last)
                             .where(_table.c.partner == partner)).scalar()
    return int(value) if value is not None else None


def start_after(db: sa.Engine, partner: str, number: int) -> None:
    """Continue `partner`'s sequence after `number` (taking over from another engine,
    whose last number the partner has already seen)."""
    if not 0 <= number <= MAX_CONTROL:
        raise ValueError(f"a control number is 0..{MAX_CONTROL}")
    with db.begin() as conn:
        updated = conn.execute(_table.update().where(_table.c.partner == partner)
                               .values(last=number)).rowcount
        if not updated:
            conn.execute(_table.insert().values(partner=partner, last=number))


class ControlNumbers:
    """`take` and `last` bound to one database."""

    def __init__(self, db: sa.Engine) -> None:
        self._db = db

    def take(self, partner: str) -> int:
        return take(self._db, partner)

    def last(self, partner: str) -> int | None:
        return last(self._db, partner)
