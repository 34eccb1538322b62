"""The README's production section, run as written: a new database, the example copied,
the variables exported, and `scripts/run --conf conf/production.yaml --workers 2`. It
runs in a folder shaped like a checkout (links to this one's code, channels and
mappings) so the copy and the data land there, on a database and Redis keys of its own;
ports come from the environment, as an operator moving off the defaults would set them."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import uuid
from pathlib import Path

import redis
import sqlalchemy as sa

from tests.conftest import PG_ADMIN_URL
from tests.e2e.support import REPO, clean_env, eventually, free_port, run_tool
from tests.e2e.test_workers import listening

SECTION = re.search(r"## Production: a cluster on PostgreSQL and Redis\n(.*?)\n## ",
                    (REPO / "README.md").read_text(), re.S).group(1)
COMMANDS = re.search(r"```sh\n(.*?)```", SECTION, re.S).group(1)
FIXTURE = REPO / "mappings" / "hl7v2-adt-to-fhir" / "fixtures" / "v1" / "epic_a01_admit.hl7"


def _checkout(tmp_path: Path) -> Path:
    root = tmp_path / "conduit"
    root.mkdir()
    for name in (".venv", "scripts", "engine", "channels", "mappings", "pyproject.toml"):
        (root / name).symlink_to(REPO / name)
    (root / "conf").mkdir()
    for name in ("production.example.yaml", "conduit.yaml"):
        (root / "conf" / name).write_bytes((REPO / "conf" / name).read_bytes())
    return root


def _drop(database: str, prefix: str) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    admin.dispose()
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    keys = list(client.scan_iter(f"{{{prefix}}}*"))
    if keys:
        client.delete(*keys)
    client.close()


async def test_the_readme_starts_a_two_worker_cluster_that_takes_and_delivers_messages(
        tmp_path: Path) -> None:
    assert "--workers 2" in COMMANDS and "createdb" in COMMANDS
    root = _checkout(tmp_path)
    database, prefix = f"conduit_readme_{uuid.uuid4().hex[:10]}", f"readme-{uuid.uuid4().hex[:8]}"
    lines = COMMANDS.strip().splitlines()
    script = "\n".join([*lines[:-1], "exec " + lines[-1]])
    script = script.replace("-U postgres conduit", f"-U postgres {database}")
    mllp, web = free_port(), free_port()
    env = clean_env()
    env.update({"CONDUIT_EXTRAS": "test", "CONDUIT_DB_NAME": database,
                "CONDUIT_QUEUE_PREFIX": prefix, "CONDUIT_MLLP_PORT": str(mllp),
                "CONDUIT_WEB_PORT": str(web), "CONDUIT_FHIR_PORT": str(free_port()),
                "CONDUIT_SCRIPT_PORT": str(free_port())})
    log = tmp_path / "cluster.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", script], cwd=root, env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        await eventually(lambda: proc.poll() is None and len(listening(mllp)) == 2,
                         timeout=60, message="two workers listening on the MLLP port")
        sent = await run_tool(str(root / ".venv" / "bin" / "conduit"), "send", "--mllp",
                              f"127.0.0.1:{mllp}", str(FIXTURE), env=env, cwd=root)
        assert sent.returncode == 0 and sent.stdout.split()[-1] in ("AA", "CA"), sent
        out = root / "data" / "out" / "adt-to-fhir"
        await eventually(lambda: out.is_dir() and any(out.iterdir()), timeout=30,
                         message="the message delivered as FHIR by the cluster")
        assert (root / "conf" / "production.yaml").exists()
        assert oct((root / "data" / "keys").stat().st_mode & 0o777) == "0o700"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 60) == 0, log.read_text()[-3000:]
        assert "starting 2 workers" in log.read_text()
        # A Redis without appendonly is warned of once for the group, not once per worker.
        client = redis.Redis.from_url("redis://127.0.0.1:6379/0", decode_responses=True)
        aof = client.config_get("appendonly")["appendonly"]
        client.close()
        assert log.read_text().count("runs without appendonly") == (aof != "yes")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        await asyncio.to_thread(_drop, database, prefix)
