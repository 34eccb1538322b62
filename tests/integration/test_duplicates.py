"""A resent message (same sender, control id and content, within the window) is
acknowledged again but never processed twice, also across a restart; a new message under
a control id the sender already used is processed and flagged, never dropped."""

from __future__ import annotations

import asyncio
import json
import logging

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


def labsys(control_id: str, mrn: str, family: str) -> bytes:
    return adt(control_id, mrn, family=family).replace(b"|EPIC|", b"|LABSYS|")


REUSE_ALERT = """
alerts:
  interval: 1h
  rules:
    - {name: ids-reused, kind: control_id_reused, channel: "*"}
"""


async def test_reused_control_id_with_other_content_is_a_new_message(tmp_path, caplog):
    """Senders reset their counters: the second patient under REUSE1 must be mapped and
    delivered, with the reuse audited, logged without PHI, counted and alertable."""
    port, out = free_port(), tmp_path / "out"
    harness = EngineHarness(tmp_path, conf=REUSE_ALERT)
    engine = await harness.start({"adt": channel(port, out)})
    caplog.set_level(logging.INFO)
    try:
        first = labsys("REUSE1", "MRN-FIRST-77", "FIRSTPATIENT")
        second = labsys("REUSE1", "MRN-SECOND-88", "SECONDPATIENT")
        acks = await exchange(port, [first, second])
        assert [(a.value("MSA-1"), a.value("MSA-2")) for a in acks] == [("AA", "REUSE1")] * 2
        await harness.settle(lambda: len(list(out.glob("*.hl7"))) == 2)
        delivered = b"".join(f.read_bytes() for f in out.glob("*.hl7"))
        assert b"SECONDPATIENT" in delivered and b"FIRSTPATIENT" in delivered
        assert statuses(engine) == ["accepted", "accepted"]
        with engine.services.db.connect() as conn:
            ids = [r.id for r in conn.execute(sa.select(messages.c.id).order_by(messages.c.id))]
            reused = conn.execute(sa.select(audit.c.message_id, audit.c.detail)
                                  .where(audit.c.kind == "control-id-reused")).one()
        assert reused.message_id == ids[1] and json.loads(reused.detail) == {"original": ids[0]}
        warnings = [r.getMessage() for r in caplog.records
                    if r.levelno == logging.WARNING and "control-id-reused" in r.getMessage()]
        assert len(warnings) == 1 and ids[1] in warnings[0]
        logged = "\n".join(r.getMessage() for r in caplog.records)
        for phi in ("MRN-SECOND-88", "MRN-FIRST-77", "SECONDPATIENT", "FIRSTPATIENT"):
            assert phi not in logged
        summary = await engine.ops.channel("adt")
        assert summary["counts"]["control_id_reused"] == 1
        assert summary["counts"]["duplicate"] == 0
        assert summary["counts"]["received"] == 2
        notes = await engine.alerting.run_once()
        assert [(n.rule, n.reading.subject) for n in notes] == [("ids-reused", "adt")]

        # A true resend of the second is a duplicate, and counted as one.
        [ack] = await exchange(port, [second])
        assert ack.value("MSA-1") == "AA"
        assert statuses(engine) == ["accepted", "accepted", "duplicate"]
        summary = await engine.ops.channel("adt")
        assert summary["counts"]["duplicate"] == 1
        assert summary["counts"]["control_id_reused"] == 1
    finally:
        await harness.stop()


async def test_reuse_while_the_first_is_still_being_committed(tmp_path):
    """Both on one connection's pipeline and on two connections at once: the pending
    entry is compared by content too."""
    port, out = free_port(), tmp_path / "out"
    harness = EngineHarness(tmp_path)
    engine = await harness.start({"adt": channel(port, out)})
    try:
        a, b = labsys("SAME7", "MRN-A", "ALPHA"), labsys("SAME7", "MRN-B", "BRAVO")
        acks = await asyncio.gather(exchange(port, [a]), exchange(port, [b]))
        assert [x[0].value("MSA-1") for x in acks] == ["AA", "AA"]
        await harness.settle(lambda: len(list(out.glob("*.hl7"))) == 2)
        assert sorted(statuses(engine)) == ["accepted", "accepted"]
    finally:
        await harness.stop()


async def test_counts_survive_a_restart(tmp_path):
    """What an operator reads does not go back to zero when the engine restarts; rejected
    input is counted apart from errors."""
    port, out = free_port(), tmp_path / "out"
    harness = EngineHarness(tmp_path)
    engine = await harness.start({"adt": channel(port, out)})
    try:
        acks = await exchange(port, [labsys("C1", "M1", "ONE"), labsys("C1", "M1", "ONE"),
                                     b"this is not HL7"])
        assert [a.value("MSA-1") for a in acks] == ["AA", "AA", "AR"]
        await harness.settle(lambda: len(list(out.glob("*.hl7"))) == 1)
        await harness.settle(lambda: engine.services.stats.channels["adt"]
                             .destinations["files"].counts["sent"] == 1)
        before = (await engine.ops.channel("adt"))["counts"]
    finally:
        await harness.stop()
    assert before["received"] == 3 and before["duplicate"] == 1
    assert before["rejected"] == 1 and before["errored"] == 0 and before["sent"] == 1
    again = EngineHarness(tmp_path)
    engine = await again.start({"adt": channel(port, out)})
    try:
        after = await engine.ops.channel("adt")
        assert after["counts"] == before
        assert after["destinations"][0]["sent"] == 1
        await exchange(port, [labsys("C2", "M2", "TWO")])
        await again.settle(lambda: len(list(out.glob("*.hl7"))) == 2)
        assert (await engine.ops.channel("adt"))["counts"]["received"] == 4
    finally:
        await again.stop()
