"""What travels between the parts of the engine.

A source hands the channel raw bytes and `SourceMeta`; a codec turns the bytes into
`Parsed` (routing fields plus its own parsed body); the channel answers the source with
a `Receipt` that carries the protocol's acknowledgement; a destination answers each
`Outbound` with a `Delivery`: `Sent`, `Retry` or `Fail`. Destinations never retry by
themselves; the queue's RetryPolicy reads the Delivery and decides.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Callable
from typing import Any, Literal

import msgspec


class SourceMeta(msgspec.Struct, frozen=True):
    """Where a message came from; never holds content."""

    transport: str
    peer: str = ""
    size: int = 0
    truncated: bool = False  # the frame was over the size limit and only a prefix is kept
    tls_subject: str = ""  # the client: certificate subject under mutual TLS, or token's
    changes: tuple[str, ...] = ()  # what the source set before storing (FHIRPaths)


class Parsed(msgspec.Struct):
    """A codec's reading of a message: routing fields plus the standard's own body.

    `patient_id` is PHI: it lives only in memory and is turned into a keyed pseudonym
    before anything is written.
    """

    standard: str
    message_type: str = ""
    control_id: str = ""
    version: str = ""
    sender: str = ""
    receiver: str = ""
    patient_id: str | None = None
    body: Any = None
    # the control id of the message this one answers (SCRIPT RelatesToMessageID): the
    # store links the two (engine.store.correlation); "" when it answers nothing
    relates_to: str = ""


class Verdict(enum.Enum):
    """The engine's answer to a sender, independent of the standard's codes."""

    ACCEPTED = "accepted"  # stored and taken on (HL7 AA / CA)
    ERROR = "error"  # stored, but could not be processed (HL7 AE / CE)
    REJECTED = "rejected"  # refused as malformed or unsupported (HL7 AR / CR)


class ProblemKind(enum.Enum):
    """What went wrong, when the engine itself (not a standard's parser) finds it: the
    channel names the kind, and the codec says it in its standard's own codes."""

    TRUNCATED = "truncated"  # over the channel's size limit; only a prefix was kept
    UNREADABLE = "unreadable"  # the codec failed on the message (a bug, not bad input)
    FILTER_FAILED = "filter failed"  # a filter rule could not be evaluated on it
    MAPPING_FAILED = "mapping failed"
    NOT_REPROCESSABLE = "not reprocessable"  # kept as a whole that the channel splits
    NOT_STORED = "not stored"  # the store could not take it; the sender should resend


class Problem(msgspec.Struct, frozen=True):
    """One thing wrong with a message, for the acknowledgement's error segment."""

    text: str
    code: str = "207"  # HL7 table 0357; other codecs translate
    segment: str | None = None
    field: int | None = None
    severity: str = "E"
    # Where in the message, in the codec's own terms, for answers that say it (an X12
    # 999's IK3/IK4: segment id, position, loop, IK304, element, IK403); opaque to the
    # engine.
    where: tuple[str, ...] = ()


class Outcome(msgspec.Struct, frozen=True):
    verdict: Verdict
    problems: tuple[Problem, ...] = ()


class MessageStatus(enum.StrEnum):
    """Where a stored message ended up at ingest."""

    ACCEPTED = "accepted"  # queued for its destinations
    FILTERED = "filtered"  # dropped by a channel filter, on purpose and on record
    ERROR = "error"  # parsed but the mapping failed; waits for an analyst
    REJECTED = "rejected"  # could not be parsed; raw bytes kept for inspection
    DUPLICATE = "duplicate"  # a control id already taken on from this sender; not redone


class PartReceipt(msgspec.Struct, frozen=True):
    """What became of one part of a split message (an entry of a FHIR Bundle split by the
    channel), so a source can answer per part (a transaction-response entry each)."""

    index: int  # the part's position in the whole (Bundle.entry index)
    message_id: str  # "" when the part could not be stored
    status: MessageStatus
    problems: tuple[Problem, ...] = ()


class Response(msgspec.Struct, frozen=True):
    """What a request/response channel (`respond:`) answers its caller in place of an
    acknowledgement: the destination's answer, mapped (`outcome` "answered"), or why there
    is none: "timeout" (no answer in time; the message stays queued and is still
    delivered), "refused" (the receiver refused it for good) or "bad-answer" (it gave no
    answer, or one that could not be read or mapped). `reason` is PHI-free; the source
    says it in its own terms."""

    outcome: Literal["answered", "timeout", "refused", "bad-answer"]
    body: bytes = b""
    content_type: str = ""
    reason: str = ""
    code: str = ""  # the receiver's code when it refused (a CORE ErrorCode, an HTTP status)


class Receipt(msgspec.Struct):
    """The channel's answer to a source: the replies to write back (one frame each: a
    commit and an application acknowledgement in HL7's enhanced mode; none when the sender
    asked for none), and a hook to call once they are written, so the "acknowledged" hop
    lands in the audit trail."""

    message_id: str
    status: MessageStatus
    replies: tuple[bytes, ...] = ()
    on_replied: Callable[[], None] | None = None
    problems: tuple[Problem, ...] = ()  # for transports that answer with codes (HTTP 4xx)
    parts: tuple[PartReceipt, ...] = ()  # per part, when the channel split the message
    response: Response | None = None  # for a request/response channel: its answer

    def replied(self) -> None:
        if self.on_replied is not None:
            self.on_replied()


class Outbound(msgspec.Struct):
    """One queued delivery as a destination sees it."""

    entry_id: int
    message_id: str
    channel: str
    destination: str
    content: bytes
    content_type: str
    control_id: str = ""
    attempts: int = 0


class Answer(msgspec.Struct, frozen=True):
    """A receiver's own answer: to a delivery that did not go through (a FHIR
    OperationOutcome, a transaction-response, an error page), or one that did, when the
    answer is the point (a payer's 271). It may quote the patient back at us, so it is
    PHI: kept sealed for the analyst, never logged or audited (the Delivery's `reason` is
    the PHI-free summary)."""

    body: bytes
    content_type: str = ""


class Sent(msgspec.Struct, frozen=True):
    """Delivered; `code` is the receiver's answer (HTTP status, HL7 MSA-1). `answer` is
    what it answered, when that answer is itself a message the channel may want (a
    payer's 271 to our 270): kept sealed beside the message, and handed to a channel
    that waits on it (engine.pipeline.respond)."""

    code: str = ""
    answer: Answer | None = None


class Retry(msgspec.Struct, frozen=True):
    """Not delivered, worth trying again; `after` is the receiver's own hint in seconds
    (HTTP Retry-After), which the retry policy honours within its max delay. `answer`
    is kept if this turns out to be the last attempt."""

    reason: str
    code: str = ""
    after: float | None = None
    answer: Answer | None = None


class Fail(msgspec.Struct, frozen=True):
    """Not delivered and never will be as it is: goes to the dead-letter queue at once,
    with the receiver's `answer` (sealed) when there is one."""

    reason: str
    code: str = ""
    answer: Answer | None = None


Delivery = Sent | Retry | Fail


def new_message_id() -> str:
    """26 characters: 48 bits of milliseconds then 80 random bits, in base32hex, whose
    alphabet (0-9, A-V) sorts like the numbers it encodes, so ids sort by creation time.

    Message ids appear in logs and audit events in place of content, so they must carry
    nothing about the patient; they are time plus randomness only.
    """
    raw = (time.time_ns() // 1_000_000).to_bytes(6, "big") + os.urandom(10)
    return _base32hex(raw)


def message_id_floor(at: float) -> str:
    """The smallest message id made at or after time `at`: time ranges become id ranges,
    so searches by time use the same indexes as every other search."""
    raw = int(at * 1000).to_bytes(6, "big") + bytes(10)
    return _base32hex(raw)


_PAIRS = [a + b for a in "0123456789ABCDEFGHIJKLMNOPQRSTUV"
          for b in "0123456789ABCDEFGHIJKLMNOPQRSTUV"]


def _base32hex(raw: bytes) -> str:
    """16 bytes as the first 26 characters of their base32hex, 10 bits at a time (the
    standard library's is a loop in Python, twice the time: one id per message and more)."""
    n = int.from_bytes(raw, "big") << 2  # 128 bits in 26 characters of 5: 2 bits to spare
    return "".join([_PAIRS[(n >> shift) & 1023] for shift in range(120, -1, -10)])
