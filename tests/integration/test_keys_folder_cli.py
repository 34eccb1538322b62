"""The commands against a real store whose keys folder is wrong (issue 14, from a
new-user trial of the production README): `conduit run` refuses an empty keys folder, or
another store's keys, for a store that has audit events, and `conduit audit verify` makes
no keys anywhere; with the right folder both carry on and the chain verifies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from tests.e2e.support import REPO, clean_env

RUN_LIMIT = 30.0  # seconds: a refusal is immediate; an engine that starts never exits


def _conf(tmp_path: Path, name: str, db_url: str, keys: Path) -> str:
    (tmp_path / "channels").mkdir(exist_ok=True)
    conf = tmp_path / f"{name}.yaml"
    conf.write_text(f"data_dir: {tmp_path / 'data'}\nchannels_dir: {tmp_path / 'channels'}\n"
                    f"store:\n  url: {db_url}\nweb:\n  port: 0\n"
                    f"keys:\n  directory: {keys}\n")
    return str(conf)


def _run(conf: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([sys.executable, "-m", "engine.cli", "--conf", conf, "run"],
                              cwd=REPO, env=clean_env(), capture_output=True, text=True,
                              timeout=RUN_LIMIT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"conduit run started (still running after {RUN_LIMIT:.0f}s) instead "
                    "of refusing the keys folder")


@pytest.fixture
def store_with_events(tmp_path, db_url, monkeypatch, capsys):
    """A store with audit events, made by a command with the right keys folder."""
    monkeypatch.delenv("CONDUIT_KEY", raising=False)
    right = _conf(tmp_path, "right", db_url, tmp_path / "keys")
    assert main(["--conf", right, "users", "add", "alice", "--role", "admin"]) == 0
    assert main(["--conf", right, "audit", "verify"]) == 0
    assert capsys.readouterr().out.endswith("ok 1 events\n")
    return right


def test_run_refuses_an_empty_keys_folder_and_verify_makes_none(
        tmp_path, db_url, store_with_events, capsys):
    empty = tmp_path / "empty"
    wrong = _conf(tmp_path, "wrong", db_url, empty)
    assert main(["--conf", wrong, "audit", "verify"]) != 0
    err = capsys.readouterr().err
    assert f"no keys in {empty}" in err and "only reads" in err and "BROKEN" not in err
    assert not empty.exists()  # a reading command makes no keys

    empty.mkdir(mode=0o700)
    refused = _run(wrong)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert f"the keys folder {empty} lacks" in refused.stderr
    assert "already holds audit events or messages" in refused.stderr
    assert "CONDUIT_KEYS_DIR" in refused.stderr and "Traceback" not in refused.stderr
    assert list(empty.iterdir()) == []

    assert main(["--conf", store_with_events, "audit", "verify"]) == 0
    assert capsys.readouterr().out.startswith("ok 1 events")  # the chain is intact


def test_run_refuses_another_stores_audit_key(tmp_path, db_url, store_with_events, capsys):
    other = _conf(tmp_path, "other", f"sqlite:///{tmp_path / 'other.db'}", tmp_path / "other")
    assert main(["--conf", other, "users", "add", "bob", "--role", "admin"]) == 0  # its keys
    capsys.readouterr()
    foreign = _conf(tmp_path, "foreign", db_url, tmp_path / "other")
    refused = _run(foreign)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert f"the audit key in {tmp_path / 'other'} does not continue" in refused.stderr
    assert main(["--conf", store_with_events, "audit", "verify"]) == 0
    assert capsys.readouterr().out.startswith("ok 1 events")


def test_public_key_is_made_only_beside_the_stores_keys(
        tmp_path, db_url, store_with_events, capsys):
    empty = tmp_path / "empty"
    wrong = _conf(tmp_path, "wrong", db_url, empty)
    assert main(["--conf", wrong, "audit", "public-key"]) != 0
    assert f"no keys in {empty}" in capsys.readouterr().err
    assert not empty.exists()  # no signing key made where a wrong setting points

    assert main(["--conf", store_with_events, "audit", "public-key"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("-----BEGIN PUBLIC KEY-----")
    assert (tmp_path / "keys" / "audit-signing.key").exists()
    assert main(["--conf", store_with_events, "audit", "public-key"]) == 0
    assert capsys.readouterr().out == first  # the same key each time
