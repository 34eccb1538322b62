"""Request/response, a channel step: the caller's answer waits for a destination's.

A channel with `respond:` still takes every message on the usual way (parsed, routed,
committed with its queue entries, delivered by the destination's worker with its
retries). What changes is the answer to the caller: instead of the acknowledgement made
at commit, the source gets a `Response` made from the named destination's answer to
this very message (a payer's 271 to the 270 sent), mapped with the configured mapping.

How the two meet: the channel calls `answer` with the message's id before its commit,
so the waiter exists before any worker can deliver; the destination's worker calls
`delivered` when that destination confirms (or dead-letters) an entry, handing over the
Delivery and the future of the commit that stores the answer; the caller is answered only
once that commit is done, so what it is told is on record. If no answer comes within the
timeout the caller is told so, and nothing else changes: the entry stays queued, is
delivered later, and its answer is kept with the message like any other.

Limits: a message taken apart (an envelope of several) is answered with its usual
acknowledgement; a waiter lives in this process, so the destination's queue must be
delivered here (on a shared PostgreSQL store, another engine process holding the
destination's leases would leave the caller to time out, the message still delivered).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from engine.config.respond import RespondConfig
from engine.errors import ConduitError, MappingError
from engine.events import Event, Kind
from engine.mapping_base import Mapping, Skip
from engine.message import (
    Delivery,
    MessageStatus,
    Parsed,
    Receipt,
    Response,
    Sent,
)
from engine.security.crypto import content_hash
from engine.store.writer import UnitOfWork, Writer

log = logging.getLogger("conduit.channel")

Read = Callable[[bytes], Parsed]  # the codec of the answer's standard: its `parse`
_Result = tuple[Delivery, str, "asyncio.Future[Any] | None"]


class Responder:
    """One per channel with `respond:`; `delivered` is hooked to that destination's
    worker (engine.pipeline.delivery.DestinationWorker.on_result)."""

    def __init__(self, channel: str, config: RespondConfig, *, mapping: Mapping | None,
                 read: Read | None, writer: Writer) -> None:
        if mapping is not None and read is None:
            raise ValueError("a response mapping needs the codec that reads the answer")
        self.channel = channel
        self.destination = config.destination
        self.timeout = float(config.timeout)
        self.mapping = mapping
        self._read = read
        self._writer = writer
        self._waiting: dict[str, asyncio.Future[_Result]] = {}

    @property
    def waiting(self) -> int:
        """Callers waiting now (for the status page and tests)."""
        return len(self._waiting)

    def delivered(self, message_id: str, delivery: Delivery, reason: str,
                  stored: asyncio.Future[Any] | None) -> None:
        """The destination is done with one entry: confirmed (`Sent`, maybe with the
        receiver's answer) or dead-lettered (`reason` says why); `stored` is the commit
        recording it. Nobody waiting (no respond caller, or one that gave up): nothing."""
        waiter = self._waiting.get(message_id)
        if waiter is not None and not waiter.done():
            waiter.set_result((delivery, reason, stored))

    async def answer(self, message_id: str, commit: Awaitable[Receipt]) -> Receipt:
        """Commit the message (`commit`, the channel's commit step), then wait for the
        destination's answer to it; the receipt carries the caller's Response. A message
        not taken on (rejected, filtered, a duplicate, not stored) keeps its usual
        receipt: nothing was sent, so nothing will answer."""
        deadline = time.monotonic() + self.timeout
        waiter: asyncio.Future[_Result] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = waiter
        try:
            receipt = await commit
            if receipt.status is not MessageStatus.ACCEPTED or not receipt.message_id:
                return receipt
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    delivery, reason, stored = await waiter
                    if stored is not None:
                        await stored  # the answer is on record before anyone reads it
            except TimeoutError:
                log.warning("channel %s: no answer from %s for message %s within %.1fs; "
                            "the caller is told so and the message stays queued",
                            self.channel, self.destination, message_id, self.timeout)
                return self._with(receipt, Response(
                    "timeout", reason=f"no answer from {self.destination} within "
                    f"{self.timeout:g}s; message {message_id} stays queued and will still "
                    "be delivered"))
            except ConduitError:  # the commit holding the answer failed
                return self._with(receipt, Response(
                    "timeout", reason=f"the answer from {self.destination} could not be "
                    f"stored; message {message_id} stays queued and will be sent again"))
            return self._with(receipt, self._response(message_id, delivery, reason))
        finally:
            self._waiting.pop(message_id, None)

    def _response(self, message_id: str, delivery: Delivery, reason: str) -> Response:
        """The caller's Response from what the destination did with the message."""
        if not isinstance(delivery, Sent):
            return Response("refused", reason=f"{self.destination} refused message "
                            f"{message_id}: {reason}", code=delivery.code)
        answer = delivery.answer
        if answer is None or not answer.body:
            return Response("bad-answer", reason=f"{self.destination} took message "
                            f"{message_id} but gave no answer to return", code=delivery.code)
        if self.mapping is None:
            return Response("answered", answer.body, answer.content_type, code=delivery.code)
        assert self._read is not None
        try:
            result = self.mapping.apply(self._read(answer.body).body)
        except (MappingError, ConduitError) as exc:
            # ParseError and MappingError texts are ours and name places, never values
            return Response("bad-answer", reason=f"the answer of {self.destination} to "
                            f"message {message_id} could not be read or mapped with "
                            f"{self.mapping.ref}: {exc}", code=delivery.code)
        if isinstance(result, Skip):
            return Response("bad-answer", reason=f"{self.mapping.ref} skipped the answer "
                            f"of {self.destination}: {result.reason}", code=delivery.code)
        return Response("answered", result, self.mapping.emits, code=delivery.code)

    def _with(self, receipt: Receipt, response: Response) -> Receipt:
        """The receipt with the caller's Response; once written back, the "responded"
        hop is audited beside the usual "acknowledged"."""
        hop = {"channel": self.channel, "message_id": receipt.message_id,
               "destination": self.destination}
        detail: dict[str, Any] = {"outcome": response.outcome}
        if response.code:
            detail["code"] = response.code[:40]
        if self.mapping is not None and response.outcome == "answered":
            detail["mapping"] = self.mapping.ref

        def replied() -> None:
            receipt.replied()
            uow = UnitOfWork()
            uow.record(Event(kind=Kind.RESPONDED, detail=detail, content_hash=content_hash(
                response.body) if response.body else None, **hop))
            with contextlib.suppress(Exception):  # the store closing: the answer went out
                self._writer.submit(uow)

        return msgspec.structs.replace(receipt, response=response, on_replied=replied)
