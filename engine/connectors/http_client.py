"""A small HTTP/1.1 client for the HTTP destinations: a request, its answer, nothing else.

Why not aiohttp here: on the bench's sink one aiohttp request cost 180 us of CPU (a task,
a timer and a dozen objects per request) against 60 us for this, and a FIFO destination
sends one request after another, so that time is its whole throughput. What it does:
keep-alive connections, a few per destination, reused while the receiver keeps them
open and for IDLE_SECONDS at most; TLS through the event loop (the caller's context and
server name); answers delimited by Content-Length, chunked encoding or the connection's
end; 1xx interim answers skipped; a body read up to a limit, the connection dropped
past it. No redirects, cookies or compression: a receiver that answers 3xx is told
apart by its status like any other. Errors are OSError (ssl.SSLError for TLS) and
ConnectionClosed; the caller owns time limits (a connection a time limit interrupted is
never reused).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from dataclasses import dataclass

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

IDLE_SECONDS = 30.0  # an idle connection older than this is closed, not reused
MAX_HEAD = 64 * 1024  # status line and headers; a chunk's size line and the trailers


class ConnectionClosed(ConnectionError):
    """The receiver closed the connection before its answer was complete."""


class BadAnswer(ConnectionError):
    """What came back is not HTTP/1.x."""


@dataclass(slots=True)
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class HttpClient:
    """Connections to the origins one destination sends to, at most `limit` at once."""

    def __init__(self, limit: int, tls: ssl.SSLContext | None = None,
                 server_name: str | None = None, max_body: int = 8 * 1024 * 1024,
                 headers: dict[str, str] | None = None) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._tls = tls
        self._server_name = server_name
        self._max_body = max_body
        self._headers = "".join(f"{_header(k)}: {_header(v)}\r\n"
                                for k, v in (headers or {}).items())
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._default_tls: ssl.SSLContext | None = None

    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes
                      ) -> Answer:
        parsed = URL(url)
        scheme, host = parsed.scheme, parsed.raw_host or ""
        port = parsed.port or (443 if scheme == "https" else 80)
        head = [f"{method} {parsed.raw_path_qs} HTTP/1.1\r\nHost: {_host_header(parsed)}\r\n",
                self._headers]
        head += [f"{_header(k)}: {_header(v)}\r\n" for k, v in headers.items()]
        if "accept" not in {k.lower() for k in headers}:
            head.append("Accept: */*\r\n")
        head.append(f"Content-Length: {len(body)}\r\n\r\n")
        data = "".join(head).encode("utf-8") + body
        async with self._slots:
            conn = await self._connection(scheme, host, port)
            try:
                answer = await conn.exchange(data, self._max_body)
            except ConnectionClosed:
                conn.close()
                if scheme == "https" and not conn.used:
                    raise ConnectionClosed(
                        "the receiver closed the connection after the TLS handshake, before "
                        "answering (how TLS 1.3 refuses a missing or unknown client "
                        "certificate)") from None
                raise
            except BaseException:  # failed, timed out or cancelled: never reused
                conn.close()
                raise
            conn.used = True
            if conn.reusable:
                conn.idle_since = time.monotonic()
                self._idle.setdefault((scheme, host, port), deque()).append(conn)
            else:
                conn.close()
            return answer

    async def _connection(self, scheme: str, host: str, port: int) -> _Connection:
        idle = self._idle.get((scheme, host, port))
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used: the likeliest to be still open
            if conn.open and now - conn.idle_since < IDLE_SECONDS:
                return conn
            conn.close()
        tls = None
        if scheme == "https":
            tls = self._tls or self._default_context()
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            lambda: _Connection(self._open), host, port, ssl=tls,
            server_hostname=(self._server_name or host) if tls is not None else None)
        return conn

    def _default_context(self) -> ssl.SSLContext:
        if self._default_tls is None:
            self._default_tls = ssl.create_default_context()
        return self._default_tls

    def close(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._idle.clear()


class _Connection(asyncio.Protocol):
    """One connection: one exchange at a time, the answer parsed as it arrives."""

    def __init__(self, registry: set[_Connection]) -> None:
        self._registry = registry
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Answer] | None = None
        self._buf = bytearray()
        self._max_body = 0
        self._status = 0
        self._headers: CIMultiDictProxy[str] | None = None
        self._length: int | None = None  # None: chunked or until the end
        self._chunked = False
        self._chunk_left = 0  # bytes of the current chunk still to come
        self._chunk_end = False  # the CRLF closing a chunk's data is still to come
        self._body = bytearray()
        self.open = False
        self.reusable = False
        self.used = False  # an exchange completed on it
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.open = True
        self._registry.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = self.reusable = False
        self._registry.discard(self)
        if self._waiter is not None and not self._waiter.done():
            if self._headers is not None and self._length is None and not self._chunked:
                self._finish(keep=False)  # an answer delimited by the connection's end
            else:
                self._waiter.set_exception(exc or ConnectionClosed(
                    "the receiver closed the connection before answering"))

    def close(self) -> None:
        self.open = self.reusable = False
        if self._transport is not None:
            self._transport.close()

    async def exchange(self, data: bytes, max_body: int) -> Answer:
        if not self.open or self._transport is None:
            raise ConnectionClosed("the connection was closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self._max_body, self.reusable = max_body, False
        self._status, self._headers, self._length, self._chunked = 0, None, None, False
        self._chunk_left, self._chunk_end = 0, False
        self._body = bytearray()
        self._transport.write(data)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: the connection's state is unknown
            return
        self._buf += data
        try:
            self._parse()
        except BadAnswer as exc:
            self._waiter.set_exception(exc)
            self.close()

    def _parse(self) -> None:
        while self._headers is None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_HEAD:
                    raise BadAnswer("the answer's headers are too long")
                return
            head, self._buf = bytes(self._buf[:end]), self._buf[end + 4:]
            self._read_head(head)
        if self._chunked:
            self._read_chunks()
        elif self._length is not None:
            need = self._length - len(self._body)
            self._body += self._buf[:need]
            del self._buf[:need]
            if len(self._body) >= self._length:
                self._finish(keep=True)
            elif len(self._body) >= self._max_body:
                self._finish(keep=False)
        else:  # until the connection ends
            self._body += self._buf
            self._buf.clear()
            if len(self._body) >= self._max_body:
                self._finish(keep=False)

    def _read_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdecimal():
            raise BadAnswer("the answer is not HTTP/1.x")
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers.add(name.strip(), value.strip())
        status = int(code)
        if status < 200:  # 100 Continue and other interim answers: the real one follows
            return
        self._status, self._headers = status, CIMultiDictProxy(headers)
        close = "close" in headers.get("Connection", "").lower() or version == "HTTP/1.0"
        if "chunked" in headers.get("Transfer-Encoding", "").lower():
            self._chunked = True
        elif status in (204, 304):
            self._length = 0
        elif "Content-Length" in headers:
            length = headers["Content-Length"]
            if not (length.isascii() and length.isdecimal()):  # int() takes "-5", "+5", "1_0"
                raise BadAnswer("the answer's Content-Length is not a number")
            self._length = int(length)
        self.reusable = not close and (self._chunked or self._length is not None)

    def _read_chunks(self) -> None:
        """A chunk's data joins the body as it arrives, not once it is whole: a receiver
        announcing a chunk of 4 GB must not make this buffer grow past the body's limit."""
        while True:
            if self._chunk_left:
                part = self._buf[:self._chunk_left]
                self._body += part
                del self._buf[:len(part)]
                self._chunk_left -= len(part)
                if len(self._body) >= self._max_body:
                    self._finish(keep=False)
                    return
                if self._chunk_left:
                    return
                self._chunk_end = True
            if self._chunk_end:
                if len(self._buf) < 2:
                    return
                if self._buf[:2] != b"\r\n":
                    raise BadAnswer("the answer's chunked encoding is broken")
                del self._buf[:2]
                self._chunk_end = False
            line_end = self._buf.find(b"\r\n")
            if line_end < 0:
                if len(self._buf) > MAX_HEAD:
                    raise BadAnswer("the answer's chunk size line is too long")
                return
            try:
                size = int(bytes(self._buf[:line_end]).split(b";", 1)[0], 16)
            except ValueError:
                raise BadAnswer("the answer's chunked encoding is broken") from None
            if size < 0:
                raise BadAnswer("the answer's chunked encoding is broken")
            if size == 0:  # the last chunk, then trailers up to an empty line
                end = self._buf.find(b"\r\n\r\n", line_end)
                if end < 0:
                    if len(self._buf) > MAX_HEAD:
                        raise BadAnswer("the answer's trailers are too long")
                    return
                del self._buf[:end + 4]
                self._finish(keep=True)
                return
            del self._buf[:line_end + 2]
            self._chunk_left = size

    def _finish(self, keep: bool) -> None:
        assert self._waiter is not None and self._headers is not None
        self.reusable = self.reusable and keep and not self._buf
        self._waiter.set_result(Answer(self._status, self._headers,
                                       bytes(self._body[:self._max_body])))


def _header(text: str) -> str:
    """A header name or value as sent; a line break in one would start a header (or a
    request) of someone else's choosing."""
    if "\r" in text or "\n" in text:
        raise ValueError("an HTTP header holds a line break")
    return text


def _host_header(url: URL) -> str:
    host = url.raw_host or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return host if url.is_default_port() else f"{host}:{url.port}"
