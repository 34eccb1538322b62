"""The version each resource id is at on a FHIR source, kept in the store so that a
second PUT of an id is an update (meta.versionId 2, ETag W/"2", an ADT^A31 rather than
an A28) after a restart and across engine processes sharing one PostgreSQL database.

FHIR makes the server the keeper of versions (R4 http.html#versioning): the source asks
for the next version of an id before it hands the resource to the channel, and gives it
back when the channel does not take the resource on. One statement takes a version, an
upsert that inserts 1 for an id never seen or adds one, returning the new value: on
PostgreSQL the row lock serialises two processes updating one id, on SQLite the
statement runs in its own write transaction (BEGIN IMMEDIATE, see database.py).

Giving back only steps back when nobody took a later version meanwhile, so a refused
update racing an accepted one leaves a gap, never a repeat: FHIR version ids are
opaque and need not be consecutive, but the same version must never name two contents.

Rows are keyed by channel and the keyed pseudonym of "Type/id" (engine.security.crypto):
a resource id may be a patient's identifier, and this table holds no PHI.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from engine.security.crypto import Vault
from engine.store.database import conflict_insert
from engine.store.schema import fhir_versions

_table = fhir_versions


def _upsert(dialect: str) -> sa.Executable:
    floor = sa.bindparam("floor", type_=sa.BigInteger)
    statement = conflict_insert(dialect, _table).values(
        channel=sa.bindparam("channel"), resource=sa.bindparam("resource"), version=floor)
    return statement.on_conflict_do_update(
        index_elements=[_table.c.channel, _table.c.resource],
        set_={"version": sa.case((_table.c.version < floor, floor),
                                 else_=_table.c.version + 1)},
    ).returning(_table.c.version)


def take(db: sa.Engine, channel: str, resource: str, floor: int = 1) -> int:
    """The next version of `resource` (a pseudonym) on `channel`, durable on return: 1
    the first time, then one more each time; `floor` when that is ahead (the version
    another FHIR server gave the resource it relays, which the receiver knows it by)."""
    if db.dialect.name not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"FHIR versions on {db.dialect.name}")
    with db.begin() as conn:
        return int(conn.execute(_upsert(db.dialect.name), {
            "channel": channel, "resource": resource, "floor": max(1, floor)}).scalar_one())


def take_if(db: sa.Engine, channel: str, resource: str, expected: int) -> int | None:
    """The next version of `resource` when it is at `expected` now (a version-aware
    update, If-Match), else None: one conditional statement, so two clients updating
    from one version cannot both win."""
    where = sa.and_(_table.c.channel == channel, _table.c.resource == resource,
                    _table.c.version == expected)
    with db.begin() as conn:
        value = conn.execute(_table.update().where(where).values(
            version=_table.c.version + 1).returning(_table.c.version)).scalar()
    return int(value) if value is not None else None


def give_back(db: sa.Engine, channel: str, resource: str, version: int) -> None:
    """Undo `take` of `version` when it is still the latest (the resource was not taken
    on); a version 1 given back forgets the id, so its next PUT is a create again."""
    where = sa.and_(_table.c.channel == channel, _table.c.resource == resource,
                    _table.c.version == version)
    with db.begin() as conn:
        if version <= 1:
            conn.execute(_table.delete().where(where))
        else:
            conn.execute(_table.update().where(where).values(version=version - 1))


def current(db: sa.Engine, channel: str, resource: str) -> int | None:
    """The version `resource` is at, None for an id never taken on."""
    with db.connect() as conn:
        value = conn.execute(sa.select(_table.c.version).where(
            _table.c.channel == channel, _table.c.resource == resource)).scalar()
    return int(value) if value is not None else None


class FhirVersions:
    """Versions of one database, by resource type and id (pseudonymised here), for the
    FHIR source; the database work runs off the event loop."""

    def __init__(self, db: sa.Engine, vault: Vault) -> None:
        self._db = db
        self._vault = vault

    def key(self, kind: str, rid: str) -> str:
        key = self._vault.pseudonym(f"{kind}/{rid}")
        assert key is not None  # kind and rid are never empty here
        return key

    async def take(self, channel: str, kind: str, rid: str, floor: int = 1) -> int:
        return await asyncio.to_thread(take, self._db, channel, self.key(kind, rid), floor)

    async def take_if(self, channel: str, kind: str, rid: str, expected: int) -> int | None:
        return await asyncio.to_thread(take_if, self._db, channel, self.key(kind, rid),
                                       expected)

    async def give_back(self, channel: str, kind: str, rid: str, version: int) -> None:
        await asyncio.to_thread(give_back, self._db, channel, self.key(kind, rid), version)

    def current(self, channel: str, kind: str, rid: str) -> int | None:
        return current(self._db, channel, self.key(kind, rid))
