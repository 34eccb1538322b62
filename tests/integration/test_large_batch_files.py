"""Large batch files through the file source: over its mapping threshold a file is
handed to the channel as a read-only memory map; an X12 channel reads it set by set
(the streaming path a 100 MB 837 batch takes), any other codec is given plain bytes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from engine.connectors import file_source
from engine.formats.x12 import codec as x12_codec
from engine.store.schema import messages
from tests.harness import EngineHarness, adt
from tests.unit.test_x12_streaming import big_batch


def channel(inbox, replies, out, fmt: str) -> str:
    return f"""
        source: {{type: file, directory: "{inbox}", reply_directory: "{replies}",
                  poll_interval: 50ms, settle: 200ms}}
        format: {fmt}
        destinations: [{{name: out, type: file, directory: "{out}"}}]
        """


@pytest.fixture
def small_thresholds(monkeypatch):
    """The mapped and streaming paths taken by files of a few hundred kB, so the test
    need not write 100 MB."""
    monkeypatch.setattr(file_source, "MAP_ABOVE", 1024)
    monkeypatch.setattr(x12_codec, "STREAM_ABOVE", 1024)


def stored(engine) -> list[tuple[str, str]]:
    with engine.services.db.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(messages.c.status, messages.c.message_type)).all()]


async def test_a_mapped_837_batch_is_taken_set_by_set(tmp_path, small_thresholds):
    inbox, replies, out = tmp_path / "in", tmp_path / "acks", tmp_path / "out"
    inbox.mkdir()
    batch = big_batch(150, 20)  # 150 sets: more than two of the channel's windows
    harness = EngineHarness(tmp_path)
    engine = await harness.start({"claims": channel(inbox, replies, out, "x12")})
    try:
        (inbox / "claims.x12").write_bytes(batch)
        await harness.settle(lambda: (inbox / "done" / "claims.x12").exists(), 30)
    finally:
        await harness.stop()
    assert stored(engine) == [("accepted", "837P")] * 150
    ack = (replies / "claims.x12.ack").read_text()
    assert ack.count("IK5*A") == 150 and "AK9*A*150*150*150" in ack


async def test_a_mapped_hl7_batch_is_read_as_bytes(tmp_path, small_thresholds):
    inbox, replies, out = tmp_path / "in", tmp_path / "acks", tmp_path / "out"
    inbox.mkdir()
    batch = b"".join(adt(f"BIG{n:05d}", f"MRN{n:05d}") for n in range(40))
    assert len(batch) > file_source.MAP_ABOVE
    harness = EngineHarness(tmp_path)
    engine = await harness.start({"adt": channel(inbox, replies, out, "hl7v2")})
    try:
        (inbox / "adt.hl7").write_bytes(batch)
        await harness.settle(lambda: (inbox / "done" / "adt.hl7").exists(), 30)
    finally:
        await harness.stop()
    assert stored(engine) == [("accepted", "ADT^A01")] * 40
