"""The channel (engine.channel) on its own: a real codec, a fake source that records the
deliver it is given, a fake destination worker, the SQL store, queue and writer on a
temporary SQLite. Per message: its status, the audit events recorded, the replies; an
HL7 batch answered with one batch ACK; a FHIR transaction split all or nothing;
reprocess producing new output; the state machine."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa

from engine.channel import Channel, State
from engine.config.schema import ChannelConfig
from engine.config.types import dec_hook
from engine.errors import MappingError
from engine.events import Event, Kind
from engine.formats.fhir import FhirCodec
from engine.formats.hl7v2 import Hl7v2Codec
from engine.mapping import Mapping, Skip
from engine.message import MessageStatus, SourceMeta
from engine.queue.sql import SqlQueue
from engine.security.crypto import Vault
from engine.security.keys import KeyRing
from engine.store.database import open_database
from engine.store.messages import MessageStore
from engine.store.schema import messages, outputs
from engine.store.writer import Writer


class FakeSource:
    """Records the deliver it is started with; `refuse` makes start fail as a taken port."""

    def __init__(self, refuse: bool = False) -> None:
        self.deliver: Any = None
        self.refuse = refuse
        self.stopped = 0

    def resources(self) -> list[str]:
        return ["test:fake"]

    async def start(self, deliver: Any) -> None:
        if self.refuse:
            raise OSError(98, "Address already in use")
        self.deliver = deliver

    async def stop(self) -> None:
        self.stopped += 1

    def describe(self) -> dict[str, object]:
        return {"type": "fake"}


class FakeWorker:
    """A destination worker that only counts what the channel asks of it."""

    name = "ehr"
    key = "adt/ehr"

    def __init__(self) -> None:
        self.notified = 0
        self.started = self.stopped = 0

    def notify(self) -> None:
        self.notified += 1

    def start(self) -> None:
        self.started += 1

    async def stop(self) -> None:
        self.stopped += 1


def _hl7_map(body: Any) -> bytes | Skip:
    family = body.value("PID-5.1")
    if family == "BAD":
        raise MappingError("no usable name", field="PID-5")
    if family == "SKIP":
        return Skip("not for us")
    return {"resourceType": "Patient", "family": family}


def _fhir_map(body: Any) -> bytes:
    family = body["name"][0]["family"]
    if family == "BAD":
        raise MappingError("no usable name", field="name")
    return f"ADT for {family}".encode()


HL7_MAPPING = Mapping("test-adt", 1, "hl7v2", "application/fhir+json", _hl7_map)
HL7_MAPPING_V2 = Mapping("test-adt", 2, "hl7v2", "application/fhir+json",
                         lambda body: {"v": 2})
FHIR_MAPPING = Mapping("test-fhir", 1, "fhir", "x-application/hl7-v2+er7", _fhir_map)


def adt(control_id: str, family: str = "DOE") -> bytes:
    return (f"MSH|^~\\&|LAB|NORTH|EHR|SOUTH|20240102||ADT^A01|{control_id}|P|2.5\r"
            f"PID|1||{control_id}-MRN^^^NORTH^MR||{family}^JANE\r").encode()


def batch(*messages: bytes, count: int | None = None) -> bytes:
    body = b"".join(messages).decode()
    n = len(messages) if count is None else count
    return (f"BHS|^~\\&|LAB|NORTH|EHR|SOUTH|20240102||ADT|first|B001\r{body}BTS|{n}\r"
            ).encode()


def bundle(kind: str, *families: str) -> bytes:
    return json.dumps({"resourceType": "Bundle", "type": kind,
                       "timestamp": "2024-03-01T10:15:00-05:00", "entry": [
                           {"fullUrl": f"urn:uuid:p{i}", "resource": {
                               "resourceType": "Patient", "id": f"p{i}",
                               "name": [{"family": f}]},
                            "request": {"method": "POST", "url": "Patient"}}
                           for i, f in enumerate(families)]}).encode()


class Env:
    def __init__(self, tmp_path) -> None:
        keys = KeyRing.load(tmp_path / "keys")
        self.vault = Vault(keys)
        self.db = open_database(f"sqlite:///{tmp_path / 'conduit.db'}")
        self.events: list[Event] = []
        self.writer = Writer(self.db, keys.audit, on_committed=self.events.extend)
        self.store = MessageStore(self.db, self.vault)
        self.queue = SqlQueue(self.db, owner="host:1:unit")
        self.source = FakeSource()
        self.worker = FakeWorker()

    def channel(self, mapping: Mapping | None = HL7_MAPPING, codec: Any = None,
                **config: Any) -> Channel:
        cfg = msgspec.convert({"name": "adt", "source": {"type": "mllp", "port": 2575},
                               "destinations": [{"name": "ehr", "type": "file",
                                                 "directory": "/tmp/unused"}],
                               **config}, ChannelConfig, dec_hook=dec_hook)
        return Channel(cfg, codec=codec or Hl7v2Codec(), mapping=mapping, source=self.source,
                       workers=[self.worker], store=self.store, queue=self.queue,
                       writer=self.writer, vault=self.vault)

    def kinds(self, message_id: str) -> list[str]:
        return [e.kind.value for e in self.events if e.message_id == message_id]

    def event(self, message_id: str, kind: Kind) -> Event:
        return next(e for e in self.events if e.message_id == message_id and e.kind is kind)

    def rows(self) -> list[Any]:
        with self.db.connect() as conn:
            return conn.execute(sa.select(messages).order_by(messages.c.id)).all()

    def outputs(self, message_id: str) -> int:
        with self.db.connect() as conn:
            return len(conn.execute(sa.select(outputs.c.id)
                                    .where(outputs.c.message_id == message_id)).all())

    def queued(self) -> int:
        return sum(s.ready for s in self.queue.stats() if s.destination == FakeWorker.key)


@pytest.fixture
def env(channel_env):
    return channel_env


def meta(raw: bytes, transport: str = "mllp") -> SourceMeta:
    return SourceMeta(transport, "127.0.0.1:5000", len(raw))


async def test_an_accepted_message_is_stored_mapped_queued_and_acknowledged(env):
    channel = env.channel()
    receipt = await channel.deliver(adt("C1"), meta(adt("C1")))
    assert receipt.status is MessageStatus.ACCEPTED
    assert len(receipt.replies) == 1 and b"MSA|AA|C1" in receipt.replies[0]
    assert env.kinds(receipt.message_id) == ["received", "parsed", "mapped", "queued"]
    assert env.outputs(receipt.message_id) == 1 and env.queued() == 1
    assert env.worker.notified == 1
    receipt.replied()
    for _ in range(200):
        if "acknowledged" in env.kinds(receipt.message_id):
            break
        await asyncio.sleep(0.01)
    assert env.event(receipt.message_id, Kind.ACKNOWLEDGED).detail == {"verdict": "accepted"}
    assert [r.status for r in env.rows()] == ["accepted"]


async def test_a_resend_is_a_duplicate_and_a_reused_id_a_new_message(env):
    channel = env.channel()
    first = await channel.deliver(adt("C1"), meta(adt("C1")))
    again = await channel.deliver(adt("C1"), meta(adt("C1")))
    assert again.status is MessageStatus.DUPLICATE
    assert b"MSA|AA|C1" in again.replies[0]
    assert env.kinds(again.message_id) == ["received", "parsed", "duplicate"]
    assert env.event(again.message_id, Kind.DUPLICATE).detail == {"original": first.message_id}
    reused = await channel.deliver(adt("C1", "ROE"), meta(adt("C1", "ROE")))
    assert reused.status is MessageStatus.ACCEPTED
    assert env.event(reused.message_id, Kind.CONTROL_ID_REUSED).detail == {
        "original": first.message_id}
    assert env.queued() == 2


async def test_duplicates_are_known_after_a_restart_from_the_store(env):
    await env.channel().deliver(adt("C1"), meta(adt("C1")))
    fresh = env.channel()
    await fresh.start()
    again = await fresh.deliver(adt("C1"), meta(adt("C1")))
    assert again.status is MessageStatus.DUPLICATE
    await fresh.stop()


async def test_filtered_skipped_rejected_and_errored(env):
    channel = env.channel(filter=[{"field": "MSH-9.2", "equals": "A01"}])
    a08 = adt("C2").replace(b"ADT^A01", b"ADT^A08")
    filtered = await channel.deliver(a08, meta(a08))
    assert filtered.status is MessageStatus.FILTERED
    assert b"MSA|AA|C2" in filtered.replies[0]
    assert env.event(filtered.message_id, Kind.FILTERED).detail == {
        "rule": "MSH-9.2 equals 'A01'"}

    skipped = await channel.deliver(adt("C3", "SKIP"), meta(adt("C3", "SKIP")))
    assert skipped.status is MessageStatus.FILTERED
    assert env.event(skipped.message_id, Kind.FILTERED).detail == {
        "mapping": "test-adt@1", "skipped": "not for us"}

    errored = await channel.deliver(adt("C4", "BAD"), meta(adt("C4", "BAD")))
    assert errored.status is MessageStatus.ERROR
    assert b"MSA|AE|C4" in errored.replies[0]
    assert b"\rERR||PID^1^5|207^" in errored.replies[0]  # located where the mapping said
    assert env.event(errored.message_id, Kind.ERRORED).detail == {
        "mapping": "test-adt@1", "reason": "PID-5: no usable name", "field": "PID-5"}

    rejected = await channel.deliver(b"not hl7 at all", meta(b"not hl7 at all"))
    assert rejected.status is MessageStatus.REJECTED
    assert b"MSA|AR|" in rejected.replies[0]
    assert env.kinds(rejected.message_id) == ["received", "rejected"]

    truncated = await channel.deliver(adt("C5")[:20], SourceMeta("mllp", "p", 9000,
                                                                 truncated=True))
    assert truncated.status is MessageStatus.REJECTED
    assert "over this channel's limit" in env.event(truncated.message_id,
                                                    Kind.REJECTED).detail["reason"]
    assert env.queued() == 0 and env.worker.notified == 0
    assert sorted(r.status for r in env.rows()) == sorted(
        ["filtered", "filtered", "error", "rejected", "rejected"])


async def test_an_hl7_batch_is_answered_with_one_batch_ack(env):
    channel = env.channel()
    raw = batch(adt("B1"), adt("B2", "BAD"))
    receipt = await channel.deliver(raw, meta(raw))
    assert receipt.status is MessageStatus.ERROR  # the worst of its messages
    assert len(receipt.replies) == 1
    reply = receipt.replies[0]
    assert reply.startswith(b"BHS|") and b"MSA|AA|B1" in reply and b"MSA|AE|B2" in reply
    assert {r.control_id: r.status for r in env.rows()} == {"B1": "accepted", "B2": "error"}
    assert env.queued() == 1
    # each message of the batch is a part (a file source tells partly taken from refused)
    assert [p.status for p in receipt.parts] == [MessageStatus.ACCEPTED, MessageStatus.ERROR]


async def test_an_hl7_batch_whose_count_is_wrong_is_refused_whole(env):
    channel = env.channel()
    raw = batch(adt("B1"), adt("B2"), count=3)
    receipt = await channel.deliver(raw, meta(raw))
    assert receipt.status is MessageStatus.REJECTED
    assert receipt.replies[0].startswith(b"BHS|")
    assert receipt.replies[0].count(b"MSA|AR|") == 2
    rows = env.rows()
    assert [r.status for r in rows] == ["rejected"] and rows[0].id == receipt.message_id
    assert env.queued() == 0


def fhir_channel(env: Env) -> Channel:
    return env.channel(FHIR_MAPPING, FhirCodec(), format="fhir",
                       source={"type": "channel", "inbox": "fhir-in"},
                       split={"resource": "Patient"})


async def test_a_fhir_transaction_is_all_or_nothing(env):
    channel = fhir_channel(env)
    raw = bundle("transaction", "ONE", "BAD")
    refused = await channel.deliver(raw, meta(raw, "http"))
    assert refused.status is MessageStatus.REJECTED
    rows = env.rows()
    assert len(rows) == 1 and rows[0].id == refused.message_id
    assert env.queued() == 0
    assert env.event(refused.message_id, Kind.REJECTED).detail["segment"] == \
        "Bundle.entry[1].resource"
    outcome = json.loads(refused.replies[0])
    assert outcome["resourceType"] == "OperationOutcome"

    good = bundle("transaction", "ONE", "TWO")
    receipt = await channel.deliver(good, meta(good, "http"))
    assert receipt.status is MessageStatus.ACCEPTED
    assert [p.index for p in receipt.parts] == [0, 1]
    assert all(p.status is MessageStatus.ACCEPTED for p in receipt.parts)
    issues = json.loads(receipt.replies[0])["issue"]
    assert [i["expression"] for i in issues] == [["Bundle.entry[0].resource"],
                                                 ["Bundle.entry[1].resource"]]
    assert env.queued() == 2
    received = env.event(receipt.parts[0].message_id, Kind.RECEIVED).detail
    assert received["split_from"] == 0 and received["parts"] == 2


async def test_a_fhir_batch_bundle_takes_each_part_on_its_own(env):
    channel = fhir_channel(env)
    raw = bundle("batch", "ONE", "BAD")
    receipt = await channel.deliver(raw, meta(raw, "http"))
    assert [p.status for p in receipt.parts] == [MessageStatus.ACCEPTED, MessageStatus.ERROR]
    assert receipt.status is MessageStatus.ERROR
    assert [p.segment for p in receipt.problems] == ["Bundle.entry[1].resource"]
    assert env.queued() == 1


async def test_reprocess_runs_the_same_steps_again_with_new_output(env):
    channel = env.channel()
    first = await channel.deliver(adt("C1", "BAD"), meta(adt("C1", "BAD")))
    assert first.status is MessageStatus.ERROR and env.queued() == 0
    raw = env.store.open_raw(first.message_id)
    status = await channel.reprocess(first.message_id, raw, HL7_MAPPING_V2, "analyst")
    assert status is MessageStatus.ACCEPTED
    assert env.outputs(first.message_id) == 1 and env.queued() == 1
    assert env.kinds(first.message_id)[-3:] == ["reprocessed", "mapped", "queued"]
    reprocessed = env.event(first.message_id, Kind.REPROCESSED)
    assert reprocessed.actor == "analyst" and reprocessed.detail == {"mapping": "test-adt@2"}
    assert [(r.status, r.error) for r in env.rows()] == [("accepted", None)]
    assert env.worker.notified == 1


async def test_reprocess_records_the_patient_stored_with_the_message(env):
    """A patient's report finds a message's hops through the pseudonym on its row
    (engine.store.schema.MESSAGE_HOPS), so a reprocess records that one; a row an older
    engine left without one gets what this parse reads."""
    channel = env.channel()
    first = await channel.deliver(adt("C1", "BAD"), meta(adt("C1", "BAD")))
    raw = env.store.open_raw(first.message_id)
    [row] = env.rows()
    assert row.patient == env.vault.pseudonym("C1-MRN")
    with env.db.begin() as conn:  # as if an older parser had found no patient in PID-3
        conn.execute(messages.update().values(patient=None))
    await channel.reprocess(first.message_id, raw, HL7_MAPPING_V2, "analyst")
    assert env.rows()[0].patient == row.patient
    assert {e.patient for e in env.events if e.message_id == first.message_id} == {
        row.patient}
    with env.db.begin() as conn:  # as if this parse read a different identifier
        conn.execute(messages.update().values(patient="0" * 32))
    await channel.reprocess(first.message_id, raw, HL7_MAPPING_V2, "analyst")
    assert env.rows()[0].patient == "0" * 32
    assert [e.patient for e in env.events if e.kind is Kind.REPROCESSED] == [
        row.patient, "0" * 32]


async def test_reprocess_refuses_a_bundle_the_channel_splits(env):
    channel = fhir_channel(env)
    raw = bundle("transaction", "ONE", "BAD")
    refused = await channel.deliver(raw, meta(raw, "http"))
    status = await channel.reprocess(refused.message_id, raw, None, "analyst")
    assert status is MessageStatus.REJECTED
    row = env.rows()[0]
    assert row.error.startswith("a Bundle this channel splits cannot be reprocessed")


async def test_the_state_machine(env):
    channel = env.channel()
    assert channel.state is State.STOPPED
    await channel.start()
    assert channel.state is State.STARTED and env.source.deliver == channel.deliver
    assert env.worker.started == 1
    await channel.pause()
    assert channel.state is State.PAUSED and env.source.stopped == 1
    await channel.resume()
    assert channel.state is State.STARTED
    await channel.stop()
    assert channel.state is State.STOPPED and env.worker.stopped == 1
    assert channel.describe() == {"name": "adt", "state": "stopped",
                                  "source": {"type": "fake"}, "mapping": "test-adt@1",
                                  "shadow": None, "destinations": ["ehr"],
                                  "last_error": None}


async def test_a_source_that_cannot_start_puts_the_channel_in_error(env):
    env.source.refuse = True
    channel = env.channel()
    before = time.time()
    await channel.start()
    assert channel.state is State.ERROR
    assert channel.last_error == "source could not start: Address already in use"
    assert channel.last_error_at is not None and channel.last_error_at >= before
    assert env.worker.stopped == 1
