"""`conduit run --workers 2` on the embedded default: a message resent over separate MLLP
connections is processed once, whichever worker the kernel hands each connection to
(SO_REUSEPORT), and so are copies sent at the same moment to both workers; every copy
after the first is acknowledged (AA, as a resend is) and stored as a duplicate, and the
destination receives the message once."""

from __future__ import annotations

import asyncio
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


async def connected(port: int) -> tuple[MllpClient, int | None]:
    """A connection of its own, and the worker the kernel handed it to (None if no
    worker has accepted it within seconds)."""
    client = MllpClient("127.0.0.1", port)
    await client.connect(5)
    assert client._writer is not None
    local_port = client._writer.get_extra_info("sockname")[1]
    for _ in range(50):  # still in the listen backlog until a worker accepts it
        if (pid := served_by(port, local_port)) is not None:
            return client, pid
        await asyncio.sleep(0.05)
    return client, None


async def send_once(port: int, payload: bytes) -> tuple[str, int | None]:
    """One copy on a connection of its own: the ACK code and the worker that answered."""
    client, pid = await connected(port)
    try:
        return ack_code(await client.exchange(payload, 15)), pid
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


async def test_copies_sent_at_once_to_both_workers_are_taken_once(daemon: Daemon) -> None:
    """Both workers check a copy before either is committed; the commit checks again."""
    await daemon.start("--workers", "2")
    pids = await started_workers(daemon, 2)
    clients: list[tuple[MllpClient, int | None]] = []
    try:
        while len(clients) < 8 or (set(pids) - {pid for _, pid in clients}
                                   and len(clients) < MAX_CONNECTIONS):
            clients.append(await connected(daemon.mllp_port))
        assert {pid for _, pid in clients} == set(pids), "every connection went to one worker"
        for round_ in range(3):
            message = Adt(control_id=f"ATONCE00000{round_}", mrn=f"E2EATONCE0{round_}")
            replies = await asyncio.gather(*(c.exchange(message.payload(), 15)
                                             for c, _ in clients))
            assert [ack_code(r) for r in replies] == ["AA"] * len(clients)
            statuses = stored(daemon, message.control_id)
            assert sorted(statuses) == ["accepted"] + ["duplicate"] * (len(clients) - 1), \
                statuses
    finally:
        for client, _ in clients:
            await client.close()
    await eventually(lambda: len(daemon.output_files()) >= 3 and queued(daemon) == 0,
                     timeout=30, message="the destination's queue delivered")
    assert await daemon.stop(timeout=30) == 0, daemon.logs()[-3000:]
    delivered = sorted(m for p in daemon.output_files() for m in mrns_in([p.read_bytes()])
                       if m.startswith("E2EATONCE"))  # a file per delivery
    assert delivered == ["E2EATONCE00", "E2EATONCE01", "E2EATONCE02"]


async def test_a_control_id_reused_on_the_other_worker_is_processed_and_flagged(
        daemon: Daemon) -> None:
    await daemon.start("--workers", "2")
    pids = await started_workers(daemon, 2)
    by_worker: dict[int | None, MllpClient] = {}
    extra: list[MllpClient] = []
    try:
        while set(pids) - set(by_worker) and len(by_worker) + len(extra) < MAX_CONNECTIONS:
            client, pid = await connected(daemon.mllp_port)
            (extra.append(client) if pid in by_worker else by_worker.setdefault(pid, client))
        assert set(by_worker) == set(pids), "every connection went to one worker"
        first, second = (by_worker[pid] for pid in pids)
        one = Adt(control_id="REUSED000001", mrn="E2EREUSEDA1")
        other = Adt(control_id="REUSED000001", mrn="E2EREUSEDB2", family="OTHERPATIENT")
        assert ack_code(await first.exchange(one.payload(), 15)) == "AA"
        assert ack_code(await second.exchange(other.payload(), 15)) == "AA"
    finally:
        for client in (*by_worker.values(), *extra):
            await client.close()
    assert stored(daemon, "REUSED000001") == ["accepted", "accepted"]
    with sqlite3.connect(daemon.data_dir / "conduit.db", timeout=30) as conn:
        flagged = conn.execute("SELECT count(*) FROM audit WHERE kind = 'control-id-reused'"
                               ).fetchone()[0]
    assert flagged == 1
    await eventually(lambda: len(daemon.output_files()) >= 2 and queued(daemon) == 0,
                     timeout=30, message="both delivered")
    assert await daemon.stop(timeout=30) == 0, daemon.logs()[-3000:]
    assert mrns_in([p.read_bytes() for p in daemon.output_files()]) >= {
        "E2EREUSEDA1", "E2EREUSEDB2"}
