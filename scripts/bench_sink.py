"""The bench's receiving system: an HTTP/1.1 server that answers 200 to every request and
records when each benchmark message arrived.

A FHIR client (a request with `Accept: application/fhir+json`, as the engine's fhir
destination sends) gets what a FHIR server answers a transaction: a transaction-response
Bundle with one `201 Created` entry per entry of the request (the destination reads it
entry by entry); any other client gets `{}`.

A raw asyncio protocol rather than aiohttp, so that the sink costs far less per request
than the engine and is never what the bench measures. Each generated message carries a
unique patient id `BENCH<9 digits>` that the mapping copies into the FHIR Bundle; the
sink finds it with one bytes search and keeps the first receipt time (time.time(), the
clock the load generator uses) per id. Redeliveries are counted, not recorded twice.

Control, one line each on stdin, answer on stdout:
  `count`       -> `COUNT <unique ids> <requests> <requests without an id>`
  `dump <path>` -> writes {"requests", "unmatched", "first": {id: time}} as JSON -> `DUMPED`
Prints `PORT <n>` once listening; stops on SIGTERM or when stdin closes. `--delay S`
answers each request S seconds after it arrived (a slow receiving system; requests on
different connections overlap, as a real server's do).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from typing import cast

MARK = b"BENCH"
ID_DIGITS = 9
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2\r\n\r\n{}")
FHIR_ACCEPT = b"accept: application/fhir+json"
_ENTRY = b'{"response":{"status":"201 Created"}}'
_FHIR_RESPONSES: dict[int, bytes] = {}


def fhir_response(entries: int) -> bytes:
    """200 with a transaction-response Bundle of `entries` entries (built once per size)."""
    cache = _FHIR_RESPONSES
    if entries not in cache:
        body = (b'{"resourceType":"Bundle","type":"transaction-response","entry":['
                + b",".join([_ENTRY] * entries) + b"]}")
        cache[entries] = (b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
                          b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return cache[entries]


class Records:
    """What the sink saw, shared by all connections."""

    def __init__(self) -> None:
        self.first: dict[int, float] = {}
        self.requests = 0
        self.unmatched = 0

    def note(self, body: bytes | bytearray, now: float) -> None:
        self.requests += 1
        at = body.find(MARK)
        digits = body[at + len(MARK):at + len(MARK) + ID_DIGITS] if at >= 0 else b""
        if len(digits) != ID_DIGITS or not digits.isdigit():
            self.unmatched += 1
            return
        self.first.setdefault(int(digits), now)


class HttpSink(asyncio.Protocol):
    """Minimal HTTP/1.1: Content-Length or chunked bodies, keep-alive, pipelining."""

    def __init__(self, records: Records, delay: float = 0.0) -> None:
        self._records = records
        self._delay = delay
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        now = time.time()
        while True:
            body_and_end = self._one_request()
            if body_and_end is None:
                return
            body, end, fhir = body_and_end
            del self._buf[:end]
            self._records.note(body, now)
            assert self._transport is not None
            answer = fhir_response(body.count(b'"request"')) if fhir else RESPONSE
            if self._delay:
                asyncio.get_running_loop().call_later(self._delay, self._answer, answer)
            else:
                self._transport.write(answer)

    def _answer(self, answer: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(answer)

    def _one_request(self) -> tuple[bytes | bytearray, int, bool] | None:
        """(body, bytes consumed, whether a FHIR client asks) of the first complete request
        in the buffer, or None."""
        buf = self._buf
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        start = head_end + 4
        head = bytes(buf[:head_end]).lower()
        fhir = FHIR_ACCEPT in head
        if b"transfer-encoding: chunked" in head:
            chunked = _dechunk(buf, start)
            return None if chunked is None else (*chunked, fhir)
        length = 0
        at = head.find(b"content-length:")
        if at >= 0:
            line_end = head.find(b"\r\n", at)
            length = int(head[at + 15:line_end if line_end >= 0 else None])
        if len(buf) < start + length:
            return None
        return buf[start:start + length], start + length, fhir


def _dechunk(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """A chunked body starting at `pos`, if complete (trailers are not expected)."""
    parts: list[bytes] = []
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
        pos = line_end + 2
        if len(buf) < pos + size + 2:
            return None
        if size == 0:
            return b"".join(parts), pos + 2
        parts.append(bytes(buf[pos:pos + size]))
        pos += size + 2


async def control(records: Records, stop: asyncio.Event) -> None:
    """Answer the bench's commands on stdin; stdin closing means the bench has gone."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        cmd, _, arg = line.decode().strip().partition(" ")
        if cmd == "count":
            print(f"COUNT {len(records.first)} {records.requests} {records.unmatched}",
                  flush=True)
        elif cmd == "dump":
            with open(arg, "w") as out:
                json.dump({"requests": records.requests, "unmatched": records.unmatched,
                           "first": records.first}, out)
            print("DUMPED", flush=True)
    stop.set()


async def serve(port: int, delay: float = 0.0) -> None:
    loop = asyncio.get_running_loop()
    records = Records()
    server = await loop.create_server(lambda: HttpSink(records, delay), "127.0.0.1", port,
                                      reuse_address=True, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    commands = asyncio.ensure_future(control(records, stop))
    await stop.wait()
    commands.cancel()
    server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0,
                        help="seconds before each answer (a slow receiver)")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.port, args.delay))
    else:
        uvloop.run(serve(args.port, args.delay))
    return 0


if __name__ == "__main__":
    sys.exit(main())
