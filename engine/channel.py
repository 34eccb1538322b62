"""Channel: the pipeline of one channel, wiring source, codec, filter, mapping, store,
queues and destination workers, and nothing else.

For each message the source hands over: parse, filter and map in memory; then one
durable commit of the sealed raw message, its output, a queue entry per destination and
the audit events of every hop so far; only then the acknowledgement. A message that
fails to parse or map is still stored (with its status and a PHI-free reason) so an
analyst can look at it, and the sender gets the standard's rejection or error.

An envelope the codec splits (a batch) or a Bundle the channel splits (`split:`,
engine.pipeline.splitting) is taken as its messages, each on its own path as above, answered with
one reply. Codes and texts of the answers are the codec's: the channel names what went
wrong by a ProblemKind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import time
from collections.abc import Awaitable
from typing import Any

import msgspec

from engine import tracing
from engine.config.schema import ChannelConfig
from engine.connectors.base import Source
from engine.errors import MappingError, ParseError
from engine.events import Event, Kind
from engine.formats.base import Codec, Envelope
from engine.mapping import Mapping, Skip
from engine.message import (
    MessageStatus,
    Outcome,
    Parsed,
    PartReceipt,
    Problem,
    ProblemKind,
    Receipt,
    SourceMeta,
    Verdict,
    new_message_id,
)
from engine.pipeline.delivery import DestinationWorker
from engine.pipeline.duplicates import DuplicateIndex
from engine.pipeline.filters import Filter, FilterError
from engine.pipeline.shadow import Shadow
from engine.pipeline.splitting import Split, Splitter
from engine.queue.base import Queue
from engine.security.crypto import Vault, content_hash
from engine.store.messages import MessageStore
from engine.store.writer import UnitOfWork, Writer

log = logging.getLogger("conduit.channel")


class State(enum.StrEnum):
    STOPPED = "stopped"  # neither accepting nor delivering
    STARTED = "started"
    PAUSED = "paused"  # not accepting; queued messages still delivered
    ERROR = "error"  # the source could not start (port taken, ...)


_VERDICTS = {
    MessageStatus.ACCEPTED: Verdict.ACCEPTED,
    MessageStatus.DUPLICATE: Verdict.ACCEPTED,
    MessageStatus.FILTERED: Verdict.ACCEPTED,
    MessageStatus.ERROR: Verdict.ERROR,
    MessageStatus.REJECTED: Verdict.REJECTED,
}


# Worst last: the status a batch is reported with.
_SEVERITY = [MessageStatus.ACCEPTED, MessageStatus.DUPLICATE, MessageStatus.FILTERED,
             MessageStatus.ERROR, MessageStatus.REJECTED]

# Statuses after which a resent copy of the message is a duplicate (an errored message
# may be sent again on purpose, once the sender or the mapping is fixed).
_TAKEN_ON = (MessageStatus.ACCEPTED, MessageStatus.FILTERED)

# A transaction is refused whole when one of its parts ends so.
_FAILED = (MessageStatus.ERROR, MessageStatus.REJECTED)

# Message size from which slow filter rules (path expressions) run off the event loop.
_THREAD_FROM = 16 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class _Earlier:
    """A message taken on earlier under the same sender and control id."""

    message_id: str
    resend: bool  # the same content: acknowledged again, not processed again


@dataclasses.dataclass(slots=True)
class _Taking:
    """A message parsed, checked and routed into its unit of work, not yet committed."""

    raw: bytes
    parsed: Parsed | None
    uow: UnitOfWork
    hop: dict[str, Any]
    status: MessageStatus
    problems: tuple[Problem, ...]  # for the reply
    warnings: tuple[Problem, ...]
    trace: Any


class Channel:
    def __init__(
        self,
        config: ChannelConfig,
        *,
        codec: Codec,
        mapping: Mapping | None,
        source: Source,
        workers: list[DestinationWorker],
        store: MessageStore,
        queue: Queue,
        writer: Writer,
        vault: Vault,
        shadow: Shadow | None = None,
    ) -> None:
        assert config.name is not None
        self.name = config.name
        self.config = config
        self.codec = codec
        self.mapping = mapping
        self.source = source
        self.workers = workers
        # destinations that get the message as received rather than the mapping's output
        self._sends_received = {d.name for d in config.destinations if d.send == "received"}
        self.splitter = Splitter(config.split) if config.split is not None else None
        self.filter = Filter(config.filter, first=[self.splitter] if self.splitter else ())
        self.shadow = shadow
        window = config.duplicate_window
        self.duplicates = DuplicateIndex(window) if window > 0 else None
        # (sender, control id) -> (message id, content hash) of the message taken on
        # under that key and not yet committed
        self._pending_keys: dict[tuple[str, str], tuple[str, str]] = {}
        self._store = store
        self._queue = queue
        self._writer = writer
        self._vault = vault
        self.state = State.STOPPED
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    async def start(self) -> None:
        """Deliver and accept (from stopped); a started channel stays as it is."""
        if self.duplicates is not None and not self.duplicates.entries:
            since = time.time() - self.duplicates.window
            for sender, control_id, _, at in await asyncio.to_thread(
                    self._store.recent_control_ids, self.name, since):
                self.duplicates.remember(sender, control_id, at)
        if self.state in (State.STOPPED, State.ERROR):
            for worker in self.workers:
                worker.start()
            self.state = State.PAUSED
        await self.resume()

    async def resume(self) -> None:
        """Accept again (from paused)."""
        if self.state is not State.PAUSED:
            return
        try:
            await self.source.start(self.deliver)
        except OSError as exc:
            self.state = State.ERROR
            self.last_error = f"source could not start: {exc.strerror or exc}"
            self.last_error_at = time.time()
            log.error("channel %s: %s", self.name, self.last_error)
            await asyncio.gather(*(w.stop() for w in self.workers))
            return
        self.state = State.STARTED

    async def pause(self) -> None:
        """Stop accepting (senders see the port closed and queue on their side), answer
        what was already received, and keep delivering what is queued."""
        if self.state is State.STARTED:
            await self.source.stop()
            self.state = State.PAUSED

    async def stop(self) -> None:
        """Stop accepting, answer what was already received, finish sends in progress."""
        if self.state is State.STARTED:
            await self.source.stop()
        if self.state in (State.STARTED, State.PAUSED):
            await asyncio.gather(*(w.stop() for w in self.workers))
        self.state = State.STOPPED

    async def deliver(self, raw: bytes, meta: SourceMeta) -> Receipt:
        """Take a message (or a batch of them) on: returns once it is durable, with the
        replies to send."""
        if self.splitter is not None and not meta.truncated:
            split = self.splitter.split(raw)
            if split is not None:
                return await self._take_split(raw, meta, split)
        batch = self._split_envelope(raw, meta)
        if batch is None:
            receipt, _ = await self._take(raw, meta)
            return receipt
        return await self._take_batch(raw, meta, batch)

    def _split_envelope(self, raw: bytes, meta: SourceMeta) -> Envelope | None:
        if meta.truncated:
            return None
        try:
            return self.codec.split(raw)
        except ParseError:
            return None  # read as one message: the codec then says what is wrong

    async def _take_batch(self, raw: bytes, meta: SourceMeta, batch: Envelope) -> Receipt:
        """Every message of a batch, committed together in order, answered with one batch
        acknowledgement. A batch whose envelope does not add up (its trailer counts
        another number of messages) is refused whole, and kept as one rejected message."""
        if batch.problems:
            receipt, _ = await self._take(raw, meta, refuse=tuple(batch.problems))
            replies = [self.codec.reply(m, None, Outcome(Verdict.REJECTED,
                                                         tuple(batch.problems)))
                       for m in batch.messages]
            return Receipt(receipt.message_id, MessageStatus.REJECTED,
                           (self.codec.envelope_reply(batch, replies),), receipt.on_replied)
        taken = await asyncio.gather(*(
            self._take(message, SourceMeta(meta.transport, meta.peer, len(message),
                                           tls_subject=meta.tls_subject))
            for message in batch.messages))
        replies = [reply for _, reply in taken]
        return _combine([r for r, _ in taken], self.codec.envelope_reply(batch, replies))

    async def _take_split(self, raw: bytes, meta: SourceMeta, split: Split) -> Receipt:
        """Every part of a split Bundle as a message of its own, committed each on its
        own (concurrently, as a batch's), answered with one reply and a PartReceipt per
        part. A malformed Bundle, or a transaction one of whose parts is refused or
        fails, is refused whole: kept as one rejected message, nothing of it queued."""
        assert self.splitter is not None
        if split.problems:
            receipt, _ = await self._take(raw, meta, refuse=tuple(split.problems))
            return receipt
        prepared = await asyncio.gather(*(
            self._prepare(part, _part_meta(meta, split.index(i), len(part)), (), detail,
                          control_id)
            for i, (part, detail, control_id) in enumerate(zip(
                split.messages, split.details, split.control_ids, strict=True))))
        if split.atomic and any(t.status in _FAILED for t in prepared):
            problems = tuple(_located(split.index(i), p) for i, t in enumerate(prepared)
                             if t.status in _FAILED for p in t.problems)
            for taking in prepared:
                self._drop(taking, "its transaction was refused whole")
            receipt, _ = await self._take(raw, meta, refuse=problems)
            return receipt
        # a transaction's parts become durable in one database transaction, a batch's
        # each in its own (the writer still groups them)
        stored = asyncio.ensure_future(self._writer.commit(UnitOfWork.merged(
            [t.uow for t in prepared]))) if split.atomic else None
        taken = await asyncio.gather(*(self._commit(t, stored) for t in prepared))
        receipts = [r for r, _ in taken]
        reply = self.splitter.reply(split, [reply for _, reply in taken],
                                    [r.message_id for r in receipts])
        parts = tuple(PartReceipt(split.index(i), r.message_id, r.status, r.problems)
                      for i, r in enumerate(receipts))
        located = tuple(_located(part.index, p) for part in parts for p in part.problems)
        return msgspec.structs.replace(_combine(receipts, reply), parts=parts,
                                       problems=located)

    async def _take(self, raw: bytes, meta: SourceMeta, refuse: tuple[Problem, ...] = ()
                    ) -> tuple[Receipt, bytes]:
        """One message: parse, check, route, commit. Returns the receipt and, for a batch
        acknowledgement, this message's own (original mode) reply."""
        return await self._commit(await self._prepare(raw, meta, refuse))

    async def _prepare(self, raw: bytes, meta: SourceMeta, refuse: tuple[Problem, ...],
                       received: dict[str, Any] | None = None, control_id: str = ""
                       ) -> _Taking:
        """Parse, check and route a message into a unit of work, not yet committed (so
        a transaction's parts can all be seen before any is). `received` adds to the
        "received" audit detail and `control_id` replaces the codec's (for a split part:
        where it came from, and its identity when it has no id)."""
        message_id = new_message_id()
        trace = tracing.receive(message_id, self.name, meta.transport)
        now = time.time()
        digest = content_hash(raw)
        uow = UnitOfWork()
        hop = {"channel": self.name, "message_id": message_id, "peer": meta.peer}
        with trace.step("parse"):
            parsed, problem = self._parse(raw, meta)
            if parsed is not None and control_id:
                parsed = msgspec.structs.replace(parsed, control_id=control_id)
            trace.parsed(parsed, problem)
        warnings: tuple[Problem, ...] = ()
        rejection = refuse
        if parsed is not None and not refuse and self.config.validation != "off":
            rejection, warnings = self._validate(parsed)
        if rejection:
            parsed, problem = None, rejection[0]
        patient = self._vault.pseudonym(parsed.patient_id) if parsed else None
        hop["patient"] = patient
        detail: dict[str, Any] = {"transport": meta.transport, "size": meta.size,
                                  **(received or {})}
        if meta.tls_subject:
            detail["client"] = meta.tls_subject
        if meta.changes:  # what the source itself set before storing (e.g. lastUpdated)
            detail["set"] = list(meta.changes)
        uow.record(Event(kind=Kind.RECEIVED, content_hash=digest, detail=detail, **hop))
        status, error, verdict_problems = MessageStatus.ACCEPTED, None, ()
        if parsed is None:
            assert problem is not None
            status, error = MessageStatus.REJECTED, problem.text
            verdict_problems = rejection or (problem,)
            uow.record(Event(kind=Kind.REJECTED, detail=_problem_detail(problem), **hop))
        else:
            parsed_detail = {"standard": parsed.standard, "type": parsed.message_type,
                             "control_id": parsed.control_id, "version": parsed.version}
            if warnings:
                parsed_detail["warnings"] = len(warnings)
            uow.record(Event(kind=Kind.PARSED, detail=parsed_detail, **hop))
            # filtered first: no await may come between the duplicate check and remember
            failed = await self._filtered(parsed, len(raw))
            earlier = await self._earlier(parsed, digest, now)
            if earlier is not None and earlier.resend:
                status = MessageStatus.DUPLICATE
                uow.record(Event(kind=Kind.DUPLICATE, detail={"original": earlier.message_id},
                                 **hop))
            else:
                if earlier is not None:  # same id, other content: a new message all the same
                    uow.record(Event(kind=Kind.CONTROL_ID_REUSED,
                                     detail={"original": earlier.message_id}, **hop))
                with trace.step("map"):
                    status, error, verdict_problems = self._route(uow, parsed, hop, now,
                                                                  failed)
                    trace.routed(status, self.mapping)
                if self.duplicates is not None and status in _TAKEN_ON:
                    self.duplicates.remember(parsed.sender, parsed.control_id, now)
                    self._pending_keys[(parsed.sender, parsed.control_id)] = (message_id,
                                                                              digest)
        row = {
            "id": message_id, "channel": self.name, "received_at": now, "status": status,
            "standard": parsed.standard if parsed else self.config.format,
            "message_type": parsed.message_type[:40] if parsed else "",
            "control_id": parsed.control_id[:64] if parsed else "",
            "sender": parsed.sender[:200] if parsed else "", "peer": meta.peer,
            "patient": patient, "content_hash": digest, "error": error,
        }
        self._store.add_message(uow, row, raw)
        return _Taking(raw, parsed, uow, hop, status, tuple(verdict_problems), warnings,
                       trace)

    def _drop(self, taking: _Taking, why: str) -> None:
        """Forget a prepared message that will not be committed."""
        self._forget_pending(taking.parsed, taking.hop["message_id"])
        taking.trace.end(MessageStatus.REJECTED, why)

    async def _commit(self, taking: _Taking, stored: Awaitable[Any] | None = None
                      ) -> tuple[Receipt, bytes]:
        """Make a prepared message durable (or wait for `stored`, the commit of a unit
        holding it), then answer: the receipt, and this message's own reply for a batch
        acknowledgement."""
        raw, parsed, uow, hop, status, trace = (taking.raw, taking.parsed, taking.uow,
                                                taking.hop, taking.status, taking.trace)
        try:
            with trace.step("commit"):
                await (stored if stored is not None else self._writer.commit(uow))
        except Exception as exc:
            log.error("channel %s: could not store an incoming message (%s); answered with "
                      "an error so the sender resends", self.name, exc)
            self._forget_pending(parsed, hop["message_id"])
            trace.end(MessageStatus.ERROR, "the store could not take the message")
            busy = Outcome(Verdict.ERROR, (self.codec.problem(
                ProblemKind.NOT_STORED, "the engine could not store the message; send it again"),))
            replies = self._replies(raw, parsed, busy)
            return (Receipt("", MessageStatus.ERROR, replies, problems=busy.problems),
                    self._batch_part(raw, parsed, busy))
        self._forget_pending(parsed, hop["message_id"])
        if status is MessageStatus.ACCEPTED:
            for worker in self.workers:
                worker.notify()
        outcome = Outcome(_VERDICTS[status], taking.problems + taking.warnings)
        trace.end(status)
        receipt = Receipt(hop["message_id"], status, self._replies(raw, parsed, outcome),
                          on_replied=lambda: self._acknowledged(hop, outcome),
                          problems=outcome.problems)
        return receipt, self._batch_part(raw, parsed, outcome)

    async def _earlier(self, parsed: Parsed, digest: str, now: float) -> _Earlier | None:
        """The message taken on within the window with this sender and control id, when
        there is one: a resend when its content is the same, else the same id reused for
        a new message (senders reset their counters on restart, daily, on failover)."""
        if self.duplicates is None or not self.duplicates.maybe_seen(
                parsed.sender, parsed.control_id, now):
            return None
        pending = self._pending_keys.get((parsed.sender, parsed.control_id))
        if pending is not None and pending[1] == digest:  # taken on a moment ago
            return _Earlier(pending[0], resend=True)
        taken = await asyncio.to_thread(
            self._store.taken_with_control_id, self.name, parsed.sender, parsed.control_id,
            now - self.duplicates.window)
        same = next((message_id for message_id, hash_ in taken if hash_ == digest), None)
        if same is not None:
            return _Earlier(same, resend=True)
        first = taken[0][0] if taken else pending[0] if pending is not None else None
        return _Earlier(first, resend=False) if first is not None else None

    def _forget_pending(self, parsed: Parsed | None, message_id: str) -> None:
        """Once a message is committed (or dropped), the store answers for it; a later
        message under the same key may own the entry by now, and keeps it."""
        if parsed is None:
            return
        key = (parsed.sender, parsed.control_id)
        pending = self._pending_keys.get(key)
        if pending is not None and pending[0] == message_id:
            del self._pending_keys[key]

    def _replies(self, raw: bytes, parsed: Parsed | None, outcome: Outcome
                 ) -> tuple[bytes, ...]:
        """What the sender asked for (one answer, or a commit and an application answer),
        all known by now since the message was mapped and queued before its commit."""
        return self.codec.replies(raw, parsed, outcome)

    def _batch_part(self, raw: bytes, parsed: Parsed | None, outcome: Outcome) -> bytes:
        """This message's acknowledgement inside a batch acknowledgement."""
        return self.codec.reply(raw, parsed, outcome)

    def _validate(self, parsed: Parsed) -> tuple[tuple[Problem, ...], tuple[Problem, ...]]:
        """Structure validation as the channel asks: (problems that refuse the message,
        warnings for an accepted one). Lenient accepts and reports every problem as a
        warning; strict refuses on any error, naming segment, field and rule."""
        problems = tuple(self.codec.validate(parsed, self.config.validation))
        if any(p.severity in ("E", "F") for p in problems):
            errors = tuple(p for p in problems if p.severity in ("E", "F"))
            return errors + tuple(p for p in problems if p not in errors), ()
        return (), problems

    def _parse(self, raw: bytes, meta: SourceMeta) -> tuple[Parsed | None, Problem | None]:
        if meta.truncated:
            return None, self.codec.problem(
                ProblemKind.TRUNCATED, f"message of {meta.size} bytes is over this "
                "channel's limit; only its first bytes were kept")
        try:
            return self.codec.parse(raw), None
        except ParseError as exc:
            return None, Problem(exc.message, exc.code, exc.segment, exc.field)
        except Exception as exc:  # a codec bug is a rejection, never a crash
            log.exception("channel %s: codec %s failed on a message", self.name,
                          self.codec.name)
            return None, self.codec.problem(ProblemKind.UNREADABLE,
                                            f"unreadable message ({type(exc).__name__})")

    async def _filtered(self, parsed: Parsed, size: int) -> str | FilterError | None:
        """The first filter rule the message fails, or the error of one that cannot be
        evaluated on it. Slow rules (path expressions) on a message of `size` bytes over
        _THREAD_FROM run in a worker thread: their cost grows with the message (about a
        millisecond per kilobyte in a `where`), and a big one must not hold up every other
        channel;
        below it the hop would cost more than it saves."""
        def first_failed() -> str | FilterError | None:
            try:
                return self.filter.first_failed(
                    lambda path: self.codec.field(parsed, path), parsed.body)
            except FilterError as exc:
                return exc
        if self.filter.slow and size > _THREAD_FROM:
            return await asyncio.to_thread(first_failed)
        return first_failed()

    def _route(self, uow: UnitOfWork, parsed: Parsed, hop: dict, now: float,
               failed: str | FilterError | None, mapping: Mapping | None = None,
               ) -> tuple[MessageStatus, str | None, tuple[Problem, ...]]:
        """Record the filter's verdict (`failed`, from `_filtered`), map (with the
        channel's mapping unless another is given) and queue a parsed message; returns
        its status, the PHI-free reason when it is not accepted, and the problems for the
        reply."""
        mapping = mapping or self.mapping
        if isinstance(failed, FilterError):
            uow.record(Event(kind=Kind.ERRORED, detail={"filter": str(failed)}, **hop))
            return MessageStatus.ERROR, f"filter: {failed}", (
                self.codec.problem(ProblemKind.FILTER_FAILED, str(failed)),)
        if failed is not None:
            uow.record(Event(kind=Kind.FILTERED, detail={"rule": failed}, **hop))
            return MessageStatus.FILTERED, f"filtered: {failed}", ()
        output_id = None
        if mapping is not None:
            try:
                result = mapping.apply(parsed.body)
            except MappingError as exc:
                self._shadow(hop["message_id"], parsed, mapping, exc)
                reason = f"mapping {mapping.ref} failed: {exc}"
                uow.record(Event(kind=Kind.ERRORED, detail={
                    "mapping": mapping.ref, "reason": str(exc),
                    **({"field": exc.field} if exc.field else {})}, **hop))
                return MessageStatus.ERROR, reason, (
                    self.codec.problem(ProblemKind.MAPPING_FAILED, reason),)
            self._shadow(hop["message_id"], parsed, mapping, result)
            if isinstance(result, Skip):
                uow.record(Event(kind=Kind.FILTERED, detail={
                    "mapping": mapping.ref, "skipped": result.reason}, **hop))
                return MessageStatus.FILTERED, f"skipped by {mapping.ref}: {result.reason}", ()
            output_id = self._store.add_output(uow, hop["message_id"], mapping.ref,
                                               mapping.emits, result)
            uow.record(Event(kind=Kind.MAPPED, content_hash=content_hash(result), detail={
                "mapping": mapping.ref, "output": output_id}, **hop))
        for worker in self.workers:
            sent = None if worker.name in self._sends_received else output_id
            self._queue.put(uow, worker.key, hop["message_id"], sent, now)
            uow.record(Event(kind=Kind.QUEUED, destination=worker.name, **hop))
        return MessageStatus.ACCEPTED, None, ()

    def _shadow(self, message_id: str, parsed: Parsed, mapping: Mapping,
                live: bytes | Skip | MappingError) -> None:
        """Compare the live outcome with the shadow candidate's (live traffic only)."""
        if self.shadow is None or mapping is not self.mapping:
            return
        try:
            self.shadow.compare(message_id, parsed.body, live)
        except Exception:  # the candidate is on trial; it must never hurt the live path
            log.exception("channel %s: shadow mapping %s failed", self.name,
                          self.shadow.candidate.ref)

    async def reprocess(self, message_id: str, raw: bytes, mapping: Mapping | None,
                        actor: str) -> MessageStatus:
        """Run a stored message through the channel again, from its raw bytes, with the
        channel's current mapping or the one given; new output, new queue entries."""
        trace = tracing.reprocess(message_id, self.name)
        uow = UnitOfWork()
        now = time.time()
        with trace.step("parse"):
            parsed, problem = self._parse(raw, SourceMeta("reprocess", size=len(raw)))
            if parsed is not None and self._splits(raw):
                # a transaction refused whole, kept as the Bundle: mapped as one message it
                # would send its first Patient only
                parsed, problem = None, self.codec.problem(
                    ProblemKind.NOT_REPROCESSABLE, "a Bundle this channel splits cannot be "
                    "reprocessed as one message; have the sender send it again")
            trace.parsed(parsed, problem)
        patient = self._vault.pseudonym(parsed.patient_id) if parsed else None
        hop = {"channel": self.name, "message_id": message_id, "patient": patient,
               "peer": None}
        mapping = mapping or self.mapping
        uow.record(Event(kind=Kind.REPROCESSED, actor=actor, detail={
            "mapping": mapping.ref if mapping else None}, **hop))
        if parsed is None:
            assert problem is not None
            status, error = MessageStatus.REJECTED, problem.text
            uow.record(Event(kind=Kind.REJECTED, detail=_problem_detail(problem), **hop))
        else:
            failed = await self._filtered(parsed, len(raw))
            with trace.step("map"):
                status, error, _ = self._route(uow, parsed, hop, now, failed, mapping)
                trace.routed(status, mapping)
        self._store.set_status(uow, message_id, status, error)
        try:
            with trace.step("commit"):
                await self._writer.commit(uow)
        finally:
            trace.end(status)
        if status is MessageStatus.ACCEPTED:
            for worker in self.workers:
                worker.notify()
        return status

    def _splits(self, raw: bytes) -> bool:
        """Whether `raw` is a Bundle this channel would split (under `*` a stored part
        may itself be a Bundle, taken whole, so there nothing is refused)."""
        return (self.splitter is not None and self.splitter.resource != "*"
                and self.splitter.split(raw) is not None)

    def _acknowledged(self, hop: dict, outcome: Outcome) -> None:
        uow = UnitOfWork()
        uow.record(Event(kind=Kind.ACKNOWLEDGED, detail={"verdict": outcome.verdict.value},
                         **hop))
        self._writer.submit(uow)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "source": self.source.describe(),
            "mapping": self.mapping.ref if self.mapping else None,
            "shadow": self.shadow.summary() if self.shadow else None,
            "destinations": [w.name for w in self.workers],
            "last_error": self.last_error,
        }


def _combine(receipts: list[Receipt], reply: bytes) -> Receipt:
    """One receipt for the messages of a batch or split Bundle: the worst status, the
    first stored message's id, one reply; acknowledging it acknowledges each."""

    def replied() -> None:
        for receipt in receipts:
            receipt.replied()

    worst = max((r.status for r in receipts), key=_SEVERITY.index,
                default=MessageStatus.ACCEPTED)
    first = next((r.message_id for r in receipts if r.message_id), "")
    return Receipt(first, worst, (reply,), replied)


def _located(index: int, problem: Problem) -> Problem:
    """A part's problem as one of the whole Bundle's: located at its entry."""
    where = f"Bundle.entry[{index}].resource"
    segment = problem.segment
    if segment and segment[:1].isupper() and "." in segment:
        where += segment[segment.index("."):]  # Patient.identifier -> ...resource.identifier
    return msgspec.structs.replace(problem, segment=where, field=None)


def _part_meta(meta: SourceMeta, index: int, size: int) -> SourceMeta:
    """The source's facts for one part of a split Bundle: its own size, the changes the
    source made to its entry, and those to the whole body (a conversion from XML)."""
    prefix = f"Bundle.entry[{index}]."
    return msgspec.structs.replace(meta, size=size, changes=tuple(
        c for c in meta.changes if c.startswith(prefix) or not c.startswith("Bundle.")))


def _problem_detail(problem: Problem) -> dict[str, Any]:
    detail: dict[str, Any] = {"code": problem.code, "reason": problem.text}
    if problem.segment:
        detail["segment"] = problem.segment
    if problem.field is not None:
        detail["field"] = problem.field
    return detail
