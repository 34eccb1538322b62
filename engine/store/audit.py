"""The audit trail: an HMAC-SHA256 hash chain over every event, with its head kept in a
separate row moved in the same transaction.

Each event's hash covers the previous hash and every column of the event, keyed with
the audit key, so editing, deleting, inserting or reordering rows breaks the chain, and
recomputing it needs the key. Deleting the newest rows leaves a shorter valid chain, which
the head row catches; and since moving the head back onto an earlier event needs only
that event's hash, which is in its row, the head is sealed too: a second row (SEAL_ROW)
holds an HMAC of the head's number and hash under the same key, moved in the same
statement, so a shortened trail cannot be passed off as whole without the key.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import sqlalchemy as sa

from engine.events import Event
from engine.store.database import Statement, execute_together, insert_tuples
from engine.store.schema import SEAL_ROW, UNSEALED, audit, audit_head, messages

GENESIS = "0" * 64
_COLUMNS = ("seq", "at_us", "kind", "actor", "channel", "destination", "message_id",
            "peer", "content_hash", "patient", "detail")


def link_hash(key: bytes, prev_hash: str, row: dict[str, Any]) -> str:
    return _link(key, prev_hash, [row[c] for c in _COLUMNS])


def _link(key: bytes, prev_hash: str, values: list[Any]) -> str:
    """The hash of an event whose columns are `values` (in _COLUMNS order)."""
    return hmac.digest(key, prev_hash.encode() + msgspec.json.encode(values), "sha256").hex()


def seal(key: bytes, seq: int, head_hash: str) -> str:
    """The head's seal: which event is the last, in a form only the key can make."""
    return hmac.digest(key, f"audit-head:{seq}:{head_hash}".encode(), "sha256").hex()


# The head's read and move as plain SQL: they run in every write transaction, and building
# and compiling them as expressions cost more than the statements themselves. FOR UPDATE
# (which serialises appenders across processes) on PostgreSQL; SQLite's write lock does.
_HEAD = "SELECT seq, hash FROM audit_head WHERE id = 1"
_MOVE = "UPDATE audit_head SET seq = {p}, hash = CASE WHEN id = 1 THEN {p} ELSE {p} END " \
        f"WHERE id IN (1, {SEAL_ROW})"
_MOVE_HEAD = {"qmark": _MOVE.format(p="?"), "pyformat": _MOVE.format(p="%s"),
              "format": _MOVE.format(p="%s")}
_ROW_COLUMNS = (*_COLUMNS, "prev_hash", "hash")


def head_query(conn: sa.Connection) -> str:
    """The read of the chain's head (seq, hash) that locks it for the rest of the
    transaction: FOR UPDATE serialises appenders across processes (PostgreSQL); SQLite's
    write lock already does."""
    return _HEAD if conn.dialect.name == "sqlite" else _HEAD + " FOR UPDATE"


def lock_head(conn: sa.Connection, before: list[Statement] | None = None) -> tuple[int, str]:
    """The chain's head, locked (head_query), after the statements `before` (on
    PostgreSQL they go out with the head's read, one round trip)."""
    seq, prev = execute_together(conn, before or [], head_query(conn))
    return seq, prev


def append(conn: sa.Connection, key: bytes, events: list[Event],
           before: list[Statement] | None = None, head: tuple[int, str] | None = None
           ) -> None:
    """Append events to the chain inside the caller's transaction, after the statements
    `before`; `head` when the caller already holds it (lock_head)."""
    if head is None:
        seq, prev = lock_head(conn, before)
        before = []
    else:
        seq, prev = head  # `before` goes out with the events' rows
    now_us = time.time_ns() // 1000
    encode = msgspec.json.encode
    rows = []
    for e in events:
        seq += 1
        values = [seq, now_us, e.kind.value, e.actor, e.channel, e.destination, e.message_id,
                  e.peer, e.content_hash, e.patient, encode(e.detail).decode()]
        digest = _link(key, prev, values)
        values += (prev, digest)
        rows.append(tuple(values))
        prev = digest
    execute_together(conn, [*(before or []), insert_tuples(conn, audit, _ROW_COLUMNS, rows),
                            (_MOVE_HEAD[conn.dialect.paramstyle],
                             (seq, prev, seal(key, seq, prev)))])


class Broken(msgspec.Struct):
    seq: int  # the event's number in the chain, which is its id
    kind: str
    reason: str


class Verified(msgspec.Struct):
    events: int
    broken: Broken | None = None


def verify(conn: sa.Connection, key: bytes, chunk: int = 5000) -> Verified:
    """Walk the whole chain in order; report the first broken link, if any."""
    prev = GENESIS
    expected_seq = 1
    count = 0
    for row in _rows(conn, chunk):
        if row["seq"] != expected_seq:
            what = "missing" if row["seq"] > expected_seq else "repeated"
            return Verified(count, Broken(row["seq"], row["kind"],
                                          f"event #{expected_seq} is {what} before it"))
        if row["prev_hash"] != prev:
            return Verified(count, Broken(row["seq"], row["kind"],
                                          "does not link to the event before it"))
        if link_hash(key, prev, row) != row["hash"]:
            return Verified(count, Broken(row["seq"], row["kind"],
                                          "its content differs from what was recorded"))
        prev = row["hash"]
        expected_seq += 1
        count += 1
    heads = {row.id: row for row in conn.execute(
        sa.select(audit_head.c.id, audit_head.c.seq, audit_head.c.hash))}
    head_seq = heads[1].seq
    if head_seq != count or heads[1].hash != prev:
        return Verified(count, Broken(head_seq, "head",
                                      f"the trail ends at event #{count}, but event "
                                      f"#{head_seq} was recorded as the last"))
    sealed = heads[SEAL_ROW].hash if SEAL_ROW in heads else None
    if sealed == UNSEALED and count == 0 and _no_messages(conn):
        return Verified(count)  # a new store
    if sealed == UNSEALED:
        return Verified(count, Broken(head_seq, "head",
                                      "the last event is not sealed (no event has been "
                                      "written since this version first opened the store; "
                                      "start the engine once, then verify)"))
    if sealed is None or not hmac.compare_digest(sealed, seal(key, head_seq, prev)):
        return Verified(count, Broken(head_seq, "head",
                                      f"the trail ends at event #{count}, but that was not "
                                      "recorded as the last (newer events were removed?)"))
    return Verified(count)


def _no_messages(conn: sa.Connection) -> bool:
    """An empty trail is whole only while nothing was ever taken in."""
    return conn.execute(sa.select(messages.c.id).limit(1)).first() is None


def _rows(conn: sa.Connection, chunk: int) -> Iterator[dict[str, Any]]:
    last = 0
    while True:
        batch = conn.execute(
            sa.select(audit).where(audit.c.seq > last).order_by(audit.c.seq).limit(chunk)
        ).mappings().all()
        if not batch:
            return
        for row in batch:
            yield dict(row)
        last = batch[-1]["seq"]


def events_of_message(conn: sa.Connection, message_id: str) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(
        sa.select(audit).where(audit.c.message_id == message_id).order_by(audit.c.seq)
    ).mappings()]
