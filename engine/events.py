"""Typed events: every hop of a message, and every admin action, is one Event.

An event is written to the audit trail in the same transaction as the state change it
describes; once that transaction commits, `observe` writes its PHI-free log line and
counts it in the metrics. One source for all three, so they never disagree.
"""

from __future__ import annotations

import collections
import enum
import logging
from typing import Any

import msgspec

log = logging.getLogger("conduit.events")


class Kind(enum.StrEnum):
    RECEIVED = "received"  # raw bytes stored (sealed)
    ACKNOWLEDGED = "acknowledged"  # reply written back to the sender
    PARSED = "parsed"
    REJECTED = "rejected"  # could not be parsed; raw kept for the analyst
    FILTERED = "filtered"  # dropped on purpose by a filter or a mapping's Skip
    MAPPED = "mapped"  # output produced by mapping@version
    ERRORED = "errored"  # mapping failed; waits for an analyst
    QUEUED = "queued"  # entered a destination's queue
    SENT = "sent"  # the destination accepted it
    RETRIED = "retried"  # a delivery attempt failed and will be tried again
    DEAD_LETTERED = "dead-lettered"  # gave up; waits in the dead-letter queue
    REQUEUED = "requeued"  # a dead letter put back on its queue
    VIEWED = "viewed"  # someone read message content (a PHI access)
    ADMIN = "admin"  # engine or channel started/stopped, keys rotated, ...


# Hops that are routine at volume log at DEBUG; what an operator must see logs higher.
_LEVELS = {
    Kind.REJECTED: logging.WARNING,
    Kind.ERRORED: logging.WARNING,
    Kind.RETRIED: logging.WARNING,
    Kind.DEAD_LETTERED: logging.ERROR,
    Kind.REQUEUED: logging.INFO,
    Kind.VIEWED: logging.INFO,
    Kind.ADMIN: logging.INFO,
}


class Event(msgspec.Struct, kw_only=True):
    """One audited fact. Never holds content or identifiers: ids, hashes, a keyed
    patient pseudonym, and PHI-free details (codes, mapping@version, reasons we wrote)."""

    kind: Kind
    actor: str = "engine"
    channel: str | None = None
    destination: str | None = None
    message_id: str | None = None
    peer: str | None = None
    content_hash: str | None = None
    patient: str | None = None
    detail: dict[str, Any] = {}


class Metrics:
    """Counts of committed events by (kind, channel, destination)."""

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, str, str]] = collections.Counter()

    def count(self, kind: str, channel: str | None = None, destination: str | None = None) -> int:
        if channel is None:
            return sum(n for (k, _, _), n in self.counts.items() if k == kind)
        if destination is None:
            return sum(n for (k, c, _), n in self.counts.items() if k == kind and c == channel)
        return self.counts[(kind, channel, destination)]


def observe(events: list[Event], metrics: Metrics) -> None:
    """After commit: log and count each event."""
    debug = log.isEnabledFor(logging.DEBUG)
    for e in events:
        metrics.counts[(e.kind.value, e.channel or "", e.destination or "")] += 1
        level = _LEVELS.get(e.kind, logging.DEBUG)
        if level > logging.DEBUG or debug:
            log.log(level, "%s", describe(e))


def describe(e: Event) -> str:
    """The log line for an event: key=value pairs of ids and codes only."""
    parts = [f"event={e.kind.value}"]
    if e.channel:
        parts.append(f"channel={e.channel}")
    if e.destination:
        parts.append(f"destination={e.destination}")
    if e.message_id:
        parts.append(f"message={e.message_id}")
    if e.actor != "engine":
        parts.append(f"actor={e.actor}")
    parts.extend(f"{k}={_quote(v)}" for k, v in e.detail.items())
    return " ".join(parts)


def _quote(value: Any) -> str:
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text
