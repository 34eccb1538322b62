"""`conduit run --workers 2` on the embedded default, as an operator starts it: both
workers take connections on the one MLLP port, every acknowledged message is delivered
once, the status figures count the whole group, the audit chain verifies after both
appended to it; and a worker SIGKILLed under load is restarted while its leases pass to
a live worker within seconds."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import aiohttp

from engine.queue.owners import OWNER_TTL
from tests.e2e.support import (
    CHANNEL,
    FHIR_DESTINATION,
    CountingFhirServer,
    Daemon,
    Ledger,
    adt_batch,
    backlog_under_way,
    delivered,
    eventually,
    send_all,
)
from tests.fhir_server import Answer


def workers(daemon: Daemon) -> list[int]:
    """The supervisor's child processes."""
    assert daemon.proc is not None
    pid = daemon.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children]


def listening(port: int) -> set[int]:
    """The pids with a listening socket on `port`."""
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True,
                         text=True, check=True).stdout
    return {int(p) for p in re.findall(r"pid=(\d+)", out)}


def leases(daemon: Daemon) -> dict[int, int]:
    """pid -> entries of the FHIR destination leased by that worker."""
    with sqlite3.connect(daemon.data_dir / "conduit.db", timeout=30) as conn:
        rows = conn.execute("SELECT lease_owner, count(*) FROM queue WHERE destination = ? "
                            "AND state = 'leased' GROUP BY lease_owner",
                            (FHIR_DESTINATION,)).fetchall()
    return {int(owner.split(":")[1]): n for owner, n in rows}


async def messages_counted(daemon: Daemon, token: str, kind: str) -> int:
    """conduit_messages_total of the shipped channel, as Prometheus would scrape it."""
    async with aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{daemon.web_port}/metrics",
            headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200, await resp.text()
        text = await resp.text()
    found = re.search(rf'conduit_messages_total{{channel="{CHANNEL}",kind="{kind}"}} (\S+)',
                      text)
    return int(float(found.group(1))) if found else 0


async def started_workers(daemon: Daemon, count: int) -> list[int]:
    await eventually(lambda: len(workers(daemon)) == count
                     and set(workers(daemon)) <= listening(daemon.mllp_port),
                     timeout=30, message=f"{count} workers listening on the MLLP port")
    return workers(daemon)


def cpus_of(pids: list[int]) -> list[set[int]]:
    """The CPUs each process's threads may run on (every thread of a worker inherits its
    main thread's, set before any other exists)."""
    return [{cpu for task in Path(f"/proc/{pid}/task").iterdir()
             for cpu in os.sched_getaffinity(int(task.name))} for pid in pids]


def assert_one_cpu_each(pids: list[int]) -> None:
    """With a CPU for each worker, each keeps to its own, worker 0 to the first; with fewer
    they all float."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < len(pids):
        assert cpus_of(pids) == [set(allowed)] * len(pids)
        return
    assert sorted(cpus_of(pids), key=min) == [{cpu} for cpu in allowed[:len(pids)]]


async def token_of(daemon: Daemon, role: str) -> str:
    return await daemon.user_token(f"ops-{role}", role)


async def act(daemon: Daemon, token: str, action: str) -> None:
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{daemon.web_port}/api/channels/{CHANNEL}/{action}",
            headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200, await resp.text()


async def test_two_workers_share_the_port_deliver_once_and_count_as_one_engine(
        daemon: Daemon, fhir: CountingFhirServer) -> None:
    daemon.deliver_to(fhir.url)
    await daemon.start("--workers", "2")
    pids = await started_workers(daemon, 2)
    assert listening(daemon.mllp_port) == set(pids)
    assert_one_cpu_each(pids)
    if len(os.sched_getaffinity(0)) >= 2:  # the operator can see where each one runs
        assert len(re.findall(r"worker runs on CPU \d", daemon.logs())) == 2
    token = await token_of(daemon, "viewer")

    ledger = Ledger()
    batches = [adt_batch(f"W{n}", 100) for n in range(6)]  # six senders, six connections
    await asyncio.wait_for(asyncio.gather(
        *(send_all(daemon.mllp_port, batch, ledger) for batch in batches)), 120)
    assert len(ledger.acked) == 600, (len(ledger.acked), ledger.other, len(ledger.unanswered))
    acked = ledger.acked_mrns
    await eventually(lambda: acked <= set(delivered(fhir)), timeout=90, interval=0.2,
                     message="every acknowledged message at the FHIR server")
    # Worker 0 serves /metrics; the other worker's messages count there too.
    await eventually(_at_least(messages_counted, daemon, token, "received", 600), timeout=30,
                     message="all 600 receipts counted by worker 0")
    await eventually(_at_least(messages_counted, daemon, token, "sent", 600), timeout=30,
                     message="all 600 deliveries counted by worker 0")
    assert await daemon.stop(timeout=30) == 0, daemon.logs()[-3000:]
    assert not [p for p in pids if Path(f"/proc/{p}").exists()], "a worker outlived the stop"

    seq = delivered(fhir)
    assert sorted(m for m, n in Counter(seq).items() if n > 1) == []
    assert len(seq) == 600
    verified = await daemon.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "event=reclaimed" not in daemon.logs(), "a lease was taken over without a crash"


def connections_of(pid: int, port: int) -> set[str]:
    """The peer addresses ("127.0.0.1:port") of `pid`'s established connections on `port`."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"sport = :{port}"],
                         capture_output=True, text=True, check=True).stdout
    return {line.split()[3] for line in out.splitlines() if f"pid={pid}," in line}


async def test_the_status_page_lists_the_senders_of_every_worker(daemon: Daemon) -> None:
    """Worker 0 serves the page, but a sender the kernel gave to worker 1 is connected
    all the same: operations staff must see it among the channel's peers."""
    await daemon.start("--workers", "2")
    pids = await started_workers(daemon, 2)
    second = next(p for p in pids
                  if b"CONDUIT_WORKER=1/" in Path(f"/proc/{p}/environ").read_bytes())
    token = await token_of(daemon, "viewer")
    held: list[asyncio.StreamWriter] = []
    try:
        while not connections_of(second, daemon.mllp_port) and len(held) < 64:
            held.append((await asyncio.open_connection("127.0.0.1", daemon.mllp_port))[1])
            await asyncio.sleep(0.05)
        ours = {f"127.0.0.1:{w.get_extra_info('sockname')[1]}" for w in held}
        assert connections_of(second, daemon.mllp_port) & ours, "no sender reached worker 1"

        async def listed() -> set[str]:
            async with aiohttp.ClientSession() as http, http.get(
                    f"http://127.0.0.1:{daemon.web_port}/api/channels/{CHANNEL}",
                    headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 200, await resp.text()
                return set((await resp.json())["source"]["peers"])

        async def all_listed() -> bool:
            return await listed() == ours
        await eventually(all_listed, timeout=15, message="every worker's senders listed")
    finally:
        for writer in held:
            writer.close()
    assert await daemon.stop(timeout=30) == 0, daemon.logs()[-3000:]


async def test_pausing_a_channel_on_the_status_page_pauses_it_in_every_worker(
        daemon: Daemon) -> None:
    await daemon.start("--workers", "2")
    pids = await started_workers(daemon, 2)
    token = await token_of(daemon, "operator")
    await act(daemon, token, "pause")  # worker 0 serves the page and pauses its own
    await eventually(lambda: not listening(daemon.mllp_port), timeout=30,
                     message="neither worker listening once the channel is paused")
    await act(daemon, token, "resume")
    await eventually(lambda: listening(daemon.mllp_port) == set(pids), timeout=30,
                     message="both workers listening again after resume")
    assert await daemon.stop(timeout=30) == 0, daemon.logs()[-3000:]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z")


async def test_workers_stop_when_their_supervisor_is_killed(daemon: Daemon) -> None:
    """A SIGKILLed supervisor cannot stop its workers: they notice and drain themselves,
    rather than run on unmanaged, holding the port and taking messages."""
    await daemon.start("--workers", "2")
    pids = await started_workers(daemon, 2)
    await daemon.crash()
    await eventually(lambda: not any(alive(p) for p in pids), timeout=20,
                     message="both workers gone after their supervisor")
    assert not listening(daemon.mllp_port)
    assert "the supervisor" in daemon.logs() and "is gone" in daemon.logs()


def _at_least(count, daemon: Daemon, token: str, kind: str, n: int):
    async def check() -> bool:
        return await count(daemon, token, kind) >= n
    return check


async def test_a_killed_worker_is_restarted_and_its_leases_pass_on_within_seconds(
        daemon: Daemon, fhir: CountingFhirServer) -> None:
    """At-least-once, as with two engines on PostgreSQL (test_shared_postgres): the
    message in flight at the kill may arrive twice, right after the killed run; never a
    gap, never out of order otherwise."""
    daemon.deliver_to(fhir.url)
    await daemon.start("--workers", "2")
    pids = await started_workers(daemon, 2)
    ledger = await backlog_under_way(fhir, daemon.mllp_port, "KW")

    held = await asyncio.to_thread(leases, daemon)
    holder = max((pid for pid in held if pid in pids), key=held.__getitem__)
    survivor = next(p for p in pids if p != holder)
    killed_at = time.monotonic()
    os.kill(holder, signal.SIGKILL)
    fhir.default = Answer()
    before = len(delivered(fhir))
    await eventually(lambda: len(delivered(fhir)) > before + 1, timeout=OWNER_TTL + 6,
                     interval=0.05, message="deliveries resumed by another worker")
    resumed_after = time.monotonic() - killed_at
    print(f"deliveries resumed {resumed_after:.1f}s after the SIGKILL")  # for the note

    acked = ledger.acked_mrns
    await eventually(lambda: acked <= set(delivered(fhir)), timeout=60, interval=0.2,
                     message="the rest delivered")
    now = await started_workers(daemon, 2)
    assert holder not in now and survivor in now, "the killed worker was not replaced"
    assert_one_cpu_each(now)  # the replacement takes the CPU of the worker it replaces
    assert await daemon.stop(timeout=30) == 0, daemon.logs()[-3000:]
    assert "event=reclaimed" in daemon.logs(), "the takeover left no trace in the log"
    assert re.search(r"worker [01] exited with signal SIGKILL; restarting", daemon.logs())

    seq = delivered(fhir)
    firsts = list(dict.fromkeys(seq))
    assert firsts == sorted(firsts), "delivered out of order"
    steps_back = [i for i in range(1, len(seq)) if seq[i] <= seq[i - 1]]
    assert len(steps_back) <= 1, f"order broken at {len(steps_back)} places"
    verified = await daemon.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
