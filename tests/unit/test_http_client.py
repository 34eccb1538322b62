"""The HTTP destinations' own client (engine.connectors.http_client) against a raw
loopback server that answers as the test scripts it: how each way of ending an answer
is read, and when a connection is reused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from engine.connectors.http_client import BadAnswer, ConnectionClosed, HttpClient

Answerer = Callable[[bytes], bytes | None]  # the request -> what to write (None: close)


class Server:
    """Answers each request on a connection with the next answer of the script."""

    def __init__(self, *answers: bytes | None, close_after: bool = False,
                 piece: int | None = None) -> None:
        self.answers = list(answers)
        self.piece = piece  # bytes per write; None: two writes
        self.requests: list[bytes] = []
        self.connections = 0
        self.close_after = close_after
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: list[asyncio.Future[None]] = []

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await asyncio.wait_for(asyncio.gather(*self._handlers), 5)  # each ends on its own

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        done = asyncio.get_running_loop().create_future()
        self._handlers.append(done)
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0)
                if answer is None:
                    break
                step = self.piece or 7
                pieces = ([answer[i:i + step] for i in range(0, len(answer), step)]
                          if self.piece else [answer[:7], answer[7:]])  # never in one read
                for piece in pieces:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.002 if self.piece else 0.01)
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()
        done.set_result(None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir/Patient?x=1"


async def test_an_answer_by_content_length_and_the_connection_kept_for_the_next():
    ok = b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nRetry-After: 3\r\n\r\nhello"
    async with Server(ok, ok) as server:
        client = HttpClient(2, headers={"X-Site": "north"})
        first = await client.request("POST", server.url, {"Content-Type": "a/b"}, b"{}")
        second = await client.request("PUT", server.url, {}, b"[1]")
        client.close()
    assert (first.status, first.body, first.headers.get("retry-after")) == (201, b"hello", "3")
    assert second.body == b"hello" and server.connections == 1
    head = server.requests[0].decode()
    assert head.startswith("POST /fhir/Patient?x=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n" in head and "X-Site: north\r\n" in head
    assert "Content-Type: a/b\r\n" in head and head.endswith("Content-Length: 2\r\n\r\n{}")
    assert server.requests[1].endswith(b"\r\n\r\n[1]")


async def test_a_chunked_answer_after_an_interim_one():
    answer = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
              b"\r\n\r\n4\r\nwiki\r\n6;ext=1\r\npedia \r\n0\r\nTrailer: x\r\n\r\n")
    async with Server(answer, answer) as server:
        client = HttpClient(1)
        got = await client.request("POST", server.url, {}, b"")
        again = await client.request("POST", server.url, {}, b"")
        client.close()
    assert (got.status, got.body, again.body) == (200, b"wikipedia ", b"wikipedia ")
    assert server.connections == 1


async def test_an_answer_ended_by_closing_and_a_new_connection_after_it():
    answer = b"HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\nbroken"
    async with Server(answer, answer, close_after=True) as server:
        client = HttpClient(1)
        got = await client.request("POST", server.url, {}, b"")
        again = await client.request("POST", server.url, {}, b"")
        client.close()
    assert (got.status, got.body, again.body) == (500, b"broken", b"broken")
    assert server.connections == 2


async def test_a_connection_the_receiver_closed_while_idle_is_not_reused():
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    async with Server(ok, ok, close_after=True) as server:
        client = HttpClient(1)
        await client.request("POST", server.url, {}, b"")  # kept: it said nothing of closing
        await asyncio.sleep(0.05)  # the receiver closes it meanwhile
        assert (await client.request("POST", server.url, {}, b"")).body == b"{}"
        client.close()
    assert server.connections == 2


async def test_a_body_is_read_up_to_the_limit_and_that_connection_dropped():
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100  # and more
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    async with Server(big, ok) as server:
        client = HttpClient(1, max_body=10)
        got = await client.request("POST", server.url, {}, b"")
        assert got.body == b"x" * 10
        assert (await client.request("POST", server.url, {}, b"")).body == b"{}"
        client.close()
    assert server.connections == 2


async def test_a_receiver_that_closes_without_answering():
    async with Server(None) as server:
        client = HttpClient(1)
        with pytest.raises(ConnectionClosed):
            await client.request("POST", server.url, {}, b"")
        client.close()


async def test_a_header_with_a_line_break_is_never_sent():
    async with Server() as server:
        client = HttpClient(1)
        with pytest.raises(ValueError, match="line break"):
            await client.request("POST", server.url, {"X-A": "1\r\nX-B: 2"}, b"")
        client.close()
        assert server.connections == 0


async def test_a_huge_chunk_is_read_up_to_the_limit_not_waited_for_whole():
    # A receiver announcing a 4 GB chunk: the client must not buffer until it all comes.
    huge = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFF\r\n"
            + b"x" * 100)  # and the connection stays open
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    async with Server(huge, ok) as server:
        client = HttpClient(1, max_body=10)
        got = await asyncio.wait_for(client.request("POST", server.url, {}, b""), 5)
        assert (got.status, got.body) == (200, b"x" * 10)
        assert (await client.request("POST", server.url, {}, b"")).body == b"{}"
        client.close()
    assert server.connections == 2  # the one left mid-chunk was dropped


async def test_a_chunked_answer_split_everywhere_is_read_whole():
    answer = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n1;x=y\r\n!\r\n0\r\n\r\n")
    async with Server(answer, answer, piece=3) as server:
        client = HttpClient(1)
        got = await client.request("POST", server.url, {}, b"")
        again = await client.request("POST", server.url, {}, b"")
        client.close()
    assert (got.body, again.body, server.connections) == (b"hello!", b"hello!", 1)


async def test_a_chunk_not_followed_by_its_line_end_is_refused():
    bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}xx0\r\n\r\n"
    async with Server(bad) as server:
        client = HttpClient(1)
        with pytest.raises(BadAnswer, match="chunked"):
            await client.request("POST", server.url, {}, b"")
        client.close()


@pytest.mark.parametrize("length", [b"-5", b"+2", b"1_0"])
async def test_a_content_length_that_is_not_a_plain_number_is_refused(length):
    bad = b"HTTP/1.1 200 OK\r\nContent-Length: " + length + b"\r\n\r\n{}"
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    async with Server(bad, ok) as server:
        client = HttpClient(1)
        with pytest.raises(BadAnswer, match="Content-Length"):
            await client.request("POST", server.url, {}, b"")
        assert (await client.request("POST", server.url, {}, b"")).body == b"{}"
        client.close()
    assert server.connections == 2  # the connection that answered it was not reused
