"""The restore drill (issue 15): back up the embedded store under MLLP load, lose the
data folder, restore, verify the audit chain, resume, and find every message that was
acknowledged before the backup started delivered.

The FHIR receiver is down in the way that queues most: it takes each request and never
answers, so its destination's head stays in flight and everything behind it waits.
What the snapshot holds decides what happens after the restore, exactly:

- every message acknowledged before the backup started is in the snapshot;
- after the restore each destination gets, once each, exactly the entries the snapshot
  had queued (ready, or leased by the dead engine), and nothing else;
- so the only duplicates a receiver can see are deliveries made between the snapshot
  and the loss (here: files the files destination wrote then, which it writes again);
- messages acknowledged after the snapshot are not in it: the drill counts them, and
  docs/operations.md says how the senders' resends close that gap.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import shutil
import sqlite3
from pathlib import Path

from tests.e2e.support import (
    CHANNEL,
    CountingFhirServer,
    Daemon,
    Ledger,
    adt_batch,
    eventually,
    mrns_in,
    send_all,
)
from tests.fhir_server import Answer

CONNECTIONS = 3
PER_CONNECTION = 1000  # more than the drill sends: the senders stop when the engine dies
FILES, FHIR = f"{CHANNEL}/files", f"{CHANNEL}/fhir-server"


def _control_ids(blobs) -> collections.Counter[str]:
    """Control ids of the fake messages found in each blob (their MRN is E2E + id)."""
    return collections.Counter(mrn[3:] for blob in blobs for mrn in mrns_in([blob]))


def _snapshot(backup: Path) -> tuple[set[str], dict[str, set[str]]]:
    """From the backup itself (ids and control ids only, no key needed): the messages it
    holds, and per destination the ones it had queued."""
    with contextlib.closing(sqlite3.connect(f"file:{backup / 'conduit.db'}?mode=ro",
                                            uri=True)) as db:
        stored = {r[0] for r in db.execute("SELECT control_id FROM messages")}
        queued: dict[str, set[str]] = {FILES: set(), FHIR: set()}
        for dest, control_id in db.execute(
                "SELECT q.destination, m.control_id FROM queue q JOIN messages m "
                "ON m.id = q.message_id WHERE q.state IN ('ready', 'leased')"):
            queued.setdefault(dest, set()).add(control_id)
    return stored, queued


async def test_backup_under_load_lose_the_data_folder_restore_and_resume(
        daemon: Daemon, fhir: CountingFhirServer, tmp_path: Path) -> None:
    fhir.default = Answer(delay=600)  # down: takes the request, never answers
    daemon.deliver_to(fhir.url)
    await daemon.start()
    ledger = Ledger()
    senders = [asyncio.create_task(send_all(daemon.mllp_port, batch, ledger,
                                            reconnect=False, pause=0.01))
               for batch in (adt_batch(f"B{c}", PER_CONNECTION) for c in range(CONNECTIONS))]
    await eventually(lambda: len(ledger.acked) >= 60, timeout=20, message="60 ACKs")

    # The backup, while the senders keep sending.
    acked_before = {m.control_id for m in ledger.acked}
    (tmp_path / "backups").mkdir()
    made = await daemon.cli("backup", str(tmp_path / "backups"), "--keys-to",
                            str(tmp_path / "key-copy"))
    assert made.returncode == 0, made.stdout + made.stderr
    assert not all(s.done() for s in senders), "the load ended before the backup did"
    [backup] = list((tmp_path / "backups").iterdir())
    refused = await daemon.cli("restore", str(backup), "--force")
    assert refused.returncode == 2 and "an engine is running" in refused.stderr
    after_backup = len(ledger.acked)
    await eventually(lambda: len(ledger.acked) >= after_backup + 20, timeout=20,
                     message="traffic after the backup")

    # The loss: the engine dies and its data folder (store, keys, outputs) is gone.
    await daemon.crash()
    await asyncio.wait_for(asyncio.gather(*senders), 20)
    files_before_loss = _control_ids(p.read_bytes() for p in daemon.output_files())
    assert not fhir.received, "the receiver was down; nothing should have reached it"
    shutil.rmtree(daemon.data_dir)

    restored = await daemon.cli("restore", str(backup), "--keys-from",
                                str(tmp_path / "key-copy"))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    verify = await daemon.cli("audit", "verify")
    assert verify.returncode == 0 and verify.stdout.startswith("ok "), verify.stdout

    stored, queued = _snapshot(backup)
    assert acked_before <= stored, "acknowledged before the backup, missing from it"
    acked = {m.control_id for m in ledger.acked}
    assert stored <= acked | {m.control_id for m in ledger.unanswered}
    assert acked_before <= queued[FHIR]
    assert acked_before <= files_before_loss.keys() | queued[FILES]

    # The receiver comes back; the restored engine delivers what the snapshot queued.
    fhir.default = Answer()
    await daemon.start()

    def delivered() -> tuple[collections.Counter[str], collections.Counter[str]]:
        return (_control_ids(fhir.bodies()),
                _control_ids(p.read_bytes() for p in daemon.output_files()))

    with contextlib.suppress(AssertionError):  # the asserts below say what differs
        await eventually(lambda: set(delivered()[0]) >= queued[FHIR]
                         and set(delivered()[1]) >= queued[FILES],
                         timeout=30, interval=0.2, message="the snapshot's queue delivered")
    assert await daemon.stop() == 0
    at_fhir, in_files = delivered()
    assert set(at_fhir) == queued[FHIR], "FHIR deliveries differ from the snapshot's queue"
    assert set(in_files) == queued[FILES], "files written differ from the snapshot's queue"
    twice = sorted(cid for c in (at_fhir, in_files) for cid, n in c.items() if n > 1)
    assert not twice, f"delivered twice to one destination: {twice[:5]}"
    assert acked_before <= set(at_fhir)
    assert acked_before <= files_before_loss.keys() | set(in_files)

    verify = await daemon.cli("audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    events = int(re.fullmatch(r"ok (\d+) events\n", verify.stdout)[1])
    assert events > 2 * len(stored)
