"""scripts/soak, which the issue's figures come from, runs end to end: a short soak of a
group split into taking in and delivering, every message acknowledged and delivered, and
its memory and descriptor samples in the JSON line (it once failed at start-up on any
--workers, after the option learnt role specs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_short_soak_of_a_split_group_delivers_everything_and_samples_its_workers() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "soak.py"), "--minutes", "0.2", "--rate", "20",
         "--workers", "ingest=1,deliver=1", "--warmup", "2", "--every", "3"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["workers"] == "ingest=1,deliver=1"
    assert result["sent"] >= 200 and result["delivered"] >= result["sent"]
    assert result["not_aa"] == 0 and result["exit_code"] == 0
    assert result["rss_last_mb"] > 0 and result["fds_last"] > 0
