"""A resent message (same sender, same control id, within the window) is acknowledged
again but never processed twice, also across a restart."""

from __future__ import annotations

import json

import sqlalchemy as sa

from engine.store.schema import audit, messages
from tests.harness import EngineHarness, adt, exchange, free_port


def channel(port: int, out, window: str = "1h") -> str:
    return f"""
        source: {{type: mllp, port: {port}}}
        duplicate_window: {window}
        destinations: [{{name: files, type: file, directory: "{out}"}}]
        """


def statuses(engine) -> list[str]:
    with engine.services.db.connect() as conn:
        return [r.status for r in conn.execute(sa.select(messages.c.status)
                                               .order_by(messages.c.id))]


async def test_resent_message_is_acknowledged_but_not_processed_again(tmp_path):
    port, out = free_port(), tmp_path / "out"
    harness = EngineHarness(tmp_path)
    engine = await harness.start({"adt": channel(port, out)})
    try:
        first = adt("DUP-1", "MRN1")
        other_sender = first.replace(b"|EPIC|", b"|CERNER|")
        acks = await exchange(port, [first, first, other_sender])
        assert [a.value("MSA-1") for a in acks] == ["AA", "AA", "AA"]
        assert [a.value("MSA-2") for a in acks] == ["DUP-1"] * 3
        await harness.settle(lambda: len(list(out.glob("*.hl7"))) == 2)
        assert statuses(engine) == ["accepted", "duplicate", "accepted"]
        with engine.services.db.connect() as conn:
            ids = [r.id for r in conn.execute(sa.select(messages.c.id).order_by(messages.c.id))]
            dup = conn.execute(sa.select(audit.c.detail)
                               .where(audit.c.kind == "duplicate")).scalar_one()
        assert json.loads(dup) == {"original": ids[0]}
    finally:
        await harness.stop()
    # A restart remembers what was taken on within the window.
    again = EngineHarness(tmp_path)
    engine = await again.start({"adt": channel(port, out)})
    try:
        [ack] = await exchange(port, [adt("DUP-1", "MRN1")])
        assert ack.value("MSA-1") == "AA"
        assert statuses(engine)[-1] == "duplicate"
    finally:
        await again.stop()


async def test_window_zero_processes_every_copy(tmp_path):
    port, out = free_port(), tmp_path / "out"
    harness = EngineHarness(tmp_path)
    engine = await harness.start({"adt": channel(port, out, window="0")})
    try:
        await exchange(port, [adt("SAME", "MRN1"), adt("SAME", "MRN1")])
        await harness.settle(lambda: len(list(out.glob("*.hl7"))) == 2)
        assert statuses(engine) == ["accepted", "accepted"]
    finally:
        await harness.stop()
