"""`conduit keys rotate` against `conduit run --workers 2` taking traffic, with keys from
the file-based KMS: both workers switch to the new key without a restart, the backlog is
re-sealed in the background, the old data key is destroyed once nothing uses it, and
every acknowledged message is delivered and still opens to what was sent."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3

from engine.security.crypto import Vault, content_hash
from engine.security.key_providers import FileKms
from engine.security.keys import KeyRing
from tests.e2e.support import (
    REPO,
    Daemon,
    Ledger,
    adt_batch,
    eventually,
    mrns_in_files,
    send_all,
)

KEYS = """
keys:
  provider: kms
  poll: 100ms
  activate_after: 500ms
  reencrypt_every: 100ms
  reencrypt_batch: 50
  retire_after: 1s
"""


def _rows(daemon: Daemon, sql: str) -> list[tuple]:
    with sqlite3.connect(daemon.data_dir / "conduit.db", timeout=30) as conn:
        return conn.execute(sql).fetchall()


def _status(text: str) -> dict[str, str]:
    """key id -> state, from `conduit keys status`."""
    return dict(re.findall(r"^(k\d{8}T\d{12})\s+(\S+)", text, re.M))


async def test_rotation_under_traffic_with_two_workers_loses_nothing(daemon: Daemon,
                                                                     tmp_path) -> None:
    conf = tmp_path / "conduit.yaml"
    conf.write_text((REPO / "conf" / "conduit.yaml").read_text() + KEYS)
    daemon.env["CONDUIT_CONF"] = str(conf)
    await daemon.start("--workers", "2")
    ledger = Ledger()
    await asyncio.wait_for(send_all(daemon.mllp_port, adt_batch("KR0", 150), ledger), 60)
    before = await daemon.cli("keys", "status")
    assert before.returncode == 0, before.stderr
    [old] = [k for k, state in _status(before.stdout).items() if state == "current"]

    rotated = await daemon.cli("keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    new = re.search(r"new content key (k\S+)", rotated.stdout).group(1)
    await asyncio.wait_for(asyncio.gather(
        *(send_all(daemon.mllp_port, adt_batch(f"KR{n}", 150), ledger) for n in (1, 2))), 90)
    assert len(ledger.acked) == 450, (ledger.other, len(ledger.unanswered))

    async def retired() -> bool:
        status = await daemon.cli("keys", "status")
        return _status(status.stdout) == {new: "current"}

    await eventually(retired, timeout=60, interval=0.3, message="the old key retired")
    await eventually(lambda: ledger.acked_mrns <= mrns_in_files(daemon.output_files()),
                     timeout=60, interval=0.2, message="every acknowledged message delivered")
    assert await daemon.stop(timeout=30) == 0, daemon.logs()[-3000:]

    kms = daemon.data_dir / "kms"
    assert not (kms / "data" / f"{old}.wrapped").exists()
    vault = Vault(KeyRing.open(FileKms(kms)))
    rows = _rows(daemon, "SELECT id, key_id, content, content_hash FROM messages")
    assert len(rows) >= 450 and {key_id for _, key_id, _, _ in rows} == {new}
    for mid, key_id, sealed, digest in rows:
        assert content_hash(vault.open(key_id, sealed, mid)) == digest
    actions = [json.loads(d) for (d,) in _rows(
        daemon, "SELECT detail FROM audit WHERE kind = 'admin' ORDER BY seq")]
    assert [a["key_id"] for a in actions if a.get("action") == "key-rotate"] == [new]
    assert [(a["key_id"], a["how"]) for a in actions if a.get("action") == "key-retire"] == [
        (old, "destroyed")]
    assert sum(a["resealed"] for a in actions if a.get("action") == "key-reencrypt") >= 150
    verified = await daemon.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    logs = daemon.logs()
    assert logs.count(f"content key {new} is now current") == 2  # each worker switched
    assert "key-retire" in logs and not re.search(r"E2EKR\d", logs)  # ids, no patient data
