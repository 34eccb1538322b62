"""Routing, a channel step: a parsed message's filter verdict, its mapping and its queue
entries, recorded into the message's unit of work (nothing is durable until the channel
commits it).

The same step serves a message taken on and one reprocessed (with the channel's mapping
or another one given): filtered or failed messages are recorded as such and get no queue
entry; an accepted one gets its mapped output stored and one queue entry per
destination (the received message itself for a destination with `send: received`). A
message the mapping skips goes only to the destinations with `send: received`, and is
filtered when there are none. The
shadow candidate, when there is one, is compared on live traffic only.

A destination with a conformance gate (`conformance:`, engine.conformance) gets a queue
entry only for an output that passes it; one that fails is held: an "errored" event
names the destination, the mapping and the located reasons, the message's status is
error (reprocess it after a fix), and the other destinations are queued as usual. The
gates are checked here, synchronously, because routing must not await (the duplicate
step's guarantee), so the check is bounded (engine.conformance.gate); a channel without
gates does none of this work.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec

from engine.conformance.gate import Gate, check_all, warm
from engine.errors import MappingError
from engine.events import Event, Kind
from engine.mapping_base import Mapped, Mapping, Skip
from engine.message import MessageStatus, Parsed, Problem, ProblemKind
from engine.pipeline.filters import FilterError
from engine.pipeline.shadow import Shadow
from engine.queue.base import Queue
from engine.security.crypto import content_hash
from engine.store.writer import UnitOfWork

log = logging.getLogger("conduit.channel")
FIRST_REASONS = 3  # of a gate's reasons, how many the message's status text repeats


class Outbound(Protocol):
    """What puts a channel's X12 under a trading partner's envelope
    (engine.pipeline.x12_partner.X12Partner)."""

    def seal(self, uow: UnitOfWork, hop: dict[str, Any], content: bytes, control: int
             ) -> bytes: ...

    def received(self, parsed: Parsed) -> bytes: ...


class Outputs(Protocol):
    """Where a mapped output is stored (engine.store.messages.MessageStore)."""

    def add_output(self, uow: UnitOfWork, message_id: str, mapping: str, content_type: str,
                   content: bytes) -> str: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """A destination as routing sees it: its queue key, whether it is sent the
    message as received rather than the mapping's output, and its conformance gate's
    settings (engine.config.conformance), if any."""

    name: str
    key: str
    received: bool = False
    conformance: Any = None


@dataclasses.dataclass(frozen=True, slots=True)
class Routed:
    status: MessageStatus
    error: str | None = None  # the PHI-free reason when not accepted
    problems: tuple[Problem, ...] = ()  # for the reply


class Router:
    def __init__(self, channel: str, *, mapping: Mapping | None, targets: Sequence[Target],
                 outputs: Outputs, queue: Queue,
                 problem: Callable[[ProblemKind, str], Problem],
                 shadow: Shadow | None = None, outbound: Outbound | None = None,
                 strict: bool = False) -> None:
        self.channel = channel
        self.strict = strict
        self.outbound = outbound
        self.mapping = mapping
        self.targets = list(targets)
        self.shadow = shadow
        self._outputs = outputs
        self._queue = queue
        self._problem = problem
        # destination name -> its gate; equal gates are checked once per output
        self._gates = {t.name: Gate.of(t.conformance) for t in self.targets
                       if t.conformance is not None and not t.received}
        if self._gates:
            warm()  # load the FHIR models now, not on the first message

    async def premap(self, parsed: Parsed, mapping: Mapping | None = None
                     ) -> Mapped | Skip | MappingError | None:
        """The mapping (the channel's unless another is given) run on a worker thread,
        for `route(premapped=...)`: a mapping is pure, so running it ahead changes
        nothing but where its time goes."""
        mapping = mapping or self.mapping
        if mapping is None:
            return None
        try:
            return await asyncio.to_thread(mapping.run, parsed.body)
        except MappingError as exc:
            return exc

    def route(self, uow: UnitOfWork, parsed: Parsed, hop: dict[str, Any], now: float,
              failed: str | FilterError | None, mapping: Mapping | None = None,
              control: int | None = None,
              premapped: Mapped | Skip | MappingError | None = None) -> Routed:
        """Record the filter's verdict (`failed`, from the filter step), map (with the
        channel's mapping unless another is given, or take `premapped`, the channel's
        mapping's outcome from `premap`) and queue a parsed message; with a `control`
        number (taken by the X12 partner step) the X12 output, or the message passed
        through, is sent under the partner's envelope."""
        mapping = mapping or self.mapping
        if isinstance(failed, FilterError):
            uow.record(Event(kind=Kind.ERRORED, detail={"filter": str(failed)}, **hop))
            return Routed(MessageStatus.ERROR, f"filter: {failed}", (
                self._problem(ProblemKind.FILTER_FAILED, str(failed)),))
        if failed is not None:
            uow.record(Event(kind=Kind.FILTERED, detail={"rule": failed}, **hop))
            return Routed(MessageStatus.FILTERED, f"filtered: {failed}")
        output_id, result = None, None  # result: the output bytes, for the gates
        if mapping is not None:
            try:
                if isinstance(premapped, MappingError):
                    raise premapped
                mapped = premapped if premapped is not None else mapping.run(parsed.body)
                if self.strict and isinstance(mapped, Mapped) and mapped.warnings:
                    first = mapped.warnings[0]
                    raise MappingError(first.text, field=first.at or None)
            except MappingError as exc:
                self._compare(hop["message_id"], parsed, mapping, exc)
                return self._failed(uow, hop, mapping.ref, exc)
            self._compare(hop["message_id"], parsed, mapping, mapped)
            if isinstance(mapped, Skip):
                return self._skipped(uow, hop, mapping.ref, mapped.reason, now)
            result = mapped.output
            if control is not None and self.outbound is not None:
                try:
                    result = self.outbound.seal(uow, hop, result, control)
                except MappingError as exc:
                    return self._failed(uow, hop, mapping.ref, exc)
            output_id = self._outputs.add_output(uow, hop["message_id"], mapping.ref,
                                                 mapping.emits, result)
            uow.record(Event(kind=Kind.MAPPED, content_hash=content_hash(result), detail={
                "mapping": mapping.ref, "output": output_id, **notes(mapped)}, **hop))
        elif control is not None and self.outbound is not None:
            try:
                sent = self.outbound.seal(uow, hop, self.outbound.received(parsed), control)
            except MappingError as exc:
                return self._failed(uow, hop, "x12-envelope", exc)
            output_id = self._outputs.add_output(uow, hop["message_id"], "x12-envelope",
                                                 "application/edi-x12", sent)
        held: dict[str, str] = {}
        if self._gates:
            held = self._conform(uow, hop, mapping.ref if mapping else None, result)
        for target in self.targets:
            if target.name in held:
                continue
            self._queue.put(uow, target.key, hop["message_id"],
                            None if target.received else output_id, now)
            uow.record(Event(kind=Kind.QUEUED, destination=target.name, **hop))
        if held:
            reasons = list(held.values())
            return Routed(MessageStatus.ERROR, reasons[0] + (
                f" (and {len(reasons) - 1} more destination(s) held)" if len(reasons) > 1
                else ""), tuple(self._problem(ProblemKind.MAPPING_FAILED, r)
                                for r in reasons))
        return Routed(MessageStatus.ACCEPTED)

    def _conform(self, uow: UnitOfWork, hop: dict[str, Any], ref: str | None,
                 content: bytes | None) -> dict[str, str]:
        """Check the output against each gated destination's gate; record an errored
        event per destination held, and return the held ones with their reason."""
        verdicts = check_all(content, self._gates.values()) if content is not None else {}
        held: dict[str, str] = {}
        for name, gate in self._gates.items():
            verdict = verdicts.get(gate)
            if verdict is not None and verdict.passed:
                continue
            found = verdict.reasons if verdict is not None else (
                "output: none to validate (the channel maps nothing)",)
            reason = (f"held for destination {name}: the output of {ref or 'no mapping'} "
                      f"fails its conformance gate ({gate.describe()}): "
                      + "; ".join(found[:FIRST_REASONS])
                      + (" ..." if len(found) > FIRST_REASONS else ""))
            uow.record(Event(kind=Kind.ERRORED, destination=name, detail={
                "destination": name, "mapping": ref, "gate": gate.describe(),
                "reason": reason, "reasons": list(found),
                **({"more_reasons": True} if verdict is not None and verdict.more else {})},
                **hop))
            held[name] = reason
        return held

    def _skipped(self, uow: UnitOfWork, hop: dict[str, Any], ref: str, reason: str,
                 now: float) -> Routed:
        """A mapping's Skip: no output, so destinations of the output get nothing; those
        sent the message as received (`send: received`) still get it, since their
        delivery never depended on the mapping (a SCRIPT channel maps NewRx to FHIR and
        passes every message type on to the pharmacy)."""
        received = [t for t in self.targets if t.received]
        if not received:
            uow.record(Event(kind=Kind.FILTERED, detail={"mapping": ref, "skipped": reason},
                             **hop))
            return Routed(MessageStatus.FILTERED, f"skipped by {ref}: {reason}")
        uow.record(Event(kind=Kind.MAPPED, detail={"mapping": ref, "skipped": reason},
                         **hop))
        for target in received:
            self._queue.put(uow, target.key, hop["message_id"], None, now)
            uow.record(Event(kind=Kind.QUEUED, destination=target.name, **hop))
        return Routed(MessageStatus.ACCEPTED)

    def _failed(self, uow: UnitOfWork, hop: dict[str, Any], ref: str, exc: MappingError
                ) -> Routed:
        reason = f"mapping {ref} failed: {exc}"
        uow.record(Event(kind=Kind.ERRORED, detail={
            "mapping": ref, "reason": str(exc),
            **({"field": exc.field} if exc.field else {})}, **hop))
        problem = self._problem(ProblemKind.MAPPING_FAILED, reason)
        if exc.field and not problem.where:  # the field, for answers that locate (ERR-2)
            problem = msgspec.structs.replace(problem, where=(exc.field,))
        return Routed(MessageStatus.ERROR, reason, (problem,))

    def _compare(self, message_id: str, parsed: Parsed, mapping: Mapping,
                 live: Mapped | Skip | MappingError) -> None:
        """Compare the live outcome with the shadow candidate's (live traffic only)."""
        if self.shadow is None or mapping is not self.mapping:
            return
        try:
            self.shadow.compare(message_id, parsed.body, live)
        except Exception:  # the candidate is on trial; it must never hurt the live path
            log.exception("channel %s: shadow mapping %s failed", self.channel,
                          self.shadow.candidate.ref)


def notes(mapped: Mapped) -> dict[str, Any]:
    """What a mapped event says about its conversion: the warnings (places and reasons,
    never values) and the fields left behind, for the analyst and the per-channel count
    of fields dropped. Nothing when the conversion read everything it was given;
    `tracked: false` when its mapping does not say what it leaves behind (an earlier
    version), so no one reads "nothing left behind" into an empty list."""
    found: dict[str, Any] = {} if mapped.tracked else {"tracked": False}
    if mapped.warnings:
        found["warnings"] = [{"at": w.at, "text": w.text} for w in mapped.warnings]
    if mapped.left_behind:
        found["left_behind"] = list(mapped.left_behind)
    return found
