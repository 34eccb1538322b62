"""Claims: whether a message is a resend, asked again inside the commit that would store
it, where other processes take messages into the same store.

The duplicate step (engine.pipeline.duplicates) asks the store before routing, but two
copies of one message taken by two processes at the same moment both find nothing there,
since neither is committed yet. So such a message's unit of work carries a claim, and the
writer checks it in its transaction after taking the audit chain's head row (FOR UPDATE
on PostgreSQL; SQLite's write lock is already held): every commit that stores messages
takes that row, so the second of two such commits waits for the first and then sees its
message. The loser is not stored as taken on; its unit's result is a Resend naming the
message that won, and the channel stores and answers it as the duplicate it is.
"""

from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa

from engine.message import message_id_floor
from engine.store.schema import messages


class Claim(NamedTuple):
    """A message about to be stored as taken on, if no other copy was within the window."""

    channel: str
    sender: str
    control_id: str
    content_hash: str
    since: float  # the start of the duplicate window


class Resend(NamedTuple):
    """The result of a unit whose claim another copy, stored first, had already taken."""

    original: str  # the stored message's id


_TAKEN = (
    sa.select(messages.c.id, messages.c.channel, messages.c.sender, messages.c.control_id,
              messages.c.content_hash)
    .where(messages.c.control_id.in_(sa.bindparam("control_ids", expanding=True)),
           messages.c.channel.in_(sa.bindparam("channels", expanding=True)),
           messages.c.status.in_(("accepted", "filtered")),
           sa.func.coalesce(messages.c.id, "") >= sa.bindparam("floor"))
    .order_by(messages.c.id)
)


def taken(conn: sa.Connection, claims: dict[int, Claim]) -> dict[int, Resend]:
    """The claims (by their unit's place in the batch) that a stored message already
    answers: same channel, sender, control id and content, within the window. Run after
    the head row is locked, so what another process committed is visible."""
    if not claims:
        return {}
    rows = conn.execute(_TAKEN, {
        "control_ids": sorted({c.control_id for c in claims.values()}),
        "channels": sorted({c.channel for c in claims.values()}),
        "floor": message_id_floor(min(c.since for c in claims.values()))}).all()
    first: dict[tuple[str, str, str, str], str] = {}
    for r in rows:  # by id: the oldest copy is the original
        first.setdefault((r.channel, r.sender, r.control_id, r.content_hash), r.id)
    found = {}
    for place, c in claims.items():
        original = first.get((c.channel, c.sender, c.control_id, c.content_hash))
        if original is not None and original >= message_id_floor(c.since):
            found[place] = Resend(original)
    return found
