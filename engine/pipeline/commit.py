"""Commit and reply, a channel step: a prepared message made durable, then answered.

A message is acknowledged only after its durable commit (the sealed message, its output,
its queue entries and the audit events so far, in one unit of work). When the store
cannot take it, the sender gets the codec's error answer so it sends again, and nothing
is reported as taken on. After the commit the destination workers are woken for an
accepted message, and the receipt's `on_replied` records "acknowledged" once the source
has written the reply.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from engine.events import Event, Kind
from engine.formats.base import Codec
from engine.log_limit import RateLimitedLog
from engine.message import (
    MessageStatus,
    Outcome,
    Parsed,
    Problem,
    ProblemKind,
    Receipt,
    Verdict,
)
from engine.store.claims import Resend
from engine.store.schema import messages
from engine.store.writer import UnitOfWork, Writer

log = logging.getLogger("conduit.channel")
# While the store is away every message refused would write a line: one per channel in
# this many seconds, with the count of those held back.
_REFUSED_EVERY = 10.0

VERDICTS = {MessageStatus.ACCEPTED: Verdict.ACCEPTED, MessageStatus.DUPLICATE:
            Verdict.ACCEPTED, MessageStatus.FILTERED: Verdict.ACCEPTED,
            MessageStatus.ERROR: Verdict.ERROR, MessageStatus.REJECTED: Verdict.REJECTED}


@dataclasses.dataclass(slots=True)
class Taking:
    """A message parsed, checked and routed into its unit of work, not yet committed."""

    raw: bytes
    parsed: Parsed | None
    uow: UnitOfWork
    hop: dict[str, Any]
    status: MessageStatus
    problems: tuple[Problem, ...]  # for the reply
    warnings: tuple[Problem, ...]
    trace: Any


class Committer:
    """`Writer` is the concrete group-committing writer (engine.store.writer): there is
    no protocol for it yet."""

    def __init__(self, channel: str, codec: Codec, writer: Writer,
                 forget: Callable[[Parsed | None, str], None],
                 notify: Callable[[MessageStatus], None]) -> None:
        self.channel = channel
        self._codec = codec
        self._writer = writer
        self._forget = forget  # the duplicate step's: the store answers from now on
        self._notify = notify
        self._refusals = RateLimitedLog(log, every=_REFUSED_EVERY)

    async def commit(self, taking: Taking, stored: Awaitable[Any] | None = None) -> Receipt:
        """Make a prepared message durable (or wait for `stored`, the commit of a unit
        holding it), then answer."""
        raw, parsed, hop, status, trace = (taking.raw, taking.parsed, taking.hop,
                                           taking.status, taking.trace)
        try:
            with trace.step("commit"):
                result = await (stored if stored is not None
                                else self._writer.commit(taking.uow))
                if isinstance(result, Resend):  # another process stored a copy first
                    taking = _as_duplicate(taking, result.original)
                    status = taking.status
                    await self._writer.commit(taking.uow)
        except Exception as exc:
            self._refusals.log(logging.ERROR, "store", "channel %s: could not store an "
                               "incoming message (%s); answered with an error so the "
                               "sender resends", self.channel, exc)
            self._forget(parsed, hop["message_id"])
            trace.end(MessageStatus.ERROR, "the store could not take the message")
            busy = Outcome(Verdict.ERROR, (self._codec.problem(
                ProblemKind.NOT_STORED, "the engine could not store the message; send it again"),))
            return Receipt("", MessageStatus.ERROR, self._codec.replies(raw, parsed, busy),
                           problems=busy.problems)
        self._forget(parsed, hop["message_id"])
        self._notify(status)
        outcome = Outcome(VERDICTS[status], taking.problems + taking.warnings)
        trace.end(status)
        return Receipt(hop["message_id"], status, self._codec.replies(raw, parsed, outcome),
                       on_replied=lambda: self._acknowledged(hop, outcome),
                       problems=outcome.problems)

    async def commit_part(self, taking: Taking, stored: Awaitable[Any] | None = None
                          ) -> tuple[Receipt, bytes]:
        """`commit` an envelope's part, with the part's own reply for the envelope's one
        reply (built only here: a message on its own is answered by its receipt)."""
        receipt = await self.commit(taking, stored)
        outcome = Outcome(VERDICTS[receipt.status], receipt.problems)
        return receipt, self._codec.reply(taking.raw, taking.parsed, outcome)

    def _acknowledged(self, hop: dict[str, Any], outcome: Outcome) -> None:
        uow = UnitOfWork()
        detail = {"verdict": outcome.verdict.value}
        if outcome.verdict is not Verdict.ACCEPTED and outcome.problems:
            detail["code"] = outcome.problems[0].code  # the standard's (SCRIPT Error 900)
        uow.record(Event(kind=Kind.ACKNOWLEDGED, detail=detail, **hop))
        self._writer.submit(uow)


def _as_duplicate(taking: Taking, original: str) -> Taking:
    """A copy found at its commit to be a resend of `original` (engine.store.claims),
    stored as the duplicate step would have stored it: the message, how it was received
    and read, and nothing routed."""
    uow = UnitOfWork()
    [row] = taking.uow.inserts[messages]
    uow.insert(messages, {**row, "status": MessageStatus.DUPLICATE, "error": None})
    for event in taking.uow.events:
        if event.kind in (Kind.RECEIVED, Kind.PARSED):
            uow.record(event)
    uow.record(Event(kind=Kind.DUPLICATE, detail={"original": original}, **taking.hop))
    return dataclasses.replace(taking, uow=uow, status=MessageStatus.DUPLICATE, problems=())
