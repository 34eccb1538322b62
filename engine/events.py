"""Typed events: every hop of a message, and every admin action, is one Event.

An event is written to the audit trail in the same transaction as the state change it
describes; once that transaction commits, `log_events` writes its PHI-free log line and
`Stats.observe` counts it for the status page and the metrics. One source for all three,
so they never disagree.
"""

from __future__ import annotations

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
    DUPLICATE = "duplicate"  # a resent message, acknowledged but not processed again
    # a new message under a control id the sender already used (counter reset, failover):
    # processed like any other, and flagged, since a sender that reuses ids risks losses
    CONTROL_ID_REUSED = "control-id-reused"
    MAPPED = "mapped"  # output produced by mapping@version
    ERRORED = "errored"  # mapping failed; waits for an analyst
    QUEUED = "queued"  # entered a destination's queue
    SENT = "sent"  # the destination accepted it
    # a request/response channel answered its caller with a destination's answer (or
    # said that none came in time); the message itself goes on being delivered
    RESPONDED = "responded"
    # a trading partner's 999/TA1 said accepted or rejected of X12 we sent (recorded on
    # the set we sent, and on the acknowledgement, with those it matched none of)
    PARTNER_ACKNOWLEDGED = "partner-acknowledged"
    # an answer (Status, Error, Verify, a *Response) linked to the stored message it
    # relates to; recorded on both, with ids and the answer's type only
    CORRELATED = "correlated"
    RETRIED = "retried"  # a delivery attempt failed and will be tried again
    DEAD_LETTERED = "dead-lettered"  # gave up; waits in the dead-letter queue
    RECLAIMED = "reclaimed"  # leases of an engine process that stopped beating taken over
    REQUEUED = "requeued"  # a dead letter put back on its queue
    DISCARDED = "discarded"  # a dead letter removed on purpose; the message stays stored
    REPROCESSED = "reprocessed"  # mapped again from the stored raw message, on request
    VIEWED = "viewed"  # someone read message content (a PHI access)
    DENIED = "denied"  # a request the caller's role does not allow
    ALERT = "alert"  # an alert fired, repeated or cleared
    ADMIN = "admin"  # engine or channel started/stopped, keys rotated, users changed ...


# Hops that are routine at volume log at DEBUG; what an operator must see logs higher.
_LEVELS = {
    Kind.DUPLICATE: logging.INFO,
    Kind.CONTROL_ID_REUSED: logging.WARNING,
    Kind.REJECTED: logging.WARNING,
    Kind.ERRORED: logging.WARNING,
    Kind.RETRIED: logging.WARNING,
    Kind.PARTNER_ACKNOWLEDGED: logging.INFO,
    Kind.DEAD_LETTERED: logging.ERROR,
    Kind.RECLAIMED: logging.WARNING,
    Kind.REQUEUED: logging.INFO,
    Kind.DISCARDED: logging.INFO,
    Kind.REPROCESSED: logging.INFO,
    Kind.VIEWED: logging.INFO,
    Kind.DENIED: logging.WARNING,
    Kind.ALERT: logging.WARNING,
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


def log_events(events: list[Event]) -> None:
    """After commit: the log line of each event."""
    debug = log.isEnabledFor(logging.DEBUG)
    for e in events:
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
