"""Engine.apply (engine/channel_swap.py): a new set of channels goes live in a running
engine. Unchanged channels are left running untouched, changed ones are drained and
swapped, added ones start and removed ones stop; queued entries carry over, an operator's
pause stays, and under steady MLLP load with several swaps every acknowledged message
reaches each destination exactly once with no connection refused."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import socket
import textwrap
from collections.abc import AsyncIterator

import aiohttp
import pytest
import sqlalchemy as sa

from engine.channel import Channel, State
from engine.config.loader import load_all
from engine.connectors.mllp import MllpClient, MllpSource, MllpSourceConfig
from engine.formats.hl7v2 import Hl7Message
from engine.mapping import MappingCatalog
from engine.message import MessageStatus, Receipt, SourceMeta
from engine.runtime import Engine
from engine.store.schema import audit, messages
from engine.supervisor import WorkerSlot
from tests.harness import REPO, EngineHarness, adt, free_port
from tests.mllp_receiver import MllpReceiver
from tests.resending_sender import ResendingSender, probe


def mllp_channel(port: int, *dests: tuple[str, int], extra: str = "") -> str:
    listed = "\n".join(f"  - {{name: {name}, type: mllp, host: 127.0.0.1, port: {p}, "
                       "retry: {initial_delay: 20ms, max_delay: 100ms, jitter: 0}}"
                       for name, p in dests)
    return (f"source: {{type: mllp, port: {port}}}\n{extra}\n"
            f"destinations:\n{listed}\n")


async def deploy(h: EngineHarness, channels: dict[str, str]) -> list[str]:
    """Write the channel files as given (others removed) and apply them."""
    folder = h.root / "channels"
    for old in folder.glob("*.yaml"):
        if old.stem not in channels:
            old.unlink()
    for name, text in channels.items():
        (folder / f"{name}.yaml").write_text(textwrap.dedent(text))
    cfg, loaded = load_all(h.root / "conduit.yaml", {})
    engine = h.engine
    assert engine is not None
    return await engine.apply(loaded, MappingCatalog.discover(cfg.mappings_dir))


def queued_for(engine: Engine, destination: str) -> set[str]:
    """Control ids of the messages the audit trail says were queued for `destination`
    (in the commit that took them on)."""
    assert engine.services is not None
    with engine.services.db.connect() as conn:
        return {r[0] for r in conn.execute(
            sa.select(messages.c.control_id).join(audit, audit.c.message_id == messages.c.id)
            .where(audit.c.kind == "queued", audit.c.destination == destination))}


def control_ids(receiver: MllpReceiver) -> collections.Counter[str]:
    return collections.Counter(Hl7Message.parse(p.decode()).control_id
                               for p in receiver.received)


async def test_apply_leaves_unchanged_channels_running_and_swaps_adds_removes(harness):
    rx = await MllpReceiver().start()
    ports = {name: free_port() for name in ("same", "edited", "gone", "new")}
    try:
        engine = await harness.start({n: mllp_channel(ports[n], ("out", rx.port))
                                      for n in ("same", "edited", "gone")})
        same, edited = engine.channels["same"], engine.channels["edited"]
        # a connection to the unchanged channel is open across the deploy
        kept = MllpClient("127.0.0.1", ports["same"])
        await kept.connect(5)
        ack = Hl7Message.parse((await kept.exchange(adt("BEFORE-1", "M1"), 5)).decode())
        assert ack.value("MSA-1") == "AA"

        changed = await deploy(harness, {
            "same": mllp_channel(ports["same"], ("out", rx.port)),
            "edited": mllp_channel(ports["edited"], ("out", rx.port), ("copy", rx.port)),
            "new": mllp_channel(ports["new"], ("out", rx.port))})

        assert changed == ["edited", "gone", "new"]
        assert engine.channels["same"] is same and same.state is State.STARTED
        assert "gone" not in engine.channels
        assert engine.channels["edited"] is not edited and edited.state is State.STOPPED
        assert [w.name for w in engine.channels["edited"].workers] == ["out", "copy"]
        # the same connection still works: the unchanged channel was not interrupted
        ack = Hl7Message.parse((await kept.exchange(adt("AFTER-1", "M2"), 5)).decode())
        assert ack.value("MSA-1") == "AA"
        await kept.close()
        for name in ("edited", "new"):
            client = MllpClient("127.0.0.1", ports[name])
            await client.connect(5)
            reply = Hl7Message.parse((await client.exchange(adt(f"{name}-1", "M3"), 5)).decode())
            await client.close()
            assert reply.value("MSA-1") == "AA"
        with socket.socket() as s:  # the removed channel's port is closed
            assert s.connect_ex(("127.0.0.1", ports["gone"])) != 0
        await harness.settle(lambda: sum(control_ids(rx).values()) == 5)
        assert control_ids(rx) == {"BEFORE-1": 1, "AFTER-1": 1, "edited-1": 2, "new-1": 1}
        assert await deploy(harness, {   # the same files again: nothing to do
            "same": mllp_channel(ports["same"], ("out", rx.port)),
            "edited": mllp_channel(ports["edited"], ("out", rx.port), ("copy", rx.port)),
            "new": mllp_channel(ports["new"], ("out", rx.port))}) == []
    finally:
        await rx.stop()


async def test_a_swapped_channel_keeps_its_queue_and_its_pause(harness):
    down_port, port = free_port(), free_port()
    engine = await harness.start({"adt": mllp_channel(port, ("out", down_port),
                                                      ("old", down_port))})
    client = MllpClient("127.0.0.1", port)
    await client.connect(5)
    for i in range(3):
        await client.exchange(adt(f"Q-{i}", f"M{i}"), 5)
    await client.close()
    await engine.ops.control("adt", "pause", "operator")
    assert engine.channels["adt"].state is State.PAUSED

    assert await deploy(harness, {"adt": mllp_channel(port, ("out", down_port))}) == ["adt"]

    channel = engine.channels["adt"]
    assert channel.state is State.PAUSED  # the operator's pause holds
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # paused: not listening
    # the receiver comes up: what was queued before the swap is sent by the new worker
    rx = MllpReceiver()
    rx._server = await asyncio.start_server(rx._serve, "127.0.0.1", down_port)
    try:
        await harness.settle(lambda: len(rx.received) == 3)
        assert control_ids(rx) == {"Q-0": 1, "Q-1": 1, "Q-2": 1}
        # the removed destination's entries stay queued, visible per destination
        assert engine.services is not None
        stats = {s.destination: s.ready + s.leased
                 for s in engine.services.queue.stats()}
        assert stats.get("adt/old") == 3
        await asyncio.sleep(0.3)
        assert len(rx.received) == 3
        # ... and `conduit queue list` says why they wait
        cli = await asyncio.create_subprocess_exec(
            str(REPO / ".venv" / "bin" / "conduit"), "--conf", str(harness.root / "conduit.yaml"),
            "queue", "list", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(cli.communicate(), 60)
        assert cli.returncode == 0, err.decode()
        lines = out.decode().splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith("adt/old "))
        assert lines[at + 1].strip().startswith("no live channel has this destination")
        assert not any(line.startswith("adt/out ") for line in lines)  # delivered
    finally:
        await rx.stop()


async def test_a_mapping_version_edited_in_place_swaps_the_channels_that_pin_it(tmp_path):
    mappings = tmp_path / "mappings"
    (mappings / "tag").mkdir(parents=True)
    (mappings / "tag" / "v1.py").write_text(_tagging("first"))
    h = EngineHarness(tmp_path, mappings_dir=mappings)
    out = tmp_path / "out"
    try:
        port, other = free_port(), free_port()
        files = {"pinned": f"source: {{type: mllp, port: {port}}}\nmapping: tag@1\n"
                           f"destinations: [{{name: f, type: file, directory: \"{out}\"}}]\n",
                 "plain": f"source: {{type: mllp, port: {other}}}\n"
                          f"destinations: [{{name: f, type: file, directory: \"{out}\"}}]\n"}
        engine = await h.start(files)
        plain = engine.channels["plain"]
        assert await deploy(h, files) == []
        (mappings / "tag" / "v1.py").write_text(_tagging("second"))
        assert await deploy(h, files) == ["pinned"]
        assert engine.channels["plain"] is plain
        client = MllpClient("127.0.0.1", port)
        await client.connect(5)
        await client.exchange(adt("MAP-1", "M1"), 5)
        await client.close()
        await h.settle(lambda: out.exists() and any(out.iterdir()))
        assert [json.loads(p.read_text()) for p in out.iterdir()] == [{"tag": "second"}]
    finally:
        await h.stop()


def _tagging(tag: str) -> str:
    return ("from engine.mapping import mapping\n\n\n"
            "@mapping(\"tag@1\", accepts=\"hl7v2\", emits=\"application/json\")\n"
            f"def tag(message):\n    return {{\"tag\": \"{tag}\"}}\n")


@pytest.mark.parametrize("store", ["sqlite", "postgresql", "postgresql+redis"])
async def test_swaps_under_load_lose_nothing_and_deliver_once(tmp_path, request, store):
    """Four resending senders keep sending while the channel is swapped five times
    (a second destination added and taken away, a filter changed): every message
    acknowledged AA reaches `main` exactly once; `copy` gets exactly once each message
    received while it existed (what was queued for it when it was taken away is
    delivered when it comes back), never one twice; no connection is refused. On the
    embedded store, and on PostgreSQL with the queues in it or in Redis Streams."""
    harness = EngineHarness(tmp_path)
    if store != "sqlite":
        url = request.getfixturevalue("pg_url")  # its teardown drops the Redis keys too
        queue = (f'queue: {{type: redis, url: "redis://127.0.0.1:6379/0", '
                 f'prefix: conduit-{url.rsplit("/", 1)[1]}}}' if "redis" in store else "")
        harness = EngineHarness(tmp_path, store_url=url, conf=queue)
    main, copy = await MllpReceiver().start(), await MllpReceiver().start()
    port = free_port()
    filt = "filter: [{field: MSH-9.1, equals: ADT}]"
    versions = [mllp_channel(port, ("main", main.port)),
                mllp_channel(port, ("main", main.port), ("copy", copy.port)),
                mllp_channel(port, ("main", main.port), ("copy", copy.port), extra=filt),
                mllp_channel(port, ("main", main.port), extra=filt)]
    try:
        engine = await harness.start({"adt": versions[0]})
        stop = asyncio.Event()
        senders = [ResendingSender(port, f"S{i}", lambda c: adt(c, "MRN1")) for i in range(4)]
        running = [asyncio.ensure_future(s.run(stop)) for s in senders]
        refused = asyncio.ensure_future(probe(port, stop))
        swapped = 0
        for version in [*versions[1:], *versions[:2]]:  # ends with copy in place
            await asyncio.sleep(0.4)
            swapped += len(await deploy(harness, {"adt": version}))
        await asyncio.sleep(0.4)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*running), 30)
        assert await refused == 0  # the listener was there all along
        assert swapped == 5
        acked = [c for s in senders for c in s.acked]
        assert len(acked) == len(set(acked)) > 100
        await harness.settle(lambda: set(control_ids(main)) >= set(acked), timeout=30)
        assert engine.services is not None
        await harness.settle(lambda: not engine.services.queue.stats(), timeout=30)
        got_main, got_copy = control_ids(main), control_ids(copy)
        assert set(got_main) == set(acked) and max(got_main.values()) == 1
        assert set(got_copy) <= set(acked) and max(got_copy.values()) == 1
        # each destination got exactly the messages queued for it when taken on
        assert queued_for(engine, "main") == set(acked)
        assert queued_for(engine, "copy") == set(got_copy)
        assert len(got_copy) > 20
        assert sum(s.refused for s in senders) == 0
    finally:
        await harness.stop()
        await main.stop()
        await copy.stop()



async def test_a_stopping_listener_takes_no_frame_it_could_not_answer():
    """While a stopping MLLP listener finishes the message under way on one connection,
    a frame arriving on another is not taken on: taken on and then cut off unanswered,
    its sender would send it again and the receivers would get it twice."""
    port = free_port()
    source = MllpSource(MllpSourceConfig(port=port))
    taken: list[str] = []
    release = asyncio.Event()

    async def deliver(raw: bytes, meta: SourceMeta) -> Receipt:
        control_id = Hl7Message.parse(bytes(raw).decode()).control_id
        taken.append(control_id)
        if control_id == "SLOW":
            await release.wait()
        return Receipt(control_id, MessageStatus.ACCEPTED, (f"ACK {control_id}".encode(),))

    await source.start(deliver)
    slow, late = MllpClient("127.0.0.1", port), MllpClient("127.0.0.1", port)
    await slow.connect(5)
    await late.connect(5)
    answered = asyncio.ensure_future(slow.exchange(adt("SLOW", "M1"), 5))
    while taken != ["SLOW"]:
        await asyncio.sleep(0.005)
    stopping = asyncio.ensure_future(source.stop())
    await asyncio.sleep(0.05)
    unanswered = asyncio.ensure_future(late.exchange(adt("LATE", "M2"), 5))
    await asyncio.sleep(0.1)
    release.set()
    await stopping
    assert await answered == b"ACK SLOW"  # the message under way got its answer
    with pytest.raises(ConnectionError):
        await unanswered
    assert taken == ["SLOW"]  # the late one was never taken on: its resend is the first
    await slow.close()
    await late.close()


async def test_an_http_listener_is_handed_over_too(harness, tmp_path):
    """A swapped HTTP source serves the socket of the one it replaces: no connection
    refused while it is swapped, and posting works before and after."""
    port = free_port()
    out = tmp_path / "out"

    def http_channel(*dests: str) -> str:
        listed = ", ".join(f'{{name: {d}, type: file, directory: "{out / d}"}}' for d in dests)
        return (f"source: {{type: http, port: {port}, path: /in, auth: {{type: none}}}}\n"
                f"destinations: [{listed}]\n")

    await harness.start({"api": http_channel("a")})
    stop = asyncio.Event()
    refused = asyncio.ensure_future(probe(port, stop))
    statuses = []
    async with aiohttp.ClientSession() as http:
        for n, dests in enumerate([("a", "b"), ("a",), ("a", "b")]):
            async with http.post(f"http://127.0.0.1:{port}/in",
                                 data=adt(f"HTTP-{n}", "M1")) as resp:
                statuses.append(resp.status)
            await asyncio.sleep(0.1)
            assert await deploy(harness, {"api": http_channel(*dests)}) == ["api"]
        async with http.post(f"http://127.0.0.1:{port}/in", data=adt("HTTP-3", "M1")) as resp:
            statuses.append(resp.status)
    await asyncio.sleep(0.1)
    stop.set()
    assert await refused == 0
    assert statuses == [200] * 4
    await harness.settle(lambda: len(list((out / "a").glob("*"))) == 4)


async def test_a_worker_other_than_the_first_swaps_only_what_it_shares(tmp_path):
    """In a group, a worker besides the first runs listeners but never a folder poller
    (worker 0 alone takes each file): a deploy keeps it so, whichever way a channel's
    source changes."""
    (tmp_path / "channels").mkdir()
    inbox, out, port = tmp_path / "inbox", tmp_path / "out", free_port()
    inbox.mkdir()
    conf = tmp_path / "conduit.yaml"
    conf.write_text(f"data_dir: {tmp_path / 'data'}\nchannels_dir: {tmp_path / 'channels'}\n")
    listener = (f"source: {{type: mllp, port: {port}}}\n"
                f"destinations: [{{name: f, type: file, directory: \"{out}\"}}]\n")
    poller = (f"source: {{type: file, directory: \"{inbox}\"}}\n"
              f"destinations: [{{name: f, type: file, directory: \"{out}\"}}]\n")

    def load(files: dict[str, str]) -> tuple[list, MappingCatalog]:
        for old in (tmp_path / "channels").glob("*.yaml"):
            old.unlink()
        for name, text in files.items():
            (tmp_path / "channels" / f"{name}.yaml").write_text(text)
        cfg, loaded = load_all(conf, {})
        return loaded, MappingCatalog.discover(cfg.mappings_dir)

    loaded, catalog = load({"a": listener, "b": poller})
    cfg, _ = load_all(conf, {})
    engine = Engine(cfg, loaded, catalog, worker=WorkerSlot(1, 2))
    await engine.start()
    try:
        assert set(engine.channels) == {"a"}
        # a becomes a poller (leaves this worker), b a listener (comes to it)
        assert await engine.apply(*load({"a": poller, "b": listener})) == ["a", "b"]
        assert set(engine.channels) == {"b"}
        assert engine.channels["b"].state is State.STARTED
    finally:
        await engine.stop()


async def test_a_renamed_channel_takes_the_port_over_and_leaves_its_queue(harness):
    """A rename is one channel removed and one added on the same port: the new one takes
    the listening socket over (nothing refused), and what was queued under the old name
    stays queued under it."""
    port, down = free_port(), free_port()
    engine = await harness.start({"adt": mllp_channel(port, ("out", down))})
    client = MllpClient("127.0.0.1", port)
    await client.connect(5)
    await client.exchange(adt("OLD-1", "M1"), 5)
    await client.close()
    stop = asyncio.Event()
    refused = asyncio.ensure_future(probe(port, stop))
    await asyncio.sleep(0.05)
    assert await deploy(harness, {"adt-in": mllp_channel(port, ("out", down))}) == [
        "adt", "adt-in"]
    await asyncio.sleep(0.05)
    stop.set()
    assert await refused == 0
    assert set(engine.channels) == {"adt-in"}
    assert engine.channels["adt-in"].state is State.STARTED
    assert engine.services is not None
    assert {s.destination: s.ready + s.leased for s in engine.services.queue.stats()} == {
        "adt/out": 1}


@contextlib.asynccontextmanager
async def swap_held_open(harness) -> AsyncIterator[tuple[Engine, Channel, asyncio.Future]]:
    """A running channel `adt` whose deploy is under way and held open: a send to a
    receiver that never answers keeps the old channel draining until its 1 s timeout.
    Yields the engine, the channel leaving and the deploy's future."""
    rx = await MllpReceiver().start()
    rx.silent = True
    port = free_port()
    slow = (f"source: {{type: mllp, port: {port}}}\n"
            f"destinations: [{{name: out, type: mllp, host: 127.0.0.1, port: {rx.port}, "
            "timeout: 1s}]\n")
    try:
        engine = await harness.start({"adt": slow})
        old = engine.channels["adt"]
        client = MllpClient("127.0.0.1", port)
        await client.connect(5)
        await client.exchange(adt("SLOW-1", "M1"), 5)
        await client.close()
        await asyncio.sleep(0.2)  # its send is under way
        changed = slow + "filter: [{field: MSH-9.1, equals: ADT}]\n"
        swapping = asyncio.ensure_future(deploy(harness, {"adt": changed}))
        await asyncio.sleep(0.2)
        assert not swapping.done()
        yield engine, old, swapping
    finally:
        await rx.stop()


async def test_a_swap_cancelled_midway_finishes_before_the_cancel_lands(harness):
    """Engine.stop cancels the revision follower, maybe while it swaps: the swap finishes
    first, so no channel is left half swapped (an old one running, or a new one never
    started) with nobody to stop it."""
    async with swap_held_open(harness) as (engine, old, swapping):
        swapping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await swapping
        assert old.state is State.STOPPED
        assert engine.channels["adt"] is not old
        assert engine.channels["adt"].state is State.STARTED


async def test_an_operators_pause_during_a_swap_holds_on_the_new_channel(harness):
    """A pause that arrives while a deploy drains the channel (a send under way keeps
    it draining) waits for the swap and lands on the channel swapped in, instead of on
    the one leaving, which would lose it."""
    async with swap_held_open(harness) as (engine, old, swapping):
        answer = await engine.ops.control("adt", "pause", "operator")
        assert swapping.done() and await swapping == ["adt"]
        assert engine.channels["adt"] is not old
        assert answer["state"] == "paused"
        assert engine.channels["adt"].state is State.PAUSED
