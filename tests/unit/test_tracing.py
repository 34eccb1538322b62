"""engine/ops/tracing.py: one trace per message, whose ids come from the message id, with ids
and codes only in its spans; nothing at all when tracing is off.

A real Channel and DestinationWorker run on an embedded store; only the receiving system
is a stand-in (scripted answers), and spans go to the SDK's in-memory exporter.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import msgspec
import pytest
from opentelemetry.sdk.trace import Tracer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from engine.channel import Channel
from engine.config.base import RetryConfig
from engine.config.schema import ChannelConfig, EngineConfig
from engine.config.tracing import TracingConfig
from engine.config.types import dec_hook
from engine.connectors.base import Destination
from engine.formats.hl7v2 import Hl7v2Codec
from engine.mapping import MappingCatalog
from engine.message import (
    Delivery,
    MessageStatus,
    Outbound,
    Retry,
    Sent,
    SourceMeta,
    new_message_id,
)
from engine.ops import tracing
from engine.pipeline.delivery import DestinationWorker
from engine.queue.retry import RetryPolicy
from engine.runtime import Services

REPO = Path(__file__).resolve().parents[2]
FAMILY, GIVEN, MRN, DOB, STREET = "TRACEPATIENT", "ROBIN", "MRN7731", "19650203", "9 OAK AVE"


def adt(control_id: str, sex: str = "F") -> bytes:
    return (
        "MSH|^~\\&|EPIC|NORTHWING|CONDUIT|NORTHWING|20240301101500||ADT^A01^ADT_A01|"
        f"{control_id}|P|2.5.1\r"
        "EVN|A01|20240301101500\r"
        f"PID|1||{MRN}^^^NORTHWING^MR||{FAMILY}^{GIVEN}||{DOB}|{sex}|||"
        f"{STREET}^^SPRINGFIELD^IL^62701\r"
        "PV1|1|I|4W^401^A^NORTHWING\r"
    ).encode()


# Not HL7 (no MSH) but full of PHI: its rejection must not repeat any of it.
NOT_HL7 = f"PID|1||{MRN}^^^NORTHWING^MR||{FAMILY}^{GIVEN}||{DOB}\r".encode()
PHI = (FAMILY, GIVEN, MRN, DOB, STREET)


class ScriptedReceiver(Destination):
    """The receiving system: answers each send with the next scripted Delivery."""

    address = "test:receiver"

    def __init__(self, *answers: Delivery) -> None:
        self.answers = list(answers)
        self.sent: list[Outbound] = []

    async def open(self) -> None:
        pass

    async def send(self, outbound: Outbound) -> Delivery:
        self.sent.append(outbound)
        return self.answers.pop(0) if self.answers else Sent("200")

    async def healthcheck(self) -> str | None:
        return None

    async def close(self) -> None:
        pass


class Pipeline:
    """A channel with the real mapping, store, queue and one worker, no source."""

    def __init__(self, tmp_path: Path, receiver: ScriptedReceiver) -> None:
        self.svc = Services(EngineConfig(data_dir=str(tmp_path / "data")))
        writer = self.svc.start_writer()
        config = msgspec.convert({
            "name": "adt", "source": {"type": "mllp", "port": 2575},
            "mapping": "hl7v2-adt-to-fhir@1",
            "destinations": [{"name": "fhir", "type": "fhir", "url": "http://127.0.0.1:9/fhir"}],
        }, ChannelConfig, dec_hook=dec_hook)
        catalog = MappingCatalog.discover(REPO / "mappings")
        codec = Hl7v2Codec()
        self.receiver = receiver
        self.worker = DestinationWorker(
            channel="adt", name="fhir", destination=receiver,
            policy=RetryPolicy(RetryConfig(initial_delay=0.01, max_delay=0.01, jitter=0.0)),
            timeout=1.0, queue=self.svc.queue, writer=writer, vault=self.svc.vault,
            raw_content_type=codec.content_type)
        self.channel = Channel(config, codec=codec, mapping=catalog.get(config.mapping),
                               source=None, workers=[self.worker], store=self.svc.store,
                               queue=self.svc.queue, writer=writer, vault=self.svc.vault)

    async def __aenter__(self) -> Pipeline:
        self.worker.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.worker.stop()
        await self.svc.close()

    async def deliver(self, raw: bytes) -> str:
        receipt = await self.channel.deliver(raw, SourceMeta("mllp", "127.0.0.1:5000", len(raw)))
        return receipt.message_id

    async def sends(self, count: int) -> None:
        deadline = time.monotonic() + 10
        while len(self.receiver.sent) < count:
            assert time.monotonic() < deadline, "the worker did not send in time"
            await asyncio.sleep(0.01)


@pytest.fixture
async def exported():
    """Tracing on, into memory; `await finished()` flushes and returns the spans."""
    exporter = InMemorySpanExporter()
    assert tracing.setup(TracingConfig(service_name="conduit-test"), exporter)

    async def finished():
        await tracing.shutdown()
        return exporter.get_finished_spans()

    yield finished
    await tracing.shutdown()


def by_name(spans, message_id: str) -> dict[str, list]:
    found: dict[str, list] = {}
    for span in spans:
        if span.context.trace_id == tracing.trace_id(message_id):
            found.setdefault(span.name, []).append(span)
    return found


def texts(spans) -> list[str]:
    """Everything a span carries that a person could read."""
    out = []
    for span in spans:
        out += [span.name, str(span.status.description or "")]
        out += [f"{k}={v}" for k, v in span.attributes.items()]
        out += [f"{k}={v}" for k, v in span.resource.attributes.items()]
        out += [e.name + str(dict(e.attributes or {})) for e in span.events]
    return out


def test_the_trace_id_is_the_message_id_decoded():
    message_id = new_message_id()
    tid = tracing.trace_id(message_id)
    assert base64.b32hexencode(tid.to_bytes(16, "big")).decode()[:26] == message_id
    assert abs((tid >> 80) / 1000 - time.time()) < 5  # 48 bits of milliseconds first
    assert tracing.root_span_id(message_id) == tracing.root_span_id(message_id) != 0
    assert tracing.root_span_id(message_id) != tracing.root_span_id(new_message_id())
    assert 0 < tracing.trace_id("not-a-message-id") < 1 << 128  # foreign ids still work


def test_off_by_default():
    assert TracingConfig().otlp_endpoint is None
    assert EngineConfig().tracing == TracingConfig()
    assert tracing.setup(TracingConfig()) is False
    assert not tracing.enabled()
    message_id = new_message_id()
    assert tracing.receive(message_id, "adt", "mllp") is tracing.OFF
    assert tracing.reprocess(message_id, "adt") is tracing.OFF
    assert tracing.attempt(message_id, "adt", "fhir", 1, "C1") is tracing.OFF
    assert not tracing.OFF


async def test_off_a_message_flows_without_any_span(tmp_path, monkeypatch):
    def no_span(*args, **kwargs):
        raise AssertionError("a span was started with tracing off")

    monkeypatch.setattr(Tracer, "start_span", no_span)
    assert not tracing.enabled()
    async with Pipeline(tmp_path, ScriptedReceiver(Retry("busy", code="503"))) as pipe:
        await pipe.deliver(adt("C1"))
        await pipe.deliver(NOT_HL7)
        await pipe.sends(2)
        await pipe.channel.reprocess(pipe.receiver.sent[0].message_id, adt("C1"), None, "tester")
        await pipe.sends(3)


async def test_every_hop_of_a_message_is_in_one_trace_under_its_root(tmp_path, exported):
    receiver = ScriptedReceiver(Retry("HTTP 503", code="503"), Sent("200"))
    async with Pipeline(tmp_path, receiver) as pipe:
        message_id = await pipe.deliver(adt("C1"))
        await pipe.sends(2)
    spans = by_name(await exported(), message_id)
    assert sorted(spans) == ["commit", "deliver", "map", "parse", "receive"]

    [root] = spans["receive"]
    assert root.parent is None and root.kind is SpanKind.SERVER
    assert root.context.trace_id == tracing.trace_id(message_id)
    assert root.context.span_id == tracing.root_span_id(message_id)
    assert root.attributes[tracing.MESSAGE_ID] == message_id
    assert root.attributes[tracing.CHANNEL] == "adt"
    assert root.attributes[tracing.MESSAGE_TYPE] == "ADT^A01"
    assert root.attributes[tracing.CONTROL_ID] == "C1"
    assert root.attributes[tracing.STATUS] == "accepted"
    assert root.attributes[tracing.MAPPING] == "hl7v2-adt-to-fhir@1"
    assert root.status.status_code is StatusCode.UNSET
    assert root.resource.attributes["service.name"] == "conduit-test"

    steps = [spans[name][0] for name in ("parse", "map", "commit")]
    assert all(s.parent.span_id == root.context.span_id for s in steps)
    assert steps[0].start_time <= steps[1].start_time <= steps[2].start_time
    assert all(root.start_time <= s.start_time and s.end_time <= root.end_time for s in steps)

    first, second = sorted(spans["deliver"], key=lambda s: s.attributes[tracing.ATTEMPT])
    for attempt in (first, second):
        assert attempt.kind is SpanKind.CLIENT
        assert attempt.parent.span_id == root.context.span_id and attempt.parent.is_remote
        assert attempt.attributes[tracing.DESTINATION] == "fhir"
        assert attempt.attributes[tracing.MESSAGE_ID] == message_id
    assert (first.attributes[tracing.ATTEMPT], first.attributes[tracing.OUTCOME],
            first.attributes[tracing.CODE]) == (1, "retry", "503")
    assert first.status.status_code is StatusCode.ERROR
    assert "503" in first.status.description
    assert (second.attributes[tracing.ATTEMPT], second.attributes[tracing.OUTCOME],
            second.attributes[tracing.CODE]) == (2, "sent", "200")
    assert second.status.status_code is StatusCode.UNSET


async def test_reprocessing_later_joins_the_same_trace(tmp_path, exported):
    async with Pipeline(tmp_path, ScriptedReceiver()) as pipe:
        message_id = await pipe.deliver(adt("C1"))
        await pipe.sends(1)
        status = await pipe.channel.reprocess(message_id, adt("C1"), None, "tester")
        assert status is MessageStatus.ACCEPTED
        await pipe.sends(2)
    spans = by_name(await exported(), message_id)
    [root], [again] = spans["receive"], spans["reprocess"]
    assert again.parent.span_id == root.context.span_id
    assert {s.parent.span_id for s in spans["parse"]} == {root.context.span_id,
                                                          again.context.span_id}
    assert [s.attributes[tracing.ATTEMPT] for s in spans["deliver"]] == [1, 1]
    assert all(s.parent.span_id == root.context.span_id for s in spans["deliver"])


async def test_failures_are_errors_whose_descriptions_and_attributes_hold_no_phi(
        tmp_path, exported):
    async with Pipeline(tmp_path, ScriptedReceiver()) as pipe:
        good = await pipe.deliver(adt("C1"))
        rejected = await pipe.deliver(NOT_HL7)
        unmappable = await pipe.deliver(adt("C2", sex="Q"))
        await pipe.sends(1)
    spans = await exported()
    assert len({s.context.trace_id for s in spans}) == 3

    [parse] = by_name(spans, rejected)["parse"]
    [root] = by_name(spans, rejected)["receive"]
    assert parse.status.status_code is StatusCode.ERROR
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes[tracing.STATUS] == "rejected"

    [mapped] = by_name(spans, unmappable)["map"]
    assert mapped.status.status_code is StatusCode.ERROR
    assert mapped.status.description == "mapping hl7v2-adt-to-fhir@1 failed"
    assert by_name(spans, unmappable)["receive"][0].attributes[tracing.STATUS] == "error"
    assert "deliver" in by_name(spans, good)

    carried = "\n".join(texts(spans))
    for phi in PHI:
        assert phi not in carried


async def test_sampling_is_decided_per_message_for_all_its_hops(tmp_path):
    exporter = InMemorySpanExporter()
    tracing.setup(TracingConfig(sample_ratio=0.0), exporter)
    try:
        async with Pipeline(tmp_path, ScriptedReceiver(Retry("busy", code="503"))) as pipe:
            await pipe.deliver(adt("C1"))
            await pipe.sends(2)
    finally:
        await tracing.shutdown()
    assert exporter.get_finished_spans() == ()


async def test_shutdown_turns_tracing_off_and_is_idempotent(exported):
    message_id = new_message_id()
    trace = tracing.receive(message_id, "adt", "mllp")
    with trace.step("parse"):
        pass
    trace.end("accepted")
    spans = await exported()
    assert [s.name for s in spans] == ["parse", "receive"]
    assert not tracing.enabled()
    await tracing.shutdown()
    assert tracing.receive(message_id, "adt", "mllp") is tracing.OFF
