"""X12 PHI stays in the encrypted store and the delivered outputs. A distinctive fake
member goes through every X12 path (a claim batch mapped to FHIR, a set refused for its
structure, an interchange refused whole with a TA1, a set that fails its mapping, a
payer's 999 naming our claim) with debug logging on; afterwards the logs, the database
files and the audit trail must not hold the name, the member id or the birth date."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa

from engine.store.schema import audit, messages
from tests.harness import REPO, EngineHarness

FAMILY, GIVEN, MEMBER, DOB = "QWERTYPHIFAM", "ZELDAPHI", "MEMPHI7741", "19020304"
NEEDLES = [FAMILY, GIVEN, MEMBER, DOB, "1902-03-04"]

# a clearinghouse's 837P (the mapping's own fixture), its subscriber made distinctive
SAMPLE = (REPO / "mappings/x12-837-to-fhir/fixtures/v1/837p_subscriber_is_patient.x12"
          ).read_text()
GOOD = SAMPLE[:SAMPLE.index("IEA*1*000004417~") + len("IEA*1*000004417~")].replace(
    "FENWICK*MARGARET", f"{FAMILY}*{GIVEN}").replace("CMH884120031", MEMBER).replace(
    "19780314", DOB)


def channel(inbox: Path, replies: Path, out: Path) -> str:
    return f"""
        source: {{type: file, directory: "{inbox}", reply_directory: "{replies}",
                  poll_interval: 50ms, settle: 100ms}}
        format: x12
        validation: strict
        mapping: x12-837-to-fhir@1
        destinations: [{{name: out, type: file, directory: "{out}"}}]
        """


def hits(blobs: dict[str, bytes]) -> list[str]:
    return [f"{place}: {needle}" for place, blob in blobs.items() for needle in NEEDLES
            if needle.lower().encode() in blob.lower()]


async def test_no_x12_phi_outside_the_encrypted_store(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    inbox, replies, out = tmp_path / "in", tmp_path / "acks", tmp_path / "out"
    inbox.mkdir()
    subscriber = GOOD[GOOD.index(f"NM1*IL*1*{FAMILY}"):GOOD.index("NM1*PR*2*CASCADE")]
    files = {
        "good.x12": GOOD,
        # 2010BA taken out: refused by strict validation with an IK3
        "structure.x12": GOOD.replace(subscriber, "").replace("SE*37*", "SE*33*").replace(
            "000004417", "000004501"),
        "envelope.x12": GOOD.replace("IEA*1*000004417", "IEA*1*000004999"),
        "bad-date.x12": GOOD.replace("DTP*472*D8*20261124", "DTP*472*D8*2026XX24").replace(
            "000004417", "000004502"),
    }
    harness = EngineHarness(tmp_path)
    engine = await harness.start({"claims": channel(inbox, replies, out)})
    try:
        for name, text in files.items():
            (inbox / name).write_text(text)
        await harness.settle(lambda: len(list(replies.glob("*.ack"))) == len(files)
                             if replies.is_dir() else False, 20)
        await harness.settle(lambda: out.is_dir() and len(list(out.iterdir())) >= 1)
        assert engine.services is not None
        with engine.services.db.connect() as conn:
            statuses = sorted(s for (s,) in conn.execute(sa.select(messages.c.status)))
            rows = conn.execute(sa.select(audit)).all()
    finally:
        await harness.stop()
    assert "accepted" in statuses and "rejected" in statuses
    acks = {p.name: p.read_text() for p in replies.glob("*.ack")}
    assert "TA1*000004417" in acks["envelope.x12.ack"]
    assert "IK5*R" in acks["structure.x12.ack"]

    searched = {str(p): p.read_bytes() for p in sorted(tmp_path.rglob("*"))
                if p.is_file() and not p.is_relative_to(out) and not p.is_relative_to(inbox)
                and not p.is_relative_to(replies)}
    searched["logs"] = "\n".join(r.getMessage() for r in caplog.records).encode()
    searched.update({f"audit row {n}": repr(tuple(r)).encode() for n, r in enumerate(rows)})
    assert any(p.endswith("conduit.db") for p in searched)
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    assert hits(searched) == []
    # the search works: the delivered FHIR holds the member
    delivered = {str(p): p.read_bytes() for p in out.iterdir()}
    assert {FAMILY, MEMBER} <= {h.rsplit(": ", 1)[1] for h in hits(delivered)}
