"""Finding messages and audit events by indexed fields, newest first, a page at a time.

Every filter maps onto an index created at ingest (channel+time, status+time, type,
control id, patient pseudonym), so a search never scans the table; pages continue from
the last row seen, or go back from the first (keyset pagination), so page 100 costs what
page 1 costs.
"""

from __future__ import annotations

from typing import Any

import msgspec
import sqlalchemy as sa

from engine.message import message_id_floor
from engine.store.messages import StoredMessage
from engine.store.schema import MESSAGE_HOPS, NOT_A_MESSAGE_HOP, audit, messages

MAX_PAGE = 500


class MessageQuery(msgspec.Struct, kw_only=True):
    channel: str | None = None
    status: str | None = None
    message_type: str | None = None
    control_id: str | None = None
    patient: str | None = None  # a keyed pseudonym, never the identifier itself
    since: float | None = None
    until: float | None = None
    before: str | None = None  # older than this message id (the last of a page)
    after: str | None = None  # newer than this message id (the first of a page)
    limit: int = 50


def find_messages(conn: sa.Connection, q: MessageQuery) -> list[StoredMessage]:
    cols = [messages.c[f] for f in StoredMessage.__struct_fields__]
    stmt = sa.select(*cols)
    for column, value in ((messages.c.channel, q.channel), (messages.c.status, q.status),
                          (messages.c.message_type, q.message_type),
                          (messages.c.control_id, q.control_id),
                          (messages.c.patient, q.patient)):
        if value is not None:
            stmt = stmt.where(column == value)
    # Ids begin with their time: id order is arrival order, and time bounds are id bounds.
    if q.since is not None:
        stmt = stmt.where(messages.c.id >= message_id_floor(q.since))
    if q.until is not None:
        stmt = stmt.where(messages.c.id < message_id_floor(q.until))
    if q.before is not None:
        stmt = stmt.where(messages.c.id < q.before)
    limit = max(1, min(q.limit, MAX_PAGE))
    if q.after is None:
        stmt = stmt.order_by(messages.c.id.desc()).limit(limit)
        return [StoredMessage(*row) for row in conn.execute(stmt)]
    # Paging back: the `limit` oldest of those newer than `after`, shown newest first.
    stmt = stmt.where(messages.c.id > q.after).order_by(messages.c.id).limit(limit)
    return [StoredMessage(*row) for row in conn.execute(stmt)][::-1]


class AuditQuery(msgspec.Struct, kw_only=True):
    message_id: str | None = None
    channel: str | None = None
    patient: str | None = None
    actor: str | None = None
    kind: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    before_seq: int | None = None  # newest first, continuing below this event
    after_seq: int | None = None  # oldest first, continuing above this event (exports)
    limit: int = 100


def find_audit(conn: sa.Connection, q: AuditQuery) -> list[dict[str, Any]]:
    stmt = sa.select(audit)
    for column, value in ((audit.c.message_id, q.message_id), (audit.c.channel, q.channel),
                          (audit.c.actor, q.actor), (audit.c.kind, q.kind)):
        if value is not None:
            stmt = stmt.where(column == value)
    if q.since_us is not None:
        stmt = stmt.where(audit.c.at_us >= q.since_us)
    if q.until_us is not None:
        stmt = stmt.where(audit.c.at_us < q.until_us)
    if q.before_seq is not None:
        stmt = stmt.where(audit.c.seq < q.before_seq)
    oldest_first = q.after_seq is not None
    if oldest_first:
        stmt = stmt.where(audit.c.seq > q.after_seq).order_by(audit.c.seq)
    else:
        stmt = stmt.order_by(audit.c.seq.desc())
    limit = max(1, min(q.limit, MAX_PAGE))
    if q.patient is None:
        return [dict(r) for r in conn.execute(stmt.limit(limit)).mappings()]
    # A patient's events by the two indexes that hold them (engine.store.schema.MESSAGE_HOPS):
    # its messages' hops, and everything else; a page of each, merged into one.
    own = stmt.where(audit.c.patient == q.patient)
    hops = own.where(audit.c.kind.in_(MESSAGE_HOPS), audit.c.message_id.in_(
        sa.select(messages.c.id).where(messages.c.patient == q.patient)))
    rows = [dict(r) for part in (own.where(sa.text(NOT_A_MESSAGE_HOP)), hops)
            for r in conn.execute(part.limit(limit)).mappings()]
    rows.sort(key=lambda r: r["seq"], reverse=not oldest_first)
    return rows[:limit]
