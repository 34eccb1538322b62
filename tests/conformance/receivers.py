"""Receiving systems a destination conformance test controls: an HTTP server that answers
as scripted, an MLLP receiver whose negative acknowledgements quote the patient back (as
real systems do), and a raw TCP peer that misbehaves below the protocol (garbage, a
reset in the middle of an answer, silence)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import deque
from dataclasses import dataclass, field

from aiohttp import web

from engine.connectors.mllp_framing import Framer, wrap
from tests.loopback import LoopbackServer


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class HttpReceiver(LoopbackServer):
    """Records every request; answers each with the next scripted Reply, else `default`."""

    def __init__(self, default: Reply | None = None) -> None:
        super().__init__()
        self.default = default or Reply(200)
        self.script: deque[Reply] = deque()
        self.received: list[Request] = []

    async def start(self) -> HttpReceiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        await self.serve(app)
        return self

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append(Request(request.method, request.path_qs, dict(request.headers),
                                     await request.read()))
        reply = self.script.popleft() if self.script else self.default
        return web.Response(status=reply.status, body=reply.body, headers=reply.headers)


class MllpPeer:
    """An MLLP receiving system: answers each frame with the next scripted acknowledgement
    (whole HL7 text, the frame's control id filled in for {control}), else AA."""

    def __init__(self) -> None:
        self.script: deque[str] = deque()
        self.received: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> MllpPeer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        framer = Framer(10 * 1024 * 1024)
        try:
            while data := await reader.read(65536):
                for frame in framer.feed(data):
                    self.received.append(frame.payload)
                    control = frame.payload.split(b"\r", 1)[0].split(b"|")[9].decode()
                    ack = self.script.popleft() if self.script else ack_text("AA")
                    writer.write(wrap(ack.format(control=control).encode()))
                    await writer.drain()
        except (ConnectionError, IndexError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


def ack_text(code: str, text: str = "", err: str = "") -> str:
    """An acknowledgement for {control}; `text` goes in MSA-3, `err` is a whole ERR."""
    ack = "MSH|^~\\&|RCV|RCV|SND|SND|20240101||ACK|R{control}|P|2.5.1\r"
    ack += f"MSA|{code}|{{control}}|{text}\r"
    return ack + (f"{err}\r" if err else "")


class RawPeer:
    """A TCP peer that reads one request (HTTP: head and Content-Length body; MLLP: up to
    the end byte), then writes `answer` and either closes, resets (RST) or, with
    `silent`, says nothing until stopped."""

    def __init__(self, answer: bytes = b"", *, http: bool, reset: bool = False,
                 silent: bool = False) -> None:
        self.answer = answer
        self.http = http
        self.reset = reset
        self.silent = silent
        self.requests = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> RawPeer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _read_request(self, reader: asyncio.StreamReader) -> None:
        if not self.http:
            await reader.readuntil(b"\x1c")
            return
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._read_request(reader)
            self.requests += 1
            if self.silent:
                await reader.read()  # until the client gives up or we stop
                return
            writer.write(self.answer)
            await writer.drain()
            if self.reset:
                await asyncio.sleep(0.05)  # let the partial answer reach the client
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()
