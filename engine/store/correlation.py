"""Answers linked to what they answer: a message whose codec names the control id it
relates to (SCRIPT's RelatesToMessageID: a Status, Error or Verify, a CancelRxResponse
or RxRenewalResponse) is tied to the stored message with that control id (its
Header/MessageID), in whichever channel it came or went through, so an analyst reads a
NewRx and its Status or Error together (`conduit audit show`, the API's message view).

The link is a row of ids (message_relations) and a `correlated` event on each side,
written in the answer's own unit of work; nothing of the content.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from engine.events import Event, Kind
from engine.store.database import reader
from engine.store.schema import message_relations as relations
from engine.store.schema import messages
from engine.store.writer import UnitOfWork


def original_of(engine: sa.Engine, control_id: str, answered: str = ""
                ) -> tuple[str, str] | None:
    """(message id, channel) of the newest stored message carrying `control_id` and not
    refused as unreadable, preferring one sent by `answered` (the answer's receiver: a
    MessageID is unique per sender only); None when there is none."""
    from_answered = sa.case((messages.c.sender == answered, 1), else_=0)
    with reader(engine).connect() as conn:  # never queued behind the writer's lock
        row = conn.execute(
            sa.select(messages.c.id, messages.c.channel)
            .where(messages.c.control_id == control_id[:64],
                   messages.c.status != "rejected")
            .order_by(from_answered.desc(), messages.c.id.desc()).limit(1)
        ).first()
    return (row.id, row.channel) if row is not None else None


def link(uow: UnitOfWork, hop: dict[str, Any], message_type: str,
         original: tuple[str, str], now: float) -> None:
    """Tie the answer (`hop`'s message) to `original`, audited on both."""
    original_id, original_channel = original
    uow.insert(relations, {"message_id": hop["message_id"], "original_id": original_id,
                           "at": now})
    uow.record(Event(kind=Kind.CORRELATED, detail={
        "relates_to": original_id, "type": message_type}, **hop))
    uow.record(Event(kind=Kind.CORRELATED, channel=original_channel, message_id=original_id,
                     detail={"answer": hop["message_id"], "type": message_type}))


def related(conn: sa.Connection, message_id: str) -> list[dict[str, Any]]:
    """The messages linked to this one, oldest first: what it answers and what answered
    it, each as {message_id, type, status, at, relation ("answers" or "answered-by")}."""
    answered_by = sa.select(relations.c.message_id.label("other"),
                            sa.literal("answered-by").label("relation")
                            ).where(relations.c.original_id == message_id)
    answers = sa.select(relations.c.original_id.label("other"),
                        sa.literal("answers").label("relation")
                        ).where(relations.c.message_id == message_id)
    links = sa.union_all(answered_by, answers).subquery()
    rows = conn.execute(
        sa.select(messages.c.id, messages.c.message_type, messages.c.status,
                  messages.c.received_at, links.c.relation)
        .join(links, links.c.other == messages.c.id)
        .order_by(messages.c.id)
    ).all()
    return [{"message_id": r.id, "type": r.message_type, "status": r.status,
             "at": r.received_at, "relation": r.relation} for r in rows]
