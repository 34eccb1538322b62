"""`conduit run --workers 2` on the embedded default: a message resent over separate MLLP
connections is processed once, whichever worker the kernel hands each connection to
(SO_REUSEPORT); every copy after the first is acknowledged (AA, as a resend is) and
stored as a duplicate, and the destination receives the message once."""

from __future__ import annotations

import re
import sqlite3
import subprocess

from engine.connectors.mllp import MllpClient
from tests.e2e.support import Adt, Daemon, ack_code, eventually, mrns_in
from tests.e2e.test_workers import started_workers

MAX_CONNECTIONS = 32  # 4 copies at least, more until both workers have answered one


def served_by(mllp_port: int, client_port: int) -> int | None:
    """The pid of the worker holding the server side of our connection."""
    out = subprocess.run(["ss", "-tnpH", "state", "established",
                          f"( sport = :{mllp_port} and dport = :{client_port} )"],
                         capture_output=True, text=True, check=True).stdout
    found = re.search(r"pid=(\d+)", out)
    return int(found.group(1)) if found else None


async def send_once(port: int, payload: bytes) -> tuple[str, int | None]:
    """One copy on a connection of its own: the ACK code and the worker that answered."""
    client = MllpClient("127.0.0.1", port)
    await client.connect(5)
    try:
        reply = await client.exchange(payload, 15)
        assert client._writer is not None
        local_port = client._writer.get_extra_info("sockname")[1]
        return ack_code(reply), served_by(port, local_port)
    finally:
        await client.close()


def stored(daemon: Daemon, control_id: str) -> list[str]:
    with sqlite3.connect(daemon.data_dir / "conduit.db", timeout=30) as conn:
        return [s for (s,) in conn.execute(
            "SELECT status FROM messages WHERE control_id = ? ORDER BY id", (control_id,))]


def queued(daemon: Daemon) -> int:
    with sqlite3.connect(daemon.data_dir / "conduit.db", timeout=30) as conn:
        return conn.execute("SELECT count(*) FROM queue").fetchone()[0]


async def test_a_resend_to_the_other_worker_is_a_duplicate(daemon: Daemon) -> None:
    await daemon.start("--workers", "2")
    pids = await started_workers(daemon, 2)
    message = Adt(control_id="RESEND000001", mrn="E2ERESEND01")
    answers: list[str] = []
    served: list[int | None] = []
    while len(answers) < 4 or (set(pids) - set(served) and len(answers) < MAX_CONNECTIONS):
        code, pid = await send_once(daemon.mllp_port, message.payload())
        answers.append(code)
        served.append(pid)
    assert set(served) == set(pids), f"every copy went to one worker: {served}"
    assert answers == ["AA"] * len(answers)  # a duplicate is acknowledged like the first

    statuses = stored(daemon, message.control_id)
    assert statuses == ["accepted"] + ["duplicate"] * (len(answers) - 1), (served, statuses)
    await eventually(lambda: daemon.output_files() and queued(daemon) == 0, timeout=30,
                     message="the destination's queue delivered")
    assert await daemon.stop(timeout=30) == 0, daemon.logs()[-3000:]
    outputs = [p for p in daemon.output_files() if message.mrn in mrns_in([p.read_bytes()])]
    assert len(outputs) == 1, [p.name for p in daemon.output_files()]
