"""What a sender gets back over MLLP: enhanced-mode commit and application ACKs, batch
ACKs, and validation verdicts, through a real channel."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa

from engine.connectors.mllp_framing import Framer, wrap
from engine.formats.hl7v2 import Hl7Message, Hl7v2Codec
from engine.store.schema import messages
from tests.harness import adt, free_port


async def _frames(port: int, payload: bytes, expect: int, timeout: float = 5.0,
                  quiet: float = 0.1) -> list[bytes]:
    """Send one frame and collect `expect` reply frames, then `quiet` seconds more to see
    that no unrequested acknowledgement follows."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framer, frames = Framer(10 * 1024 * 1024), []
    writer.write(wrap(payload))
    await writer.drain()
    try:
        while len(frames) < expect:
            frames += framer.feed(await asyncio.wait_for(reader.read(65536), timeout))
        try:
            extra = await asyncio.wait_for(reader.read(65536), quiet)
            frames += framer.feed(extra)
        except TimeoutError:
            pass
    finally:
        writer.close()
    return [f.payload for f in frames]


async def _replies(port: int, payload: bytes, expect: int) -> list[Hl7Message]:
    return [Hl7Message.parse(f.decode()) for f in await _frames(port, payload, expect)]


async def _batch_reply(port: int, payload: bytes) -> tuple[Any, list[Hl7Message]]:
    """The one batch acknowledgement a batch gets: its envelope and its ACKs."""
    [frame] = await _frames(port, payload, 1)
    batch = Hl7v2Codec().split_batch(frame)
    assert batch is not None, frame
    return batch, [Hl7Message.parse(m.decode()) for m in batch.messages]


def _enhanced(accept: str, application: str) -> bytes:
    return adt("E1", "MRN1").replace(b"|P|2.5.1\r", f"|P|2.5.1|||{accept}|{application}\r"
                                     .encode(), 1)


def _channel(port: int, tmp_path, extra: str = "") -> str:
    return f"""
        source: {{type: mllp, port: {port}}}
        duplicate_window: 0
        destinations: [{{name: files, type: file, directory: "{tmp_path / 'out'}"}}]
        {extra}
        """


async def test_enhanced_mode_sends_what_msh15_and_msh16_ask_for(harness, tmp_path):
    port = free_port()
    await harness.start({"adt": _channel(port, tmp_path)})
    cases = {("AL", "NE"): ["CA"], ("NE", "AL"): ["AA"], ("AL", "AL"): ["CA", "AA"],
             ("ER", "ER"): [], ("SU", "SU"): ["CA", "AA"]}
    for (accept, application), codes in cases.items():
        got = await _replies(port, _enhanced(accept, application), len(codes))
        assert [a.value("MSA-1") for a in got] == codes, (accept, application)
        assert all(a.value("MSA-2") == "E1" for a in got)


async def test_an_acknowledgement_sent_in_is_stored_and_not_answered(harness, tmp_path):
    """A system that sends its application ACKs to our listener gets no ACK of its ACK
    (it might acknowledge that too, and the two would answer each other for ever)."""
    port = free_port()
    engine = await harness.start({"adt": _channel(port, tmp_path)})
    ack = (b"MSH|^~\\&|LAB|SOUTHWING|CONDUIT|HIE|20240301101500||ACK^A01^ACK|K1|P|2.5.1\r"
           b"MSA|AA|OUT77\r")
    assert await _frames(port, ack, 0, quiet=0.5) == []
    [following] = await _replies(port, adt("F1", "MRN1"), 1)  # the listener carries on
    assert following.value("MSA-1") == "AA"
    with engine.services.db.connect() as conn:
        types = sorted(r.message_type for r in conn.execute(sa.select(messages.c.message_type)))
    assert types == ["ACK^A01", "ADT^A01"]


async def test_batch_is_taken_message_by_message_and_answered_as_a_batch(harness, tmp_path):
    port = free_port()
    engine = await harness.start({"adt": _channel(port, tmp_path)})
    body = b"".join(adt(f"B{i}", f"MRN{i}") for i in range(3))
    broken = b"MSH|^~\\&|EPIC|NORTHWING|||20240301||ADT^A01|B9|P|2.5.1\r\x01junk\r"
    batch = (b"FHS|^~\\&|EPIC|NORTHWING|CONDUIT|HIE|20240301101500||||F123\r"
             b"BHS|^~\\&|EPIC|NORTHWING|CONDUIT|HIE|20240301101500||||BAT7\r"
             + body + broken + b"BTS|4\rFTS|1\r")
    envelope, acks = await _batch_reply(port, batch)
    assert envelope.file_header is not None
    assert envelope.groups[0].header.reference_control_id == "BAT7"
    codes = [(a.value("MSA-1"), a.value("MSA-2")) for a in acks]
    assert codes == [("AA", "B0"), ("AA", "B1"), ("AA", "B2"), ("AR", "B9")]
    await harness.settle(lambda: len(list((tmp_path / "out").glob("*.hl7"))) == 3)
    with engine.services.db.connect() as conn:
        statuses = [r.status for r in conn.execute(sa.select(messages.c.status)
                                                   .order_by(messages.c.id))]
    assert sorted(statuses) == ["accepted", "accepted", "accepted", "rejected"]


async def test_batch_whose_count_is_wrong_is_refused_whole(harness, tmp_path):
    port = free_port()
    engine = await harness.start({"adt": _channel(port, tmp_path)})
    batch = (b"BHS|^~\\&|EPIC|NORTHWING|CONDUIT|HIE|20240301101500||||BAT8\r"
             + adt("C1", "MRN1") + adt("C2", "MRN2") + b"BTS|5\r")
    _, acks = await _batch_reply(port, batch)
    assert {a.value("MSA-1") for a in acks} == {"AR"}
    await asyncio.sleep(0.3)
    assert not list((tmp_path / "out").glob("*.hl7"))
    with engine.services.db.connect() as conn:
        assert [r.status for r in conn.execute(sa.select(messages.c.status))] == ["rejected"]


async def test_strict_validation_rejects_naming_segment_and_field(harness, tmp_path):
    port = free_port()
    await harness.start({"adt": _channel(port, tmp_path, "validation: strict")})
    no_pid3 = adt("V1", "MRN1").replace(b"PID|1||MRN1^^^NORTHWING^MR|", b"PID|1|||")
    [reply] = await _replies(port, no_pid3, 1)
    assert reply.value("MSA-1") == "AR"
    errs = [(e.value(2, 1), e.value(2, 3), e.value(3, 1)) for e in reply.all("ERR")]
    assert ("PID", "3", "101") in errs
    [good] = await _replies(port, adt("V2", "MRN2"), 1)
    assert good.value("MSA-1") == "AA"


async def test_lenient_validation_accepts_and_reports_warnings(harness, tmp_path):
    port = free_port()
    await harness.start({"adt": _channel(port, tmp_path, "validation: lenient")})
    no_pid3 = adt("L1", "MRN1").replace(b"PID|1||MRN1^^^NORTHWING^MR|", b"PID|1|||")
    [reply] = await _replies(port, no_pid3, 1)
    assert reply.value("MSA-1") == "AA"
    warnings = [e for e in reply.all("ERR") if e.value(4) == "W"]
    assert any(w.value(2, 1) == "PID" and w.value(2, 3) == "3" for w in warnings)
    await harness.settle(lambda: len(list((tmp_path / "out").glob("*.hl7"))) == 1)
