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

from typing import Any, NamedTuple

import sqlalchemy as sa

from engine.events import Event, Kind
from engine.message import message_id_floor
from engine.store import audit as audit_chain
from engine.store.database import pipelined
from engine.store.schema import messages


class Claim(NamedTuple):
    """A message about to be stored as taken on, if no other copy was within the window."""

    channel: str
    sender: str
    control_id: str
    content_hash: str
    since: float  # the start of the duplicate window
    hop: dict[str, Any]  # the message's id, peer and patient, for its audit events


class Resend(NamedTuple):
    """The result of a unit whose claim another copy, stored first, had already taken."""

    original: str  # the stored message's id


def taken(*columns: sa.ColumnElement[Any]) -> sa.Select:
    """`columns` of the messages taken on (accepted or filtered) under the control ids
    `control_ids`, in the channels `channels`, with ids from `floor` (bound when run):
    the question of earlier copies, here and for the duplicate index's "maybe"s
    (engine.store.messages). Every column but control_id is wrapped in coalesce, which
    keeps SQLite (without statistics) from choosing the channel's indexes, whose search
    grows with the channel's messages, over the control id's, whose search holds a
    handful of rows whatever the size."""
    return sa.select(*columns).where(
        messages.c.control_id.in_(sa.bindparam("control_ids", expanding=True)),
        sa.func.coalesce(messages.c.channel, "").in_(sa.bindparam("channels", expanding=True)),
        sa.func.coalesce(messages.c.status, "").in_(("accepted", "filtered")),
        sa.func.coalesce(messages.c.id, "") >= sa.bindparam("floor"))


_TAKEN = taken(messages.c.id, messages.c.channel, messages.c.sender, messages.c.control_id,
               messages.c.content_hash)


def lock_and_check(conn: sa.Connection, claims: dict[int, Claim]
                   ) -> tuple[tuple[int, str], dict[int, Resend], dict[int, str]]:
    """Lock the audit chain's head, then find which claims (by their unit's place in the
    batch) a stored message already answers: the head, the resends (same channel,
    sender, control id and content within the window) and the reused ids (same key,
    other content: the first such message). On PostgreSQL one round trip for both."""
    [[head], rows] = pipelined(
        conn, sa.text(audit_chain.head_query(conn)),
        _TAKEN.params(control_ids=sorted({c.control_id for c in claims.values()}),
                      channels=sorted({c.channel for c in claims.values()}),
                      floor=message_id_floor(min(c.since for c in claims.values()))))
    rows.sort()  # by id: the oldest copy first
    first: dict[tuple[str, str, str], str] = {}
    same: dict[tuple[str, str, str, str], str] = {}
    for id_, channel, sender, control_id, content_hash in rows:
        first.setdefault((channel, sender, control_id), id_)
        same.setdefault((channel, sender, control_id, content_hash), id_)
    resends: dict[int, Resend] = {}
    reused: dict[int, str] = {}
    for place, c in claims.items():
        floor = message_id_floor(c.since)
        original = same.get((c.channel, c.sender, c.control_id, c.content_hash))
        if original is not None and original >= floor:
            resends[place] = Resend(original)
        elif (earlier := first.get((c.channel, c.sender, c.control_id))) and earlier >= floor:
            reused[place] = earlier
    return (head[0], head[1]), resends, reused


def flag_reuse(events: list[Event], claim: Claim, original: str) -> None:
    """Record that the claim's control id was used before for other content, after the
    message's `parsed` event, unless the channel already did (a copy in this process)."""
    if any(e.kind is Kind.CONTROL_ID_REUSED for e in events):
        return
    after = next((i + 1 for i, e in enumerate(events) if e.kind is Kind.PARSED), len(events))
    events.insert(after, Event(kind=Kind.CONTROL_ID_REUSED, detail={"original": original},
                               **claim.hop))
