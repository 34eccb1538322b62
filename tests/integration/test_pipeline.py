"""The spine over real sockets: MLLP in, mapping, durable queues, file and FHIR out."""

from __future__ import annotations

import asyncio
import json

import sqlalchemy as sa
from fhir.resources.R4B.bundle import Bundle

from engine.store.schema import audit, messages
from tests.fhir_server import Answer
from tests.harness import adt, exchange, free_port


def adt_channel(port: int, fhir_url: str, out: str, extra: str = "") -> str:
    return f"""
    source: {{type: mllp, port: {port}, read_timeout: 1s}}
    filter:
      - field: MSH-9.1
        equals: ADT
    mapping: hl7v2-adt-to-fhir@1
    retry: {{max_attempts: 4, initial_delay: 50ms, max_delay: 200ms, jitter: 0}}
    destinations:
      - {{name: files, type: file, directory: "{out}"}}
      - {{name: fhir, type: fhir, url: "{fhir_url}", timeout: 2s}}
    {extra}
    """


def _kinds(engine, message_id: str) -> list[tuple[str, str | None]]:
    with engine.services.db.connect() as conn:
        rows = conn.execute(sa.select(audit.c.kind, audit.c.destination)
                            .where(audit.c.message_id == message_id)
                            .order_by(audit.c.seq)).all()
    return [(r.kind, r.destination) for r in rows]


def _message_rows(engine):
    with engine.services.db.connect() as conn:
        return conn.execute(sa.select(messages).order_by(messages.c.received_at)).all()


async def test_adt_flows_to_file_and_fhir_server_with_every_hop_audited(harness, fhir, tmp_path):
    port = free_port()
    engine = await harness.start({"adt": adt_channel(port, fhir.url, tmp_path / "out")})
    [ack] = await exchange(port, [adt("C1", "MRN001")])
    assert ack.value("MSA-1") == "AA"
    assert ack.value("MSA-2") == "C1"
    [request] = await fhir.wait_for(1)
    assert request.method == "POST" and request.path == "/fhir"
    assert request.headers["Content-Type"].startswith("application/fhir+json")
    bundle = request.json()
    Bundle.model_validate(bundle)
    assert bundle["type"] == "transaction"
    assert [e["request"]["method"] for e in bundle["entry"]] == ["PUT", "PUT"]
    await harness.settle(lambda: len(list((tmp_path / "out").glob("*.json"))) == 1)
    [out_file] = (tmp_path / "out").glob("*.json")
    assert json.loads(out_file.read_bytes()) == bundle
    message_id = out_file.stem
    await harness.settle(lambda: len(_kinds(engine, message_id)) == 8)
    kinds = _kinds(engine, message_id)
    assert kinds[:4] == [("received", None), ("parsed", None), ("mapped", None),
                         ("queued", "files")]
    assert set(kinds[4:]) == {("queued", "fhir"), ("acknowledged", None), ("sent", "files"),
                              ("sent", "fhir")}


async def test_redelivered_message_updates_the_same_patient(harness, fhir, tmp_path):
    port = free_port()
    await harness.start({"adt": adt_channel(port, fhir.url, tmp_path / "out")})
    await exchange(port, [adt("C1", "MRN002"), adt("C2", "MRN002", event="A08")])
    first, second = await fhir.wait_for(2)
    urls = [[e["request"]["url"] for e in r.json()["entry"]] for r in (first, second)]
    assert urls[0] == urls[1]


async def test_filtered_message_is_acknowledged_and_recorded(harness, fhir, tmp_path):
    port = free_port()
    engine = await harness.start({"adt": adt_channel(port, fhir.url, tmp_path / "out")})
    oru = adt("C9", "MRN003").replace(b"ADT^A01^ADT_A01", b"ORU^R01^ORU_R01")
    [ack] = await exchange(port, [oru])
    assert ack.value("MSA-1") == "AA"
    [row] = _message_rows(engine)
    assert row.status == "filtered"
    assert "MSH-9.1 equals 'ADT'" in row.error
    assert _kinds(engine, row.id)[2][0] == "filtered"
    await asyncio.sleep(0.3)
    assert fhir.received == []


BAD_INPUTS = {
    "no MSH": (b"PID|1||123^^^X^MR||DOE^JOHN\r", "100"),
    "wrong delimiters": (b"MSH|^^\\&|A|B|C|D|20240101||ADT^A01|X1|P|2.5\r", "102"),
    "truncated": (b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|\r", "101"),
    # MLLP cannot carry its own frame bytes, so junk inside one frame lacks 0x0B and 0x1C.
    "binary junk": (bytes(b for b in range(256) if b not in (0x0B, 0x1C)) * 4, None),
    "no message type": (b"MSH|^~\\&|A|B|C|D|20240101|||X2|P|2.5\rPID|1\r", "101"),
}


async def test_bad_input_gets_ar_with_err_and_is_kept(harness, fhir, tmp_path):
    port = free_port()
    engine = await harness.start({"adt": adt_channel(port, fhir.url, tmp_path / "out")})
    payloads = [raw for raw, _ in BAD_INPUTS.values()] + [adt("OK1", "MRN004")]
    acks = await exchange(port, payloads)  # one connection: it must survive every bad frame
    for (name, (_, code)), ack in zip(BAD_INPUTS.items(), acks, strict=False):
        assert ack.value("MSA-1") == "AR", name
        assert ack.segment("ERR") is not None, name
        if code:
            assert ack.value("ERR-3.1") == code, name
    assert acks[-1].value("MSA-1") == "AA"
    rows = _message_rows(engine)
    assert [r.status for r in rows] == ["rejected"] * len(BAD_INPUTS) + ["accepted"]
    for row, (raw, _) in zip(rows, BAD_INPUTS.values(), strict=False):
        stored = await engine.services.store.read(engine.services.writer, row.id,
                                                   actor="test", reason="inspect rejected")
        assert stored == raw
    await fhir.wait_for(1)


async def test_oversize_frame_is_rejected_and_connection_survives(harness, fhir, tmp_path):
    port = free_port()
    channel = adt_channel(port, fhir.url, tmp_path / "out").replace(
        "read_timeout: 1s", "read_timeout: 5s, max_message_size: 100KiB")
    engine = await harness.start({"adt": channel})
    big = adt("BIG", "MRN005") + b"NTE|1||" + b"x" * 300_000 + b"\r"
    acks = await exchange(port, [big, adt("AFTER", "MRN006")])
    assert acks[0].value("MSA-1") == "AR"
    assert acks[0].value("MSA-2") == "BIG"
    assert "over this channel's limit" in acks[0].value("ERR-8")
    assert acks[1].value("MSA-1") == "AA"
    rejected = _message_rows(engine)[0]
    assert rejected.status == "rejected" and rejected.size < len(big)


async def test_mapping_error_gets_ae_and_channel_goes_on(harness, fhir, tmp_path):
    port = free_port()
    engine = await harness.start({"adt": adt_channel(port, fhir.url, tmp_path / "out")})
    no_pid3 = adt("E1", "MRN007").replace(b"PID|1||MRN007^^^NORTHWING^MR|", b"PID|1|||")
    acks = await exchange(port, [no_pid3, adt("E2", "MRN008")])
    assert acks[0].value("MSA-1") == "AE"
    assert "PID-3" in acks[0].value("ERR-8")
    assert acks[1].value("MSA-1") == "AA"
    errored = _message_rows(engine)[0]
    assert errored.status == "error" and "PID-3" in errored.error
    assert ("errored", None) in _kinds(engine, errored.id)
    await fhir.wait_for(1)


async def test_retries_keep_fifo_order_and_block_only_that_destination(harness, fhir, tmp_path):
    fhir.script.extend([Answer(503), Answer(429, headers={"Retry-After": "0"}), Answer(503)])
    port = free_port()
    engine = await harness.start({"adt": adt_channel(port, fhir.url, tmp_path / "out")})
    acks = await exchange(port, [adt(f"F{i}", f"MRN1{i}") for i in range(5)])
    assert {a.value("MSA-1") for a in acks} == {"AA"}
    # The file destination is not held up by the failing FHIR server.
    await harness.settle(lambda: len(list((tmp_path / "out").glob("*.json"))) == 5)
    received = await fhir.wait_for(5)
    mrns = [r.json()["entry"][0]["resource"]["identifier"][0]["value"] for r in received]
    assert mrns == [f"MRN1{i}" for i in range(5)]
    assert engine.services.stats.count("retried", "adt", "fhir") == 3
    assert engine.services.stats.count("retried", "adt", "files") == 0


async def test_permanent_http_error_dead_letters_at_once(harness, fhir, tmp_path):
    fhir.script.append(Answer(400))
    port = free_port()
    engine = await harness.start({"adt": adt_channel(port, fhir.url, tmp_path / "out")})
    await exchange(port, [adt("D1", "MRN020"), adt("D2", "MRN021")])
    [delivered] = await fhir.wait_for(1)
    assert delivered.json()["entry"][0]["resource"]["identifier"][0]["value"] == "MRN021"
    await harness.settle(lambda: engine.services.stats.count("dead-lettered") == 1)
    stats = {s.destination: s for s in engine.services.queue.stats()}
    assert stats["adt/fhir"].dead == 1
    assert engine.services.stats.count("retried") == 0


async def test_exhausted_retries_dead_letter(harness, fhir, tmp_path):
    fhir.default = Answer(503)
    port = free_port()
    engine = await harness.start({"adt": adt_channel(port, fhir.url, tmp_path / "out")})
    await exchange(port, [adt("X1", "MRN030")])
    await harness.settle(lambda: engine.services.stats.count("dead-lettered") == 1)
    assert engine.services.stats.count("retried", "adt", "fhir") == 3  # max_attempts 4
    [row] = _message_rows(engine)
    assert _kinds(engine, row.id)[-1] == ("dead-lettered", "fhir")


async def test_slow_and_silent_clients_are_timed_out_without_blocking_others(
        harness, fhir, tmp_path):
    port = free_port()
    await harness.start({"adt": adt_channel(port, fhir.url, tmp_path / "out")})
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\x0bMSH|^~\\&|HALF")  # a frame that never ends
    await writer.drain()
    [ack] = await exchange(port, [adt("OTHER", "MRN040")])
    assert ack.value("MSA-1") == "AA"
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the engine
    writer.close()


async def test_failing_channel_does_not_hold_up_another(harness, fhir, tmp_path):
    fhir.default = Answer(503)
    p1, p2 = free_port(), free_port()
    await harness.start({
        "failing": adt_channel(p1, fhir.url, tmp_path / "out1"),
        "healthy": f"""
        source: {{type: mllp, port: {p2}}}
        destinations:
          - {{name: files, type: file, directory: "{tmp_path / 'out2'}"}}
        """,
    })
    await exchange(p1, [adt("A", "MRN050")])
    await exchange(p2, [adt("B", "MRN051")])
    await harness.settle(lambda: len(list((tmp_path / "out2").glob("*.hl7"))) == 1)
    [raw] = (tmp_path / "out2").glob("*.hl7")
    assert raw.read_bytes() == adt("B", "MRN051")


async def test_many_concurrent_connections_all_acknowledged(harness, fhir, tmp_path):
    port = free_port()
    engine = await harness.start({"adt": adt_channel(port, fhir.url, tmp_path / "out")})
    batches = [[adt(f"P{c}-{i}", f"MRN6{c}{i:02d}") for i in range(20)] for c in range(8)]
    results = await asyncio.gather(*(exchange(port, b) for b in batches))
    assert all(a.value("MSA-1") == "AA" for acks in results for a in acks)
    await fhir.wait_for(160)
    with engine.services.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar() == 160
