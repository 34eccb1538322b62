"""The ledger of X12 transaction sets sent to trading partners (table x12_sent) and the
partners' verdicts on them: rows written with the message's unit of work, found again
when the partner's 999/TA1 comes back, read for the status API.

States: "sent" (handed to delivery, no verdict yet), "accepted", "accepted-with-errors"
(kept by the partner, errors noted: never resend it), "rejected". `detail` is JSON of
codes only: {"code", "errors", "notes", "ack", "at"}.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from engine.store.schema import x12_sent

SENT = "sent"
ACCEPTED = ("accepted", "accepted-with-errors")
REJECTED = "rejected"


def row(*, partner: str, interchange: str, group_control: str, set_control: str,
        message_id: str, channel: str, now: float) -> dict[str, Any]:
    """A new row in state "sent" (every key, as the writer's bulk insert wants)."""
    return {"partner": partner, "interchange": interchange, "group_control": group_control,
            "set_control": set_control, "message_id": message_id, "channel": channel,
            "state": SENT, "detail": "", "updated_at": now}


def verdict(row_id: int, state: str, detail: dict[str, Any], now: float
            ) -> sa.Executable:
    """The statement recording a partner's verdict on one row."""
    return (x12_sent.update().where(x12_sent.c.id == row_id)
            .values(state=state, detail=json.dumps(detail, separators=(",", ":")),
                    updated_at=now))


def _partner_id(partner: str) -> str:
    return partner.split(":", 1)[-1]


def find(db: sa.Engine, partner_id: str, groups: list[str], interchanges: list[str]
         ) -> list[Any]:
    """Rows sent to the partner with ISA id `partner_id` (any qualifier: some partners
    answer under another one) in one of `groups` (GS06) or `interchanges` (ISA13),
    newest first."""
    if not groups and not interchanges:
        return []
    where = sa.or_(x12_sent.c.group_control.in_(groups) if groups else sa.false(),
                   x12_sent.c.interchange.in_(interchanges) if interchanges else sa.false())
    with db.connect() as conn:
        rows = conn.execute(sa.select(x12_sent).where(
            where, x12_sent.c.partner.like(f"%:{_escape(partner_id)}", escape="\\"))
            .order_by(x12_sent.c.id.desc())).all()
    return [r for r in rows if _partner_id(r.partner) == partner_id]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def of_message(db: sa.Engine, message_id: str) -> dict[str, Any] | None:
    """What the partner said of a message's X12 (its latest sending): the state of the
    whole (rejected if any set was, then awaiting, then accepted with errors, then
    accepted), the codes of the set that decided it, when; None when the message sent
    the partner nothing."""
    with db.connect() as conn:
        rows = conn.execute(sa.select(x12_sent).where(x12_sent.c.message_id == message_id)
                            .order_by(x12_sent.c.id.desc())).all()
    if not rows:
        return None
    latest = [r for r in rows if r.interchange == rows[0].interchange]
    order = (REJECTED, SENT, "accepted-with-errors", "accepted")
    deciding = min(latest, key=lambda r: order.index(r.state) if r.state in order else 0)
    detail = json.loads(deciding.detail) if deciding.detail else {}
    return {"state": deciding.state, "code": detail.get("code"),
            "errors": detail.get("errors", []), "notes": detail.get("notes", []),
            "at": deciding.updated_at if deciding.state != SENT else None,
            "partner": deciding.partner, "interchange": deciding.interchange,
            "group_control": deciding.group_control,
            "sets": [r.set_control for r in reversed(latest)]}


def counts(db: sa.Engine, channel: str) -> dict[str, int]:
    """Sets the channel sent by the partner's verdict: accepted (with or without errors
    noted), rejected, and still awaiting a 999."""
    with db.connect() as conn:
        found: dict[str, int] = dict(conn.execute(
            sa.select(x12_sent.c.state, sa.func.count())
            .where(x12_sent.c.channel == channel).group_by(x12_sent.c.state)).all())
    return {"partner_accepted": sum(found.get(s, 0) for s in ACCEPTED),
            "partner_rejected": found.get(REJECTED, 0),
            "awaiting_partner_ack": found.get(SENT, 0)}
