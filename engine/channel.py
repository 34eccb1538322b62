"""Channel: wires one channel's steps (engine.pipeline) between its source, codec, store,
queue and destination workers, and holds its state machine; nothing else.

A delivery: source -> envelope (one message, or the parts of a batch or a split one) ->
per message: parse and validate (the codec) -> duplicates -> filters -> routing (mapping,
queue entries) -> one durable commit of the sealed message, its output, its queue
entries and the audit events of every hop so far -> reply (the codec's, or the
envelope's one reply for the whole). A message that fails to parse or map is still
stored with its status and a PHI-free reason; a reprocess runs the same steps again on a
stored message. Collaborators are typed by protocol (Codec, Queue, Source); the store
and the writer are the concrete MessageStore and Writer, which have no protocol yet.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import itertools
import logging
import time
from typing import Any

from engine.config.schema import ChannelConfig
from engine.connectors.base import Source
from engine.events import Event, Kind
from engine.formats.base import Codec
from engine.mapping_base import Mapping
from engine.message import (
    MessageStatus,
    Parsed,
    Problem,
    Receipt,
    SourceMeta,
    new_message_id,
)
from engine.ops import tracing
from engine.pipeline.commit import Committer, Taking
from engine.pipeline.delivery import DestinationWorker
from engine.pipeline.duplicates import Duplicates
from engine.pipeline.envelope import Envelopes, Opened
from engine.pipeline.filters import Filtering
from engine.pipeline.reading import Reader, parsed_detail, problem_detail, received_detail
from engine.pipeline.respond import Responder
from engine.pipeline.routing import Router, Target
from engine.pipeline.shadow import Shadow
from engine.pipeline.splitting import Splitter
from engine.pipeline.x12_partner import X12Partner
from engine.queue.base import Queue
from engine.security.crypto import Vault, content_hash
from engine.store import correlation
from engine.store.messages import MessageStore
from engine.store.writer import UnitOfWork, Writer

log = logging.getLogger("conduit.channel")
# Parts of a (non-atomic) batch prepared and committed together: enough to fill the
# writer's group commits, few enough that a batch of any size takes flat memory.
WINDOW = 64
# A message this large (an ORU carrying a PDF, a 20,000-OBX result, a 10 MB Bundle) is
# parsed, validated and mapped on a worker thread: seconds of Python on the event loop
# would hold up every other sender's acknowledgement and the status page. Smaller ones
# stay on the loop, where a thread's hand-over would cost more than the work.
LARGE_MESSAGE = 64 * 1024


class State(enum.StrEnum):
    STOPPED = "stopped"  # neither accepting nor delivering
    STARTED = "started"
    PAUSED = "paused"  # not accepting; queued messages still delivered
    ERROR = "error"  # the source could not start (port taken, ...)


class Channel:
    def __init__(self, config: ChannelConfig, *, codec: Codec, mapping: Mapping | None,
                 source: Source, workers: list[DestinationWorker], store: MessageStore,
                 queue: Queue, writer: Writer, vault: Vault, shadow: Shadow | None = None,
                 respond: Responder | None = None, partner: X12Partner | None = None,
                 takes_in: bool = True, delivers: bool = True, shared: bool = False) -> None:
        """`takes_in` / `delivers`: whether this process runs the source / the destination
        workers (both, unless a worker of `--workers ingest=N,deliver=M` does one half).
        `shared`: whether other processes may take this channel's messages into the same
        store (engine.pipeline.duplicates then asks the store about every message)."""
        assert config.name is not None
        self.name, self.config, self.codec, self.mapping = config.name, config, codec, mapping
        self.source, self.workers, self.shadow = source, workers, shadow
        self.respond = respond  # request/response: callers answered by a destination
        self.takes_in = takes_in
        self.sending = workers if delivers else []  # the workers this process runs
        splitter = Splitter(config.split) if config.split is not None else None
        self.envelopes = Envelopes(codec, splitter)
        self.reader = Reader(self.name, codec, config.validation, self.envelopes.splits)
        self.duplicates = Duplicates(self.name, config.duplicate_window, store, shared)
        self.filters = Filtering(config.filter, codec.field, first=[splitter] if splitter else ())
        self.partner = partner  # X12 trading partners: our envelope out, their 999s in
        received = {d.name for d in config.destinations if d.send == "received"}
        gates = {d.name: d.conformance for d in config.destinations}
        self.router = Router(self.name, mapping=mapping, outputs=store, queue=queue,
                             problem=codec.problem, shadow=shadow, outbound=partner,
                             strict=config.validation == "strict", targets=[
                                 Target(w.name, w.key, w.name in received, gates.get(w.name))
                                 for w in workers])
        self.committer = Committer(self.name, codec, writer, self.duplicates.forget,
                                   self._notify)
        self._store, self._writer, self._vault = store, writer, vault
        self.state = State.STOPPED
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    async def start(self, accepting: bool = True) -> None:
        """Deliver and accept (from stopped); a started channel stays as it is. Without
        `accepting` it only delivers (paused): a channel swapped in for a paused one."""
        await self.duplicates.warm_up(time.time())
        if self.state in (State.STOPPED, State.ERROR):
            for worker in self.sending:
                worker.start()
            self.state = State.PAUSED
        if accepting:
            await self.resume()

    async def resume(self) -> None:
        """Accept again (from paused)."""
        if self.state is not State.PAUSED:
            return
        try:
            if self.takes_in:
                await self.source.start(self.deliver)
        except OSError as exc:
            self.state = State.ERROR
            self.last_error = f"source could not start: {exc.strerror or exc}"
            self.last_error_at = time.time()
            log.error("channel %s: %s", self.name, self.last_error)
            await asyncio.gather(*(w.stop() for w in self.sending))
            return
        self.state = State.STARTED

    async def pause(self) -> None:
        """Stop accepting (senders see the port closed and queue on their side), answer
        what was already received, and keep delivering what is queued."""
        if self.state is State.STARTED:
            if self.takes_in:
                await self.source.stop()
            self.state = State.PAUSED

    async def stop(self) -> None:
        """Stop accepting, answer what was already received, finish sends in progress."""
        if self.state is State.STARTED and self.takes_in:
            await self.source.stop()
        if self.state in (State.STARTED, State.PAUSED):
            await asyncio.gather(*(w.stop() for w in self.sending))
        self.state = State.STOPPED

    async def deliver(self, raw: bytes, meta: SourceMeta) -> Receipt:
        """Take a message (or an envelope of them) on: returns once it is durable, with
        the replies to send. `raw` may be a read-only buffer (a large file's mmap), read
        piece by piece when the codec streams, else as bytes."""
        opened = self.envelopes.open(raw, meta)
        if opened is None:
            raw = bytes(raw)
            taking = await self._prepare(raw, meta)
            if self.respond is not None:
                return await self.respond.answer(taking.hop["message_id"],
                                                 self.committer.commit(taking))
            return await self.committer.commit(taking)
        return await self._take_envelope(raw, meta, opened)

    async def _take_envelope(self, raw: bytes, meta: SourceMeta, opened: Opened) -> Receipt:
        """An atomic envelope's parts are all prepared (concurrently) before any is
        committed, so that one refused whole (engine.pipeline.envelope) leaves nothing
        queued; the parts of any other are taken WINDOW at a time, so memory stays flat
        on a batch of any size. One reply for the whole."""
        refused = opened.refusal(())
        if not refused and not opened.atomic:
            taken: list[tuple[Receipt, bytes]] = []
            parts = iter(opened.parts)
            while window := list(itertools.islice(parts, WINDOW)):
                prepared = await asyncio.gather(*(
                    self._prepare(p.raw, p.meta, received=p.received, control_id=p.control_id)
                    for p in window))
                taken += await asyncio.gather(*(self.committer.commit_part(t) for t in prepared))
            return opened.receipt([r for r, _ in taken], [reply for _, reply in taken])
        prepared = [] if refused else await asyncio.gather(*(
            self._prepare(p.raw, p.meta, received=p.received, control_id=p.control_id)
            for p in opened.parts))
        refused = refused or opened.refusal([(t.status, t.problems) for t in prepared])
        if refused:
            for taking in prepared:
                self.duplicates.forget(taking.parsed, taking.hop["message_id"])
                taking.trace.end(MessageStatus.REJECTED, "its transaction was refused whole")
            receipt = await self.committer.commit(await self._prepare(bytes(raw), meta, refused))
            return opened.refused(receipt, refused)
        # an atomic envelope's parts become durable in one database transaction
        stored = asyncio.ensure_future(self._writer.commit(UnitOfWork.merged(
            [t.uow for t in prepared])))
        taken = await asyncio.gather(*(self.committer.commit_part(t, stored)
                                       for t in prepared))
        return opened.receipt([r for r, _ in taken], [reply for _, reply in taken])

    async def _prepare(self, raw: bytes, meta: SourceMeta, refuse: tuple[Problem, ...] = (),
                       received: dict[str, Any] | None = None, control_id: str = ""
                       ) -> Taking:
        """Parse, check and route a message into a unit of work, not yet committed;
        `refuse` rejects it (an envelope refused whole), `received` adds to its
        "received" audit detail (for a split part: where it came from)."""
        message_id, now, digest = new_message_id(), time.time(), content_hash(raw)
        uow = UnitOfWork()
        trace = tracing.receive(message_id, self.name, meta.transport)
        hop: dict[str, Any] = {"channel": self.name, "message_id": message_id,
                               "peer": meta.peer}
        large = len(raw) >= LARGE_MESSAGE
        if large:
            parsed, problem, rejection, warnings = await asyncio.to_thread(
                self._read, raw, meta, trace, control_id, refuse)
        else:
            parsed, problem, rejection, warnings = self._read(raw, meta, trace, control_id,
                                                              refuse)
        # What was read of a message validation refused still names it in the store
        # (type, control id, sender), so an analyst finds it among its kind.
        read = parsed
        if rejection:
            parsed, problem = None, rejection[0]
        hop["patient"] = self._vault.pseudonym(read.patient_id) if read else None
        uow.record(Event(kind=Kind.RECEIVED, content_hash=digest,
                         detail=received_detail(meta, received), **hop))
        status, error = MessageStatus.ACCEPTED, None
        problems: tuple[Problem, ...] = ()
        if parsed is None:
            assert problem is not None
            status, error, problems = MessageStatus.REJECTED, problem.text, rejection or (problem,)
            uow.record(Event(kind=Kind.REJECTED, detail=problem_detail(problem), **hop))
        else:
            uow.record(Event(kind=Kind.PARSED, detail=parsed_detail(parsed, warnings), **hop))
            if parsed.relates_to:  # an answer: linked to what it answers (store.correlation)
                original = await asyncio.to_thread(self._store.original_of,
                                                   parsed.relates_to, parsed.receiver)
                if original is not None:
                    correlation.link(uow, hop, parsed.message_type, original, now)
            control = await self.partner.before_routing(uow, parsed, hop, self.mapping) \
                if self.partner else None
            # filtered first: no await may come between the duplicate check and `taken`
            failed = await self.filters.check(parsed, len(raw))
            premapped = await self.router.premap(parsed) if large and failed is None \
                else None
            earlier = await self.duplicates.check(parsed, digest, now)
            if earlier is not None and earlier.resend:
                status = MessageStatus.DUPLICATE
                uow.record(Event(kind=Kind.DUPLICATE, detail={"original": earlier.message_id},
                                 **hop))
            else:
                if earlier is not None:  # same id, other content: a new message all the same
                    uow.record(Event(kind=Kind.CONTROL_ID_REUSED,
                                     detail={"original": earlier.message_id}, **hop))
                with trace.step("map"):
                    routed = self.router.route(uow, parsed, hop, now, failed, control=control,
                                               premapped=premapped)
                    trace.routed(routed.status, self.mapping)
                status, error, problems = routed.status, routed.error, routed.problems
                self.duplicates.taken(parsed, message_id, digest, now, status)
                uow.claim = self.duplicates.claim(parsed, digest, now, status, hop)
        self._store.add_message(uow, {
            "id": message_id, "channel": self.name, "received_at": now, "status": status,
            "standard": read.standard if read else self.config.format,
            "message_type": read.message_type[:40] if read else "",
            "control_id": read.control_id[:64] if read else "",
            "sender": read.sender[:200] if read else "", "peer": meta.peer,
            "patient": hop["patient"], "content_hash": digest, "error": error}, raw)
        return Taking(raw, parsed, uow, hop, status, tuple(problems), warnings, trace)

    def _read(self, raw: bytes, meta: SourceMeta, trace: Any, control_id: str,
              refuse: tuple[Problem, ...]
              ) -> tuple[Parsed | None, Problem | None, tuple[Problem, ...], tuple[Problem, ...]]:
        """Parse and validate: the message, the problem refusing it, what validation
        refuses it for, and its warnings."""
        parsed, problem = self.reader.read(raw, meta, trace, control_id)
        rejection, warnings = refuse, ()
        if parsed is not None and not refuse:
            rejection, warnings = self.reader.validate(parsed)
        return parsed, problem, rejection, warnings

    async def reprocess(self, message_id: str, raw: bytes, mapping: Mapping | None,
                        actor: str, mapping_source: str | None = None) -> MessageStatus:
        """Run a stored message through the same steps again (parse, filters, routing,
        commit; no duplicate check), with the channel's current mapping or the one
        given; new output, new queue entries. `mapping_source`, the sha256 of the
        mapping's source, goes into the trail with its name."""
        trace, uow, now = tracing.reprocess(message_id, self.name), UnitOfWork(), time.time()
        large = len(raw) >= LARGE_MESSAGE  # read and mapped off the loop, as when received
        read = functools.partial(self.reader.read, raw, SourceMeta("reprocess", size=len(raw)),
                                 trace, whole=False)
        parsed, problem = await asyncio.to_thread(read) if large else read()
        # The pseudonym stored with the message, so that its new hops are found with its
        # others (engine.store.schema.MESSAGE_HOPS), even if this parse reads the patient
        # differently; one the store could not read before is kept on its row now.
        stored = await asyncio.to_thread(self._store.get, message_id)
        kept = stored.patient if stored is not None else None
        patient = kept or (self._vault.pseudonym(parsed.patient_id) if parsed else None)
        if kept is None and patient is not None:
            self._store.set_patient(uow, message_id, patient)
        hop: dict[str, Any] = {"channel": self.name, "message_id": message_id, "peer": None,
                               "patient": patient}
        mapping = mapping or self.mapping
        detail: dict[str, Any] = {"mapping": mapping.ref if mapping else None}
        if mapping_source is not None:
            detail["source_sha256"] = mapping_source
        uow.record(Event(kind=Kind.REPROCESSED, actor=actor, detail=detail, **hop))
        error: str | None
        if parsed is None:
            assert problem is not None
            status, error = MessageStatus.REJECTED, problem.text
            uow.record(Event(kind=Kind.REJECTED, detail=problem_detail(problem), **hop))
        else:
            control = await self.partner.before_routing(uow, parsed, hop, mapping) \
                if self.partner else None
            failed = await self.filters.check(parsed, len(raw))
            premapped = await self.router.premap(parsed, mapping) if large and failed is None \
                else None
            with trace.step("map"):
                routed = self.router.route(uow, parsed, hop, now, failed, mapping, control,
                                           premapped)
                trace.routed(routed.status, mapping)
            status, error = routed.status, routed.error
        self._store.set_status(uow, message_id, status, error)
        try:
            with trace.step("commit"):
                await self._writer.commit(uow)
        finally:
            trace.end(status)
        self._notify(status)
        return status

    def _notify(self, status: MessageStatus) -> None:
        if status is MessageStatus.ACCEPTED:
            for worker in self.workers:
                worker.notify()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state.value,
                "source": self.source.describe(),
                "mapping": self.mapping.ref if self.mapping else None,
                "shadow": self.shadow.summary() if self.shadow else None,
                "destinations": [w.name for w in self.workers], "last_error": self.last_error}

