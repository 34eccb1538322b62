"""conf/systemd/conduit.service: systemd accepts the unit as shipped, and the command it
starts is one `conduit` understands (a worker group on the production settings)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from engine.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "conf" / "systemd" / "conduit.service"


def _exec_start() -> list[str]:
    line = next(x for x in UNIT.read_text().splitlines() if x.startswith("ExecStart="))
    return shlex.split(line.partition("=")[2])


def test_systemd_verifies_the_unit_with_its_command_in_place(tmp_path):
    conduit = Path(sys.executable).parent / "conduit"
    assert conduit.exists()
    text = UNIT.read_text().replace("/opt/conduit/.venv/bin/conduit", str(conduit))
    unit = tmp_path / "conduit.service"
    unit.write_text(text)
    checked = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                             text=True, timeout=60)
    problems = [line for line in (checked.stdout + checked.stderr).splitlines()
                if "conduit.service" in line]
    assert checked.returncode == 0 and not problems, checked.stdout + checked.stderr


def test_the_unit_starts_a_worker_group_on_the_production_settings():
    argv = _exec_start()
    assert Path(argv[0]).name == "conduit"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run" and len(args.workers) >= 2
    assert args.conf.endswith("production.yaml")
    text = UNIT.read_text()
    # The supervisor gets SIGTERM and drains its workers; systemd waits for the drain.
    assert "KillMode=mixed" in text and "KillSignal=SIGTERM" in text
