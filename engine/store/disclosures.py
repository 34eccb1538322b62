"""The accounting of disclosures: every hop and every read of one patient's data over a
period, found through the keyed pseudonym, never by storing the identifier.

Most hops carry the pseudonym (received, parsed, mapped, queued, sent, viewed...); the
few that do not (acknowledged, responded, requeued, discarded, correlated) are found
through their message id: the messages the pseudonym's own events name, and those the
messages table files under it. A hop's mapping@version is carried from the message's
latest "mapped" event to the queued/sent/retried/dead-lettered hops after it.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from engine.events import Event, Kind
from engine.store.database import reader
from engine.store.schema import NOT_A_MESSAGE_HOP, audit, messages
from engine.store.writer import UnitOfWork

# The CSV's header, in order; JSON rows carry the same keys (detail decoded).
COLUMNS = ("at", "seq", "event", "what", "actor", "channel", "destination", "peer",
           "sender", "message_id", "message_type", "mapping", "reason", "detail")
ACTION = "audit-disclosures"  # the admin event's action when someone reads a report
_CHUNK = 500  # message ids per IN (...) query
# Hops that deliver (or try to) what a mapping made: they inherit its mapping@version.
_DELIVERY = frozenset({"queued", "sent", "retried", "dead-lettered", "requeued",
                       "discarded"})


class BadPeriod(ValueError):
    """A date or time that cannot be read, or a period that ends before it starts."""


def parse_time(text: str | None, *, end: bool = False) -> int | None:
    """Microseconds since the epoch of a date (2026-03-01: its start, or with `end` the
    start of the next day, so --to is inclusive), an ISO time (UTC unless it names an
    offset) or Unix seconds; None when not given."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        return int(float(text) * 1_000_000) if text.replace(".", "", 1).isdecimal() else \
            _iso_us(text, end)
    except ValueError:
        raise BadPeriod(f"{text!r} is not a date (2026-03-01), an ISO time "
                        "(2026-03-01T08:00:00Z) or Unix seconds") from None


def _iso_us(text: str, end: bool) -> int:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    us = int(when.timestamp() * 1_000_000)
    if end and len(text) == 10:  # a bare date: the whole day
        us += 86_400_000_000
    return us


def period(since: str | None, until: str | None, now_us: int) -> tuple[int, int]:
    """[from, to) in microseconds; from the start of the trail to now by default."""
    lo = parse_time(since) or 0
    hi = parse_time(until, end=True) or now_us
    if hi <= lo:
        raise BadPeriod("the period ends before it starts")
    return lo, hi


async def report(svc: Any, identifier: str, since_us: int, until_us: int, actor: str,
                 fmt: str) -> tuple[str, list[dict[str, Any]]]:
    """(pseudonym, rows) for one patient; the read is audited (who, the pseudonym, the
    period; never the identifier) and committed before the rows are returned."""
    pseudonym = svc.vault.patient_pseudonym(identifier)
    if pseudonym is None:
        raise BadPeriod("give the patient's identifier")

    def read() -> list[dict[str, Any]]:
        with reader(svc.db).connect() as conn:
            return find(conn, pseudonym, since_us, until_us)

    rows = await asyncio.to_thread(read)
    uow = UnitOfWork()
    uow.record(Event(kind=Kind.ADMIN, actor=actor, patient=pseudonym, detail={
        "action": ACTION, "from": iso(since_us), "to": iso(until_us), "format": fmt,
        "events": len(rows)}))
    await svc.writer.commit(uow)
    return pseudonym, rows


def find(conn: sa.Connection, pseudonym: str, since_us: int, until_us: int
         ) -> list[dict[str, Any]]:
    """The patient's hops recorded in [since_us, until_us), oldest first, each a dict
    with COLUMNS' keys (detail decoded). Run it in one read transaction."""
    # Events of the patient's messages' hops come through the messages' patient index;
    # those of other kinds (reads, requeues, answers) through the audit's own.
    own = [dict(r) for r in conn.execute(
        sa.select(audit).where(audit.c.patient == pseudonym, sa.text(NOT_A_MESSAGE_HOP))
    ).mappings()]
    ids = {r["message_id"] for r in own if r["message_id"]}
    ids |= set(conn.execute(sa.select(messages.c.id).where(
        messages.c.patient == pseudonym)).scalars())
    by_seq = {r["seq"]: r for r in own}
    meta: dict[str, tuple[str, str]] = {}
    ordered = sorted(ids)
    for i in range(0, len(ordered), _CHUNK):
        chunk = ordered[i:i + _CHUNK]
        for r in conn.execute(sa.select(audit).where(audit.c.message_id.in_(chunk))
                              ).mappings():
            by_seq.setdefault(r["seq"], dict(r))
        for m in conn.execute(sa.select(messages.c.id, messages.c.sender,
                                        messages.c.message_type)
                              .where(messages.c.id.in_(chunk))):
            meta[m.id] = (m.sender, m.message_type)
    mapping_of: dict[str, str] = {}  # message id -> the mapping@version of its output
    out = []
    for seq in sorted(by_seq):
        row = by_seq[seq]
        detail = json.loads(row["detail"]) if row["detail"] else {}
        mid = row["message_id"]
        mapping = detail.get("mapping") if isinstance(detail.get("mapping"), str) else None
        if row["kind"] == "mapped" and mapping and mid and "output" in detail:
            mapping_of[mid] = mapping
        elif row["kind"] in _DELIVERY and mid:
            mapping = mapping_of.get(mid)
        if not since_us <= row["at_us"] < until_us:
            continue
        sender, message_type = meta.get(mid or "", ("", ""))
        out.append(_row(row, detail, mapping or "", sender, message_type))
    return out


def _row(row: dict[str, Any], detail: dict[str, Any], mapping: str, sender: str,
         message_type: str) -> dict[str, Any]:
    reason = detail.get("reason")
    return {
        "at": iso(row["at_us"]), "seq": row["seq"], "event": row["kind"],
        "what": _what(row, detail, mapping), "actor": row["actor"],
        "channel": row["channel"] or "", "destination": row["destination"] or "",
        "peer": row["peer"] or "", "sender": sender or "", "message_id": row["message_id"] or "",
        "message_type": message_type or "", "mapping": mapping,
        "reason": reason if isinstance(reason, str) else "", "detail": detail}


def _what(row: dict[str, Any], detail: dict[str, Any], mapping: str) -> str:
    """One PHI-free line saying what happened, for a person reading the report."""
    kind, actor = row["kind"], row["actor"]
    where = "/".join(p for p in (row["channel"], row["destination"]) if p)
    peer = f" ({row['peer']})" if row["peer"] else ""
    if kind == "received":
        return f"received on {row['channel']} from {row['peer'] or 'a sender'}"
    if kind == "mapped":
        return f"mapped under {mapping}" if mapping else "mapped"
    if kind == "queued":
        return f"queued for {where}"
    if kind == "sent":
        return f"sent to {where}{peer}"
    if kind == "retried":
        return f"delivery to {where} failed, to be retried"
    if kind == "dead-lettered":
        return f"delivery to {where} given up (dead letter)"
    if kind in ("requeued", "discarded"):
        return f"dead letter on {where} {kind} by {actor}"
    if kind == "viewed":
        return f"content read by {actor}"
    if kind == "reprocessed":
        return f"reprocessed by {actor}" + (f" under {mapping}" if mapping else "")
    if kind == "responded":
        return f"answered the caller on {row['channel']} ({detail.get('outcome', '')})"
    if kind == "acknowledged":
        return "acknowledgement sent back to the sender"
    if kind == "admin" and detail.get("action") == ACTION:
        return f"accounting of disclosures read by {actor}"
    if kind == "admin" and detail.get("action") == "patient-search":
        return f"{detail.get('of', 'messages')} searched by patient by {actor}"
    if kind == "admin" and detail.get("action") == "audit-export":
        return f"audit trail exported by {actor}"
    return kind


def iso(at_us: int) -> str:
    return datetime.fromtimestamp(at_us / 1e6, UTC).isoformat(timespec="milliseconds"
                                                              ).replace("+00:00", "Z")


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([json.dumps(r[c], sort_keys=True, separators=(",", ":"))
                         if c == "detail" else r[c] for c in COLUMNS])
    return buf.getvalue()


def to_json(rows: list[dict[str, Any]], pseudonym: str, since_us: int, until_us: int
            ) -> str:
    return json.dumps({"patient_pseudonym": pseudonym, "from": iso(since_us),
                       "to": iso(until_us), "events": rows}, indent=1) + "\n"
