"""A claim batch dropped in a folder, through a running engine: a channel with the file
source and `format: x12` stores each transaction set of the batch, moves the file to
done, and writes the 999 beside it in the reply folder for the submitter to collect."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from engine.store.schema import messages
from tests.harness import EngineHarness
from tests.unit.test_x12_codec import CLAIM_837P, STYLES, interchange, style

SECOND_CLAIM = [s.replace("DOE*JANE", "ROE*RICHARD").replace("MEM837", "MEM838")
                .replace("CLM*PAT1*100", "CLM*PAT2*250").replace("CLM1", "CLM2")
                for s in CLAIM_837P]


def channel(inbox, replies, out) -> str:
    return f"""
        source: {{type: file, directory: "{inbox}", pattern: "*.x12",
                  reply_directory: "{replies}", poll_interval: 50ms, settle: 200ms}}
        format: x12
        destinations: [{{name: billing, type: file, directory: "{out}"}}]
        """


@pytest.mark.parametrize("name", sorted(STYLES))
async def test_a_two_claim_837_batch_is_stored_moved_to_done_and_answered_with_a_999(
        tmp_path, name):
    inbox, replies, out = tmp_path / "in", tmp_path / "acks", tmp_path / "out"
    inbox.mkdir()
    # one functional group of two 837P sets, in this clearinghouse's delimiters
    element, *_ = STYLES[name]
    batch = style(interchange([("837", CLAIM_837P), ("837", SECOND_CLAIM)],
                              control="000004711", ack="1"), *STYLES[name])
    harness = EngineHarness(tmp_path)
    engine = await harness.start({"claims": channel(inbox, replies, out)})
    try:
        (inbox / "batch-0001.x12.part").write_bytes(batch)  # the partner's upload ...
        (inbox / "batch-0001.x12.part").rename(inbox / "batch-0001.x12")  # ... finished
        await harness.settle(lambda: (inbox / "done" / "batch-0001.x12").exists())
        await harness.settle(lambda: len(list(out.glob("*"))) == 2 if out.is_dir() else False)
    finally:
        await harness.stop()
    assert engine.services is not None
    with engine.services.db.connect() as conn:
        stored = conn.execute(sa.select(messages.c.status, messages.c.control_id,
                                        messages.c.message_type)
                              .order_by(messages.c.control_id)).all()  # parts commit in any order
    assert [tuple(r) for r in stored] == [("accepted", "000004711-1-0001", "837P"),
                                          ("accepted", "000004711-1-0002", "837P")]
    assert sorted(p.name for p in inbox.iterdir()) == ["done", "error"]
    assert (inbox / "done" / "batch-0001.x12").read_bytes() == batch
    ack = (replies / "batch-0001.x12.ack").read_bytes().decode()
    e = element
    assert ack.startswith(f"ISA{e}") and f"ST{e}999{e}" in ack
    assert f"AK1{e}HC{e}1{e}005010X222A1" in ack
    assert ack.count(f"IK5{e}A") == 2 and f"AK9{e}A{e}2{e}2{e}2" in ack
