"""One OpenTelemetry trace per message, across its hops, exported over OTLP/HTTP.

A message's trace id is its message id (26 base32hex characters are 128 bits: time, then
randomness) and its root "receive" span's id is a hash of it, so any hop, at any time and
in any process (a delivery attempt after a restart, a reprocess), joins the message's
trace by naming that root as its remote parent; nothing about traces is stored.

    receive (root, SERVER)                   Channel.deliver
      parse, map, commit                     its steps
      reprocess -> parse, map, commit        Channel.reprocess, later
      deliver (CLIENT), one per attempt      DestinationWorker._deliver, later

Off unless an OTLP endpoint is configured. Off, every entry point returns OFF, a falsy
stand-in whose methods do nothing: no span, no context, no attribute dict is made. Spans
carry ids and codes only (message id, channel, destination, message type, control id,
status, ACK/HTTP code, attempt, mapping@version), never content or patient data; error
descriptions are written here from codes, never copied from a message or a receiver.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import threading
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode

from engine import __version__
from engine.config.tracing import TracingConfig

if TYPE_CHECKING:
    from engine.mapping_base import Mapping
    from engine.message import Parsed, Problem

log = logging.getLogger("conduit.tracing")

EXPORT_TIMEOUT = 5.0  # seconds for one OTLP request, retries included
FLUSH_GRACE = 5.0  # seconds shutdown waits for the last spans to be taken


# Attribute names: ids and codes only.
MESSAGE_ID = "conduit.message.id"
CHANNEL = "conduit.channel"
DESTINATION = "conduit.destination"
TRANSPORT = "conduit.transport"
MESSAGE_TYPE = "conduit.message.type"
CONTROL_ID = "conduit.message.control_id"
STANDARD = "conduit.message.standard"
STATUS = "conduit.message.status"
MAPPING = "conduit.mapping"
ATTEMPT = "conduit.delivery.attempt"
OUTCOME = "conduit.delivery.outcome"
CODE = "conduit.delivery.code"

_OUTCOMES = {"confirm": "sent", "retry": "retry", "dead": "dead-lettered"}
_FAILED = {"rejected": "message rejected",
           "error": "message stored but not processed: its mapping failed"}


def trace_id(message_id: str) -> int:
    """The 128-bit trace id of a message: its id decoded (a foreign id is hashed)."""
    try:
        if len(message_id) == 26:
            return int.from_bytes(base64.b32hexdecode(message_id + "======"), "big") or 1
    except (binascii.Error, ValueError):
        pass
    return int.from_bytes(hashlib.blake2b(message_id.encode(), digest_size=16).digest(), "big")


def root_span_id(message_id: str) -> int:
    """The 64-bit span id of a message's "receive" span."""
    digest = hashlib.blake2b(message_id.encode(), digest_size=8, person=b"conduit-receive")
    return int.from_bytes(digest.digest(), "big") or 1


class _MessageIds(RandomIdGenerator):
    """Random ids, except for the root span being started: the ids pinned for it."""

    def __init__(self) -> None:
        self._pinned = threading.local()

    def pin(self, ids: tuple[int, int] | None) -> None:
        self._pinned.ids = ids

    def generate_trace_id(self) -> int:
        ids = getattr(self._pinned, "ids", None)
        return ids[0] if ids else super().generate_trace_id()

    def generate_span_id(self) -> int:
        ids = getattr(self._pinned, "ids", None)
        if ids:
            self._pinned.ids = None
            return ids[1]
        return super().generate_span_id()


_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None  # None: tracing is off
_ids = _MessageIds()
_ratio = TraceIdRatioBased(1.0)
_NO_TRACER = trace.NoOpTracer()


def enabled() -> bool:
    """Whether spans are being made (an endpoint is configured and set up)."""
    return _tracer is not None


def setup(config: TracingConfig, exporter: SpanExporter | None = None) -> bool:
    """Turn tracing on when an endpoint is configured (or, in tests, an exporter given);
    returns whether it is on."""
    global _provider, _tracer, _ratio
    if _provider is not None:  # set up twice in one process (tests): flush the first
        _provider.shutdown()
        _provider = _tracer = None
    if exporter is None:
        if not config.otlp_endpoint:
            return False
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=config.otlp_endpoint, timeout=EXPORT_TIMEOUT)
    _ratio = TraceIdRatioBased(config.sample_ratio)
    resource = Resource.create({"service.name": config.service_name,
                                "service.version": __version__})
    _provider = TracerProvider(resource=resource, sampler=ParentBased(_ratio), id_generator=_ids)
    _provider.add_span_processor(BatchSpanProcessor(exporter))
    _tracer = _provider.get_tracer("conduit", __version__)
    log.info("tracing on: %s of messages to %s", f"{config.sample_ratio:.0%}",
             config.otlp_endpoint or type(exporter).__name__)
    return True


async def shutdown(grace: float = FLUSH_GRACE) -> None:
    """Export the spans still buffered (waiting up to `grace` seconds, off the event
    loop) and turn tracing off."""
    global _provider, _tracer
    provider, _provider, _tracer = _provider, None, None
    if provider is None:
        return
    loop = asyncio.get_running_loop()
    finished = asyncio.Event()

    def flush() -> None:
        try:
            provider.shutdown()
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(finished.set)

    threading.Thread(target=flush, name="conduit-trace-flush", daemon=True).start()
    try:
        await asyncio.wait_for(finished.wait(), grace)
    except TimeoutError:
        log.warning("tracing: the collector did not take the last spans within %.0fs; "
                    "they are dropped", grace)


def _root_context(message_id: str) -> Context:
    """A context whose span is the message's root, as a remote parent."""
    tid = trace_id(message_id)
    flags = trace.TraceFlags.SAMPLED if _ratio.should_sample(
        None, tid, "receive").decision.is_sampled() else trace.TraceFlags.DEFAULT
    root = trace.SpanContext(tid, root_span_id(message_id), is_remote=True,
                             trace_flags=trace.TraceFlags(flags))
    return trace.set_span_in_context(trace.NonRecordingSpan(root), Context())


def receive(message_id: str, channel: str, transport: str) -> MessageTrace | _Off:
    """Start the root span of a message just received (OFF when tracing is off)."""
    if _tracer is None:
        return OFF
    _ids.pin((trace_id(message_id), root_span_id(message_id)))
    try:
        root = _tracer.start_span("receive", Context(), kind=SpanKind.SERVER, attributes={
            MESSAGE_ID: message_id, CHANNEL: channel, TRANSPORT: transport})
    finally:
        _ids.pin(None)
    return MessageTrace(root)


def reprocess(message_id: str, channel: str) -> MessageTrace | _Off:
    """Start the span of a stored message run through its channel again."""
    if _tracer is None:
        return OFF
    span = _tracer.start_span("reprocess", _root_context(message_id), attributes={
        MESSAGE_ID: message_id, CHANNEL: channel})
    return MessageTrace(span)


def attempt(message_id: str, channel: str, destination: str, number: int,
            control_id: str) -> DeliveryAttempt | _Off:
    """Start the span of one delivery attempt, a child of the message's root."""
    if _tracer is None:
        return OFF
    span = _tracer.start_span("deliver", _root_context(message_id), kind=SpanKind.CLIENT,
                              attributes={MESSAGE_ID: message_id, CHANNEL: channel,
                                          DESTINATION: destination, ATTEMPT: number,
                                          CONTROL_ID: control_id})
    return DeliveryAttempt(span)


class MessageTrace:
    """The span of a message's intake (receive or reprocess) and of its steps.

    `with trace.step("parse"): ...` times one step as a child span; the result methods
    annotate the step that is open and the intake span.
    """

    __slots__ = ("_context", "_span", "_step")

    def __init__(self, span: trace.Span) -> None:
        self._span = span
        self._context = trace.set_span_in_context(span, Context())
        self._step: trace.Span | None = None

    def step(self, name: str) -> MessageTrace:
        tracer = _tracer or _NO_TRACER  # turned off mid-message: finish quietly
        self._step = tracer.start_span(name, self._context)
        return self

    def __enter__(self) -> MessageTrace:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: Any, tb: Any) -> None:
        step, self._step = self._step, None
        if step is None:
            return
        if exc_type is not None:
            # the exception's text may quote the message: name its type only
            step.set_status(Status(StatusCode.ERROR, f"raised {exc_type.__name__}"))
        step.end()

    def parsed(self, parsed: Parsed | None, problem: Problem | None) -> None:
        """The codec's reading: routing ids on the spans, or why it was rejected."""
        if parsed is not None:
            attributes = {STANDARD: parsed.standard, MESSAGE_TYPE: parsed.message_type,
                          CONTROL_ID: parsed.control_id}
            self._span.set_attributes(attributes)
            if self._step is not None:
                self._step.set_attributes(attributes)
        elif problem is not None and self._step is not None:
            where = f" at {problem.segment}" if problem.segment else ""
            if problem.segment and problem.field is not None:
                where += f"-{problem.field}"
            self._step.set_status(Status(StatusCode.ERROR,
                                         f"unreadable message (error {problem.code}{where})"))

    def routed(self, status: str, mapping: Mapping | None) -> None:
        """Filter and mapping done: the message's status and the mapping@version."""
        step = self._step
        if step is None:
            return
        step.set_attribute(STATUS, str(status))
        ref = mapping.ref if mapping is not None else None
        if ref:
            step.set_attribute(MAPPING, ref)
            self._span.set_attribute(MAPPING, ref)
        if status == "error":
            step.set_status(Status(StatusCode.ERROR, f"mapping {ref} failed"))

    def end(self, status: str, failure: str | None = None) -> None:
        """Close the intake span with the message's status; `failure`, written by the
        engine, never taken from a message, marks it as an error."""
        span = self._span
        span.set_attribute(STATUS, str(status))
        failure = failure or _FAILED.get(status)
        if failure is not None:
            span.set_status(Status(StatusCode.ERROR, failure))
        span.end()


class DeliveryAttempt:
    """The span of one attempt to deliver a message to one destination."""

    __slots__ = ("_span",)

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def done(self, action: str, code: str) -> None:
        """Close with the retry policy's decision ("confirm", "retry" or "dead") and the
        receiver's code (HTTP status, HL7 MSA-1); a failed attempt is an error."""
        span = self._span
        outcome = _OUTCOMES.get(action, action)
        span.set_attribute(OUTCOME, outcome)
        if code:
            span.set_attribute(CODE, code)
        if action != "confirm":
            answer = f"receiver answered {code}" if code else "no usable answer"
            span.set_status(Status(StatusCode.ERROR, f"{answer}; {outcome}"))
        span.end()


class _Off:
    """Tracing is off: a falsy stand-in for MessageTrace and DeliveryAttempt whose
    every method does nothing."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False

    def step(self, name: str) -> _Off:
        return self

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def parsed(self, parsed: object, problem: object) -> None:
        pass

    def routed(self, status: str, mapping: object) -> None:
        pass

    def end(self, status: str, failure: str | None = None) -> None:
        pass

    def done(self, action: str, code: str) -> None:
        pass


OFF = _Off()
