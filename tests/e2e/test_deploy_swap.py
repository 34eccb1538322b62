"""A deploy under load (issue 15): `conduit deploy` while senders keep sending, and the
running engine (one process, or a group of two) swaps the channel each time without a
restart. What must hold: every message acknowledged AA reaches each destination of the
channel version that took it on exactly once (the audit trail's "queued" events say
which: they are made in the commit that takes a message on), none twice, no
connection refused; the status page shows a channel added by a deploy and forgets it
once removed; the audit chain verifies."""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import textwrap
from pathlib import Path

import aiohttp
import pytest

from engine.formats.hl7v2 import Hl7Message
from tests.e2e.support import REPO, Adt, Daemon, eventually, free_port
from tests.mllp_receiver import MllpReceiver
from tests.resending_sender import ResendingSender, probe

SENDERS = 4


def channel(port: int, *dests: tuple[str, int], extra: str = "") -> str:
    listed = "\n".join(f"  - {{name: {name}, type: mllp, host: 127.0.0.1, port: {p}, "
                       "retry: {initial_delay: 20ms, max_delay: 200ms, jitter: 0}}"
                       for name, p in dests)
    return f"source: {{type: mllp, port: {port}}}\n{extra}\ndestinations:\n{listed}\n"


def write_conf(daemon: Daemon, root: Path) -> Path:
    (root / "channels").mkdir()
    conf = root / "conduit.yaml"
    conf.write_text(textwrap.dedent(f"""\
        data_dir: {daemon.data_dir}
        channels_dir: {root / 'channels'}
        mappings_dir: {REPO / 'mappings'}
        web: {{host: 127.0.0.1, port: {daemon.web_port}}}
        log: {{level: debug}}
        """))
    return conf


def write_channels(root: Path, files: dict[str, str]) -> None:
    for old in (root / "channels").glob("*.yaml"):
        if old.stem not in files:
            old.unlink()
    for name, text in files.items():
        (root / "channels" / f"{name}.yaml").write_text(text)


def control_ids(receiver: MllpReceiver) -> collections.Counter[str]:
    return collections.Counter(Hl7Message.parse(p.decode()).control_id
                               for p in receiver.received)


async def ready_channels(daemon: Daemon) -> set[str]:
    async with aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{daemon.web_port}/readyz") as resp:
        return set((await resp.json())["channels"])


@pytest.mark.parametrize("workers", [1, 2])
async def test_deploys_under_load_lose_nothing_and_deliver_once(daemon: Daemon, tmp_path: Path,
                                                               workers: int) -> None:
    main, copy = await MllpReceiver().start(), await MllpReceiver().start()
    root = tmp_path / "site"
    root.mkdir()
    daemon.env["CONDUIT_CONF"] = str(write_conf(daemon, root))
    port, extra_port = daemon.mllp_port, free_port()
    filt = "filter: [{field: MSH-9.1, equals: ADT}]"
    adt = channel(port, ("main", main.port))
    with_copy = channel(port, ("main", main.port), ("copy", copy.port))
    deploys = [  # (channel files, what the status page lists)
        ({"adt": with_copy, "extra": channel(extra_port, ("main", main.port))},
         {"adt", "extra"}),
        ({"adt": channel(port, ("main", main.port), ("copy", copy.port), extra=filt)},
         {"adt"}),
        ({"adt": channel(port, ("main", main.port), extra=filt)}, {"adt"}),
        ({"adt": with_copy}, {"adt"}),
    ]
    write_channels(root, {"adt": adt})
    try:
        await daemon.start(*(["--workers", str(workers)] if workers > 1 else []))
        stop = asyncio.Event()
        senders = [ResendingSender(port, f"D{s}", lambda c: Adt(c, f"E2E{c}").payload())
                   for s in range(SENDERS)]
        running = [asyncio.ensure_future(s.run(stop, pace=0.01)) for s in senders]
        refused = asyncio.ensure_future(probe(port, stop))
        for n, (files, listed) in enumerate(deploys, start=2):
            await asyncio.sleep(0.5)
            write_channels(root, files)
            made = await daemon.cli("deploy", "--reason", f"swap test {n}")
            assert made.returncode == 0, made.stdout + made.stderr
            assert f"revision {n} is live" in made.stdout, made.stdout
            await eventually(lambda n=n: daemon.logs().count(f"running revision {n} ")
                             >= workers, timeout=20, message=f"revision {n} running")
            assert await ready_channels(daemon) == listed
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*running), 30)
        assert await refused == 0, "a connection was refused during a swap"

        acked = [c for s in senders for c in s.acked]
        assert len(acked) == len(set(acked)) > 200, len(acked)
        await eventually(lambda: set(control_ids(main)) >= set(acked), timeout=60,
                         message="every acknowledged message at main")
        await eventually(lambda: not _queued(daemon), timeout=60, message="queues drained")
        got_main, got_copy = control_ids(main), control_ids(copy)
        assert set(got_main) == set(acked)
        assert max(got_main.values()) == 1, [c for c, k in got_main.items() if k > 1][:5]
        assert set(got_copy) <= set(acked) and len(got_copy) > 50
        # each destination got exactly the messages queued for it when taken on
        assert _queued_for(daemon, "main") == set(acked)
        assert _queued_for(daemon, "copy") == set(got_copy)
        assert max(got_copy.values()) == 1, [c for c, k in got_copy.items() if k > 1][:5]
        assert await daemon.stop(timeout=30) == 0, daemon.logs()[-3000:]
        verified = await daemon.cli("audit", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        await main.stop()
        await copy.stop()


def _queued(daemon: Daemon) -> bool:
    with sqlite3.connect(daemon.data_dir / "conduit.db") as db:
        return db.execute("SELECT count(*) FROM queue").fetchone()[0] > 0


def _queued_for(daemon: Daemon, destination: str) -> set[str]:
    """Control ids of the messages the audit trail says were queued for `destination`."""
    with sqlite3.connect(daemon.data_dir / "conduit.db") as db:
        return {r[0] for r in db.execute(
            "SELECT m.control_id FROM audit a JOIN messages m ON a.message_id = m.id "
            "WHERE a.kind = 'queued' AND a.destination = ?", (destination,))}
