"""engine/connectors/http_source.py beyond the source contract (tests/conformance):
what HTTP itself refuses before anything reaches the channel, and how a request/response
channel's outcome is said to a caller that has no acknowledgement of its own for it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import msgspec
import pytest

from engine import registry
from engine.config.types import dec_hook
from engine.connectors.base import SourceContext
from engine.events import Event, Kind
from engine.message import MessageStatus, Receipt, Response, SourceMeta
from tests.harness import free_port

BODY = b"ISA*00*...~"


class Inbox:
    def __init__(self) -> None:
        self.got: list[tuple[bytes, SourceMeta]] = []
        self.answer: Receipt = Receipt("M1", MessageStatus.ACCEPTED, replies=(b"ACK",))
        self.hold: asyncio.Event | None = None

    async def __call__(self, raw: bytes, meta: SourceMeta) -> Receipt:
        self.got.append((raw, meta))
        if self.hold is not None:
            await self.hold.wait()
        return self.answer


async def start(**more: Any) -> tuple[Any, Inbox, str, list[Event]]:
    port = free_port()
    kind = registry.SOURCES["http"]
    cfg = msgspec.convert({"type": "http", "port": port, "auth": {"type": "none"},
                           "path": "/in", **more}, kind.config, dec_hook=dec_hook,
                          strict=False)
    events: list[Event] = []

    async def record(event: Event) -> None:
        events.append(event)

    source = kind.factory(cfg, SourceContext("elig", None, record, "application/edi-x12"))
    inbox = Inbox()
    await source.start(inbox)
    return source, inbox, f"http://127.0.0.1:{port}", events


async def call(url: str, body: bytes = BODY, method: str = "POST",
               **headers: str) -> tuple[int, Any, bytes]:
    async with aiohttp.ClientSession() as http, \
            http.request(method, url, data=body, headers=headers) as resp:
        return resp.status, resp.headers, await resp.read()


@pytest.fixture
async def running():
    source, inbox, url, events = await start(max_request_size=64, max_requests_per_peer=2)
    yield source, inbox, url, events
    await source.stop()


async def test_the_reply_comes_back_labelled_with_the_codecs_content_type(running):
    _, inbox, url, _ = running
    status, headers, body = await call(url + "/in")
    assert (status, body) == (200, b"ACK")
    assert headers["Content-Type"].startswith("application/edi-x12")
    assert headers["X-Conduit-Message-Id"] == "M1"
    assert inbox.got[0][0] == BODY and inbox.got[0][1].transport == "http"


async def test_what_http_judges_is_refused_before_the_channel_sees_it(running):
    _, inbox, url, _ = running
    assert (await call(url + "/elsewhere"))[0] == 404
    status, headers, _ = await call(url + "/in", method="GET")
    assert status == 405 and headers["Allow"] == "POST"
    assert (await call(url + "/in", b"x" * 65))[0] == 413
    assert (await call(url + "/in", b"  "))[0] == 400
    assert inbox.got == []


async def test_a_peer_over_its_requests_in_flight_is_told_to_wait(running):
    _, inbox, url, _ = running
    inbox.hold = asyncio.Event()
    held = [asyncio.ensure_future(call(url + "/in")) for _ in range(2)]
    while len(inbox.got) < 2:
        await asyncio.sleep(0.01)
    status, headers, _ = await call(url + "/in")
    assert status == 429 and headers["Retry-After"]
    inbox.hold.set()
    assert [s for s, _, _ in await asyncio.gather(*held)] == [200, 200]


@pytest.mark.parametrize(("response", "status", "text"), [
    (Response("answered", b"ISA*271~", "application/edi-x12"), 200, b"ISA*271~"),
    (Response("timeout", reason="no answer from payer within 10s"), 504, b"no answer"),
    (Response("refused", reason="payer refused: CORE ErrorCode X", code="X"), 502,
     b"CORE ErrorCode X"),
], ids=["answered", "timeout", "refused"])
async def test_a_request_response_outcome_as_http(running, response, status, text):
    _, inbox, url, _ = running
    inbox.answer = Receipt("M1", MessageStatus.ACCEPTED, response=response)
    got, headers, body = await call(url + "/in")
    assert got == status and text in body
    assert headers["X-Conduit-Message-Id"] == "M1"


async def test_a_missing_token_is_refused_and_audited():
    source, inbox, url, events = await start(auth={"type": "users"})
    try:
        status, headers, _ = await call(url + "/in")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert inbox.got == []
        [event] = events
        assert event.kind is Kind.DENIED and event.detail["status"] == 401
    finally:
        await source.stop()


async def test_an_address_outside_allow_is_refused():
    source, inbox, url, _ = await start(allow=["10.20.0.0/16"])
    try:
        assert (await call(url + "/in"))[0] == 403
        assert inbox.got == []
    finally:
        await source.stop()


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        await asyncio.wait_for(reader.read(), seconds)
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


async def test_headers_that_never_finish_are_closed_after_read_timeout():
    """Slowloris: a request line and half a header, then a byte now and then. The body's
    deadline never starts, so the connection's own must close it."""
    source, inbox, url, _ = await start(read_timeout="0.5s")
    port = int(url.rsplit(":", 1)[1])
    try:
        silent = await asyncio.open_connection("127.0.0.1", port)
        silent[1].write(b"POST /in HTTP/1.1\r\nHost: x\r\n")
        dripping = await asyncio.open_connection("127.0.0.1", port)
        dripping[1].write(b"POST /in HTTP/1.1\r\n")
        drip = asyncio.ensure_future(_drip(dripping[1]))
        assert await _closed_within(silent[0], 3)
        assert await _closed_within(dripping[0], 3)
        drip.cancel()
        assert (await call(url + "/in"))[0] == 200
        assert len(inbox.got) == 1
    finally:
        await source.stop()


async def _drip(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while True:
            writer.write(b"X")
            await writer.drain()
            await asyncio.sleep(0.1)


async def test_a_peer_at_its_connection_limit_loses_its_idle_ones_not_its_requests():
    source, inbox, url, _ = await start(max_connections_per_peer=3)
    port = int(url.rsplit(":", 1)[1])
    try:
        inbox.hold = asyncio.Event()
        working = asyncio.ensure_future(call(url + "/in"))
        while not inbox.got:
            await asyncio.sleep(0.01)
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
        closed = [await _closed_within(reader, 1) for reader, _ in idle]
        assert closed == [True, True, True, False, False]  # the oldest idle gave way
        inbox.hold.set()
        assert (await working)[0] == 200  # the request under way was never cut
        assert source.describe()["evicted"] == 3
    finally:
        await source.stop()
