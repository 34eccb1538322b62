"""PHI stays in the encrypted store and the delivered outputs. A distinctive fake patient
goes through every path a message can take (accepted, mapping error, rejected, filtered,
dead-lettered at the receiver) with debug logging on; afterwards nothing the engine wrote
outside data/out/ may hold the name, the MRN or the birth date in clear."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from tests.e2e.support import (
    Adt,
    CountingFhirServer,
    Daemon,
    ack_code,
    eventually,
    exchange_one,
)
from tests.fhir_server import Answer

FAMILY, GIVEN, MRN, DOB = "ZYXWVUTSON", "QUENTINA", "MRNPHI8675309", "19010203"
NEEDLES = [FAMILY, GIVEN, MRN, DOB, "1901-02-03"]

PATIENT = Adt(control_id="PHI0001", mrn=MRN, family=FAMILY, given=GIVEN, birth_date=DOB)


def garbled(text: str) -> str:
    """The same message with the PID segment wrapped mid-field, as a text editor or a
    mail gateway does: the line after the break no longer starts with a segment name."""
    return text.replace("|12 ELM ST^^", "|12 ELM\rST^^")


def phi_hits(blobs: dict[str, bytes]) -> list[str]:
    """Every (place, needle) where a piece of the patient's PHI appears, compared as raw
    bytes and lowercased."""
    hits = []
    for place, blob in blobs.items():
        lowered = blob.lower()
        for needle in NEEDLES:
            if needle.encode() in blob or needle.lower().encode() in lowered:
                hits.append(f"{place}: {needle}")
    return hits


def files_under(folder: Path, *, skip: Path | None = None) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and (skip is None or not p.is_relative_to(skip))}


@pytest.mark.parametrize("run_args", [(), ("--workers", "2")], ids=["one", "workers"])
async def test_no_phi_outside_the_encrypted_store(daemon: Daemon, fhir: CountingFhirServer,
                                                   run_args: tuple[str, ...]) -> None:
    """Logs (debug, the supervisor's and every worker's), the SQLite files (with
    -wal/-shm), the key folder, every audit row and the operators' CLI views are searched
    for the patient; none may show up. The same search on the delivered outputs must find
    the patient, or it proves nothing."""
    fhir.script.append(Answer(400))  # the first delivery is dead-lettered
    daemon.deliver_to(fhir.url)
    await daemon.start(*run_args)
    accepted_update = replace(PATIENT, control_id="PHI0002", event="A08")
    # hl7v2-adt-to-fhir@4 maps what it can of a PID (a bad date is a warning); an ADT
    # without PID is its mapping error, the patient still named in NK1 and PV1-19.
    update = replace(PATIENT, control_id="PHI0003", event="A08").text()
    pid = next(line for line in update.split("\r") if line.startswith("PID|"))
    map_error = update.replace(pid, f"NK1|1|{FAMILY}^{GIVEN}|SEL||||||||||||F|{DOB}")
    transfer = replace(PATIENT, control_id="PHI0004", event="A02")
    lab = replace(PATIENT, control_id="PHI0005", message_type="ORU", event="R01")
    sends: list[tuple[str, bytes, str]] = [
        ("admission", PATIENT.payload(), "AA"),
        ("update", accepted_update.payload(), "AA"),
        ("mapping error", map_error.encode(), "AE"),
        ("wrapped line", garbled(replace(PATIENT, control_id="PHI0006").text()).encode(), "AR"),
        ("no MSH", PATIENT.text()[1:].encode(), "AR"),
        ("A02 filtered", transfer.payload(), "AA"),
        ("ORU filtered", (lab.text() + "OBX|1|ST|GLU^Glucose||ZYXWVUTSON 1901-02-03\r"
                          ).encode(), "AA"),
    ]
    for what, payload, expected in sends:
        reply = await exchange_one(daemon.mllp_port, payload)
        assert ack_code(reply) == expected, f"{what}: {reply!r}"
    await fhir.wait_for(1, timeout=20)
    await eventually(lambda: len(daemon.output_files()) == 2, timeout=10,
                     message="both accepted messages written to data/out")
    db = daemon.data_dir / "conduit.db"
    with sqlite3.connect(db) as conn:
        statuses = sorted(s for (s,) in conn.execute("SELECT status FROM messages"))
        message_ids = [i for (i,) in conn.execute("SELECT id FROM messages")]
    assert statuses == ["accepted", "accepted", "error", "filtered", "filtered", "rejected",
                        "rejected"]

    commands = [("queue", "list")] + [("audit", "show", "--message", m) for m in message_ids]
    results = await asyncio.gather(*(daemon.cli(*c) for c in commands))
    views = {" ".join(c): r for c, r in zip(commands, results, strict=True)}
    out = daemon.data_dir / "out"
    # While running, the write-ahead log still holds the newest pages: search it too.
    searched = {f"{k} (running)": v for k, v in files_under(daemon.data_dir, skip=out).items()}
    assert any(k.endswith("-wal (running)") for k in searched)
    assert await daemon.stop() == 0, daemon.logs()[-6000:]

    searched.update(files_under(daemon.data_dir, skip=out))
    searched.update({str(p): p.read_bytes() for p in daemon.log_files})
    searched.update({f"`conduit {k}`": (v.stdout + v.stderr).encode()
                     for k, v in views.items()})
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM audit ORDER BY seq").fetchall()
    assert len(rows) > 20
    searched.update({f"audit row #{r['seq']}": repr(tuple(r)).encode() for r in rows})

    keys = sorted((daemon.data_dir / "keys").glob("*.key"))
    assert keys and all(str(k) in searched for k in keys)
    assert {oct(k.stat().st_mode & 0o777) for k in keys} == {"0o600"}, "keys readable by others"
    assert str(db) in searched
    assert " DEBUG " in daemon.logs(), "the daemon did not log at debug level"
    assert phi_hits(searched) == []

    # The search works: the outputs, PHI by design, hold the patient.
    delivered = phi_hits(files_under(out))
    for needle in (FAMILY, GIVEN, MRN, "1901-02-03"):
        assert any(hit.endswith(f": {needle}") for hit in delivered), needle
