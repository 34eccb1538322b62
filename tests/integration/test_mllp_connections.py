"""Who gets a connection to an MLLP listener, and for how long: a frame's deadline from
its first byte, the per-peer limit, the allow-list, eviction of the longest-idle
connection at the listener's limit, and refusals logged at a bounded rate. Loopback only:
the whole of 127/8 is local on Linux, so 127.0.0.2 and 127.0.0.3 are other peers."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable

import pytest

from engine.connectors.mllp import MllpSource, MllpSourceConfig
from engine.connectors.mllp_framing import wrap
from engine.connectors.tls import ServerTls
from engine.message import MessageStatus, Receipt, SourceMeta
from tests.harness import REPO, adt, exchange, free_port
from tests.pki import Pki

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _Sink:
    """The channel, as a listener sees it: answers each frame, or waits on `gate`."""

    def __init__(self) -> None:
        self.gate: asyncio.Event | None = None
        self.taken: list[bytes] = []

    async def __call__(self, payload: bytes, meta: SourceMeta) -> Receipt:
        if self.gate is not None:
            await self.gate.wait()
        self.taken.append(payload)
        return Receipt(f"m{len(self.taken)}", MessageStatus.ACCEPTED, replies=(b"ACK",))


@pytest.fixture
async def listen():
    started: list[tuple[MllpSource, _Sink]] = []

    async def start(**settings) -> tuple[MllpSource, _Sink]:
        source, sink = MllpSource(MllpSourceConfig(port=free_port(), **settings)), _Sink()
        await source.start(sink)
        started.append((source, sink))
        return source, sink

    yield start
    for source, sink in started:
        if sink.gate is not None:
            sink.gate.set()
        await source.stop()


async def _connect(source: MllpSource, bind: str = "127.0.0.1") -> Stream:
    return await asyncio.open_connection("127.0.0.1", source.config.port, local_addr=(bind, 0))


async def _closed(stream: Stream, within: float = 2.0) -> bool:
    """Whether the listener closes the connection within `within` seconds."""
    try:
        return await asyncio.wait_for(stream[0].read(), within) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


async def _until(condition: Callable[[], bool], within: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def _open(source: MllpSource) -> int:
    return len(source.connections)


async def _exchange(stream: Stream, payload: bytes = b"MSH|x") -> bytes:
    stream[1].write(wrap(payload))
    return await asyncio.wait_for(stream[0].readuntil(b"\x1c\r"), 2)


# --- an honest sender under attack ------------------------------------------------------

_WINDOWS = 3  # the 100 ms bound must hold over one whole window of the first three: the
# test machine is shared, and another process's burst is no measure of the listener


async def _honest_window(port: int, window: int) -> list[float]:
    """Seconds to each of 20 ACKs, each on a new connection that must be let in and
    answered AA (a refusal fails at once, in any window)."""
    loop = asyncio.get_running_loop()
    took = []
    for i in range(20):
        began = loop.time()
        [ack] = await exchange(port, [adt(f"H{window}-{i}", f"MRN9{i:02}")], timeout=2)
        took.append(loop.time() - began)
        assert ack.value("MSA-1") == "AA"
        await asyncio.sleep(0.05)
    return took


async def test_an_honest_sender_gets_each_ack_within_100ms_while_a_peer_floods_500_sockets(
        harness, tmp_path, caplog):
    caplog.set_level(logging.INFO, "conduit.mllp")
    port = free_port()
    await harness.start({"adt": f"""
        source: {{type: mllp, port: {port}, read_timeout: 1s}}
        destinations: [{{name: files, type: file, directory: "{tmp_path / 'out'}"}}]
        """})
    flood = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.mllp_flood", str(port), "--bind", "127.0.0.2",
        "--sockets", "500", "--seconds", "30", cwd=REPO, stdout=asyncio.subprocess.PIPE)
    try:
        assert flood.stdout is not None
        assert await asyncio.wait_for(flood.stdout.readline(), 20) == b"ready\n"
        await asyncio.sleep(1.5)  # past read_timeout: the dripping frames have had their time
        windows = [await _honest_window(port, 0)]
        while max(windows[-1]) >= 0.1 and len(windows) < _WINDOWS:
            windows.append(await _honest_window(port, len(windows)))
        assert max(windows[-1]) < 0.1, [[round(t * 1000) for t in w] for w in windows]
    finally:
        flood.kill()
        await flood.wait()
    lines = [r.getMessage() for r in caplog.records
             if r.name == "conduit.mllp" and "127.0.0.2" in r.getMessage()]
    assert 0 < len(lines) <= 10, lines  # thousands of refusals, a handful of lines


# --- a frame's deadline ------------------------------------------------------------------


async def test_a_dripping_frame_is_closed_read_timeout_after_its_first_byte(listen):
    source, _ = await listen(read_timeout=0.5)
    reader, writer = await _connect(source)
    loop = asyncio.get_running_loop()
    writer.write(b"\x0bMSH|")
    began = loop.time()
    while not reader.at_eof() and loop.time() - began < 3:
        await asyncio.sleep(0.05)  # a byte every 50 ms: never silent for read_timeout
        writer.write(b"X")
    assert reader.at_eof()
    assert 0.45 < loop.time() - began < 2.0  # bytes kept coming for 3 s
    writer.close()


async def test_frames_that_each_finish_in_time_keep_the_connection(listen):
    source, sink = await listen(read_timeout=0.5)
    stream = await _connect(source)
    for _ in range(4):  # together longer than read_timeout, each well within it
        stream[1].write(b"\x0bMSH|")
        await asyncio.sleep(0.15)
        stream[1].write(b"end\x1c\r")
        assert await asyncio.wait_for(stream[0].readuntil(b"\x1c\r"), 2) == b"\x0bACK\x1c\r"
    assert len(sink.taken) == 4 and not await _closed(stream, 0.1)


async def test_a_tls_handshake_that_never_comes_is_cut_after_read_timeout(listen, tmp_path):
    cert, key = Pki(tmp_path).issue("server", "conduit", dns="localhost")
    source, _ = await listen(read_timeout=0.5, tls=ServerTls(cert=cert, key=key))
    silent = await _connect(source)  # TCP only: no ClientHello, so no connection_made yet
    assert await _closed(silent, 3.0)  # asyncio's own limit would be 60 s


# --- per peer ----------------------------------------------------------------------------


async def test_a_peer_at_its_limit_gives_up_its_longest_idle_connection(listen):
    source, _ = await listen(max_connections_per_peer=2)
    first = await _connect(source, "127.0.0.2")
    await _until(lambda: _open(source) == 1)
    await asyncio.sleep(0.02)
    second = await _connect(source, "127.0.0.2")
    await _exchange(second)  # second has been busy since; first has been idle longer
    third = await _connect(source, "127.0.0.2")
    assert await _closed(first)
    assert await _exchange(third) == b"\x0bACK\x1c\r"
    assert not await _closed(second, 0.1)
    assert source.describe()["evicted"] == 1


async def test_a_peer_whose_every_connection_is_mid_frame_is_refused_the_next(listen):
    source, _ = await listen(max_connections_per_peer=2)
    busy = [await _connect(source, "127.0.0.2") for _ in range(2)]
    for stream in busy:
        stream[1].write(b"\x0bMSH|half")
    await _until(lambda: _open(source) == 2)
    await asyncio.sleep(0.05)
    assert await _closed(await _connect(source, "127.0.0.2"))
    other = await _connect(source, "127.0.0.3")  # another peer is not held to that limit
    assert await _exchange(other) == b"\x0bACK\x1c\r"
    for stream in busy:
        assert not await _closed(stream, 0.05)
    assert source.describe()["refused"] == {"peer limit": 1}


async def test_refusals_are_logged_at_a_bounded_rate_without_content(listen, caplog):
    caplog.set_level(logging.INFO, "conduit.mllp")
    source, _ = await listen(max_connections_per_peer=1)
    holder = await _connect(source, "127.0.0.2")
    holder[1].write(b"\x0bMSH|PID|secret-mrn")
    await _until(lambda: _open(source) == 1)
    await asyncio.sleep(0.05)
    for _ in range(30):
        assert await _closed(await _connect(source, "127.0.0.2"))
    assert source.describe()["refused"] == {"peer limit": 30}
    lines = [r.getMessage() for r in caplog.records if "refus" in r.getMessage()]
    assert len(lines) == 1 and "127.0.0.2" in lines[0], lines
    assert "secret" not in caplog.text


# --- allow-list ----------------------------------------------------------------------------


async def test_a_peer_outside_the_allowed_networks_is_closed_at_once(listen):
    source, _ = await listen(allow=["127.0.0.1/32", "fd00::/8"])
    outsider = await _connect(source, "127.0.0.2")
    assert await _closed(outsider, 0.5)
    insider = await _connect(source)
    assert await _exchange(insider) == b"\x0bACK\x1c\r"
    assert source.describe()["refused"] == {"not allowed": 1}


# --- the listener's limit ------------------------------------------------------------------


async def test_a_full_listener_closes_its_longest_idle_connection_to_admit_a_new_one(listen):
    source, _ = await listen(max_connections=3)
    oldest = await _connect(source, "127.0.0.2")
    await _until(lambda: _open(source) == 1)
    await asyncio.sleep(0.02)
    mid_frame = await _connect(source, "127.0.0.3")
    mid_frame[1].write(b"\x0bMSH|half")
    await asyncio.sleep(0.02)
    recent = await _connect(source, "127.0.0.4")
    await _until(lambda: _open(source) == 3)
    newcomer = await _connect(source, "127.0.0.5")
    assert await _closed(oldest)
    assert await _exchange(newcomer) == b"\x0bACK\x1c\r"
    assert not await _closed(recent, 0.05) and not await _closed(mid_frame, 0.05)
    assert source.describe()["evicted"] == 1


async def test_a_full_listener_never_drops_a_connection_that_awaits_its_reply(listen):
    source, sink = await listen(max_connections=1)
    sink.gate = asyncio.Event()
    waiting = await _connect(source)
    waiting[1].write(wrap(b"MSH|slow commit"))
    await _until(lambda: sink.gate is not None and bool(source.workers))
    assert await _closed(await _connect(source, "127.0.0.2"))
    assert source.describe()["refused"] == {"listener full": 1}
    sink.gate.set()
    assert await asyncio.wait_for(waiting[0].readuntil(b"\x1c\r"), 2) == b"\x0bACK\x1c\r"


async def test_a_sender_that_half_closes_gets_its_replies_then_the_end_of_the_stream(listen):
    """`printf ... | nc`-style senders write, shut their side and read until the end: the
    listener answers what was sent and then closes, instead of idling for idle_timeout."""
    source, sink = await listen()
    sink.gate = asyncio.Event()
    reader, writer = await _connect(source)
    writer.write(wrap(b"MSH|one") + wrap(b"MSH|two"))
    await writer.drain()
    writer.write_eof()
    await asyncio.sleep(0.05)
    sink.gate.set()  # the replies are still owed when the sender's end arrives
    answered = await asyncio.wait_for(reader.read(), 3)
    assert answered == wrap(b"ACK") * 2
    assert sink.taken == [b"MSH|one", b"MSH|two"]
    writer.close()
