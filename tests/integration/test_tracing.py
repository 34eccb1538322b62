"""Traces over real sockets: an engine in-process sends its spans over OTLP/HTTP to a
real receiver, and every hop of a message (a retried delivery, and a delivery after a
restart, included) arrives in one trace whose id is the message id."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from engine.ops import tracing
from engine.runtime import Engine
from engine.store.schema import audit, messages
from tests.fhir_server import Answer
from tests.harness import EngineHarness, adt, exchange, free_port
from tests.loopback import LoopbackServer

PHI = (b"TESTPATIENT", b"ALEX", b"MRN4242", b"19700412", b"12 ELM ST", b"5550134")


class OtlpReceiver(LoopbackServer):
    """A collector's OTLP/HTTP traces endpoint: keeps every span it is sent."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []
        self.spans: list = []
        self.resources: list[dict] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    async def _traces(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        body = await request.read()
        self.bodies.append(body)
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            self.resources.append({a.key: a.value.string_value
                                   for a in resource_spans.resource.attributes})
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(scope_spans.spans)
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    async def start(self) -> OtlpReceiver:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        await self.serve(app)
        return self


    def trace(self, message_id: str) -> dict[str, list]:
        """The spans of one message's trace, by name."""
        found: dict[str, list] = {}
        for span in self.spans:
            if span.trace_id == tracing.trace_id(message_id).to_bytes(16, "big"):
                found.setdefault(span.name, []).append(span)
        return found


def traced_harness(root: Path, endpoint: str) -> EngineHarness:
    """An EngineHarness whose settings turn tracing on, to `endpoint`."""
    return EngineHarness(root, conf=f"""
        tracing:
          otlp_endpoint: {endpoint}
          service_name: conduit-it
          sample_ratio: 1.0
        """)


def fhir_channel(port: int, fhir_url: str) -> str:
    return f"""
    source: {{type: mllp, port: {port}, read_timeout: 1s}}
    mapping: hl7v2-adt-to-fhir@1
    retry: {{max_attempts: 20, initial_delay: 50ms, max_delay: 100ms, jitter: 0}}
    destinations:
      - {{name: fhir, type: fhir, url: "{fhir_url}", timeout: 2s}}
    """


def audited(engine: Engine, kind: str) -> int:
    with engine.services.db.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(audit)
                            .where(audit.c.kind == kind)).scalar_one()


def only_message_id(engine: Engine) -> str:
    with engine.services.db.connect() as conn:
        return conn.execute(sa.select(messages.c.id)).scalar_one()


def attribute(span, key: str):
    for kv in span.attributes:
        if kv.key == key:
            value = kv.value
            return value.int_value if value.HasField("int_value") else value.string_value
    return None


async def test_all_hops_of_a_message_arrive_in_one_trace(tmp_path, fhir):
    receiver = await OtlpReceiver().start()
    harness = traced_harness(tmp_path, receiver.endpoint)
    try:
        fhir.script.extend([Answer(503), Answer(200)])
        port = free_port()
        engine = await harness.start({"adt": fhir_channel(port, fhir.url)})
        [ack] = await exchange(port, [adt("C1", "MRN4242")])
        assert ack.value("MSA-1") == "AA"
        await harness.settle(lambda: audited(engine, "sent") == 1)
        message_id = only_message_id(engine)
        await harness.stop()  # flushes the batch of spans to the receiver
    finally:
        await harness.stop()
        await receiver.stop()

    assert receiver.resources[0]["service.name"] == "conduit-it"
    spans = receiver.trace(message_id)
    assert sorted(spans) == ["commit", "deliver", "map", "parse", "receive"]
    [root] = spans["receive"]
    assert root.parent_span_id == b""
    assert root.span_id == tracing.root_span_id(message_id).to_bytes(8, "big")
    assert attribute(root, tracing.MESSAGE_ID) == message_id
    assert attribute(root, tracing.CONTROL_ID) == "C1"
    assert attribute(root, tracing.MESSAGE_TYPE) == "ADT^A01"
    for name in ("parse", "map", "commit", "deliver"):
        assert all(s.parent_span_id == root.span_id for s in spans[name]), name
    assert attribute(spans["map"][0], tracing.MAPPING) == "hl7v2-adt-to-fhir@1"

    attempts = sorted(spans["deliver"], key=lambda s: attribute(s, tracing.ATTEMPT))
    assert [(attribute(s, tracing.ATTEMPT), attribute(s, tracing.OUTCOME),
             attribute(s, tracing.CODE)) for s in attempts] == [(1, "retry", "503"),
                                                                (2, "sent", "200")]
    failed, sent = attempts
    assert failed.status.code == failed.status.STATUS_CODE_ERROR
    assert sent.status.code == sent.status.STATUS_CODE_UNSET
    assert failed.start_time_unix_nano < sent.start_time_unix_nano

    for body in receiver.bodies:  # the whole export, not only what we decoded
        for phi in PHI:
            assert phi not in body


async def test_a_delivery_after_a_restart_joins_the_message_trace(tmp_path, fhir):
    receiver = await OtlpReceiver().start()
    try:
        fhir.default = Answer(503)
        port = free_port()
        first = traced_harness(tmp_path, receiver.endpoint)
        try:
            engine = await first.start({"adt": fhir_channel(port, fhir.url)})
            await exchange(port, [adt("C1", "MRN4242")])
            await first.settle(lambda: audited(engine, "retried") >= 1)
            message_id = only_message_id(engine)
        finally:
            await first.stop()
        before = len(receiver.trace(message_id)["deliver"])

        fhir.default = Answer(200)
        second = traced_harness(tmp_path, receiver.endpoint)
        try:
            engine = await second.start({"adt": fhir_channel(port, fhir.url)})
            await second.settle(lambda: audited(engine, "sent") == 1)
        finally:
            await second.stop()
    finally:
        await receiver.stop()

    spans = receiver.trace(message_id)
    [root] = spans["receive"]
    attempts = sorted(spans["deliver"], key=lambda s: attribute(s, tracing.ATTEMPT))
    assert len(attempts) == before + 1
    assert all(s.parent_span_id == root.span_id for s in attempts)
    assert attribute(attempts[-1], tracing.OUTCOME) == "sent"
    assert attribute(attempts[-1], tracing.ATTEMPT) == before + 1
    assert {attribute(s, tracing.OUTCOME) for s in attempts[:-1]} == {"retry"}


async def test_with_tracing_off_nothing_is_exported(harness, fhir):
    receiver = await OtlpReceiver().start()
    try:
        port = free_port()
        engine = await harness.start({"adt": fhir_channel(port, fhir.url)})
        assert engine.config.tracing.otlp_endpoint is None and not tracing.enabled()
        await exchange(port, [adt("C1", "MRN4242")])
        await harness.settle(lambda: audited(engine, "sent") == 1)
        await harness.stop()
    finally:
        await receiver.stop()
    assert receiver.bodies == []
