"""The documented production start: copy conf/production.example.yaml to
conf/production.yaml and run `scripts/run --conf conf/production.yaml` (scripts/run puts
its arguments after `conduit run`). Here the copy goes to a temporary folder and its
database is a fresh one on the test PostgreSQL; the command is otherwise the documented
one, through scripts/run, started and stopped as an init system would."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import sqlalchemy as sa

from tests.e2e.support import REPO, clean_env, free_port

EXAMPLE = REPO / "conf" / "production.example.yaml"


def _production_env(tmp_path: Path, pg_url: str) -> tuple[dict[str, str], int]:
    """The environment conf/production.example.yaml reads, pointed at the test's own
    database, folders and free ports; and the web port."""
    url = sa.engine.make_url(pg_url)
    web_port = free_port()
    env = clean_env()
    env.update({
        "CONDUIT_EXTRAS": "test",  # scripts/run finds the test install, installs nothing
        "CONDUIT_DATA_DIR": str(tmp_path / "data"),
        "CONDUIT_KEYS_DIR": str(tmp_path / "keys"),
        "CONDUIT_DB_USER": url.username or "postgres",
        "CONDUIT_DB_PASSWORD": url.password or "",
        "CONDUIT_DB_HOST": url.host or "127.0.0.1",
        "CONDUIT_DB_NAME": url.database or "",
        "CONDUIT_QUEUE_PREFIX": f"conduit-{url.database}",  # the example's Redis queue
        "CONDUIT_WEB_PORT": str(web_port),
        "CONDUIT_MLLP_PORT": str(free_port()),  # the shipped channels' listeners
        "CONDUIT_FHIR_PORT": str(free_port()),
        "CONDUIT_SCRIPT_PORT": str(free_port()),
    })
    return env, web_port


async def _ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"scripts/run exited with {proc.returncode}"
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"not ready within {timeout}s")


def test_the_example_names_the_copy_and_the_command():
    text = EXAMPLE.read_text()
    assert "Copy to conf/production.yaml" in text
    assert "scripts/run --conf conf/production.yaml" in text
    assert "--conf conf/production.yaml" in (REPO / "scripts" / "run").read_text()


async def test_scripts_run_with_conf_starts_the_production_example(tmp_path, pg_url):
    conf = tmp_path / "conf" / "production.yaml"
    conf.parent.mkdir()
    shutil.copy(EXAMPLE, conf)  # "Copy to conf/production.yaml, adjust": nothing to adjust
    env, web_port = _production_env(tmp_path, pg_url)
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen([str(REPO / "scripts" / "run"), "--conf", str(conf)],
                                cwd=REPO, env=env, stdout=fo, stderr=fe,
                                stdin=subprocess.DEVNULL)
    try:
        try:
            await _ready(web_port, proc)
        finally:
            logs = out.read_text(errors="replace") + err.read_text(errors="replace")
        assert "unrecognized arguments" not in logs
        assert " started: " in logs, logs[-2000:]
        assert "store external" in logs, logs[-2000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, logs[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert (tmp_path / "keys").is_dir()  # the example's key folder, not data/keys
    db = sa.create_engine(pg_url)
    try:
        assert "messages" in sa.inspect(db).get_table_names()  # the state is in PostgreSQL
    finally:
        db.dispose()
