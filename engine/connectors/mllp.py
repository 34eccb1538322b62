"""MLLP over TCP: a listener (source) and a sender (destination).

The listener handles each connection's frames strictly in order and writes each reply
only after the channel's durable commit. Silent or slow peers are timed out on their own
connection: a frame must end within read_timeout of its first byte, however slowly its
bytes come. Who may connect at all, and who gives way when the listener is full, is
for engine.connectors.admission to decide; nothing one peer does can block another.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
from typing import Annotated

import msgspec
from msgspec import Meta

from engine.config.base import DestinationBase, SourceBase
from engine.config.types import ByteSize, Duration, Network
from engine.connectors.admission import Admission, peer_address, peer_key
from engine.connectors.base import Deliver, DestinationContext
from engine.connectors.mllp_framing import CR, END, STANDARD, START, Frame, Framer, Markers
from engine.connectors.tls import (
    ClientTls,
    ServerTls,
    client_context,
    exposed,
    peer_subject,
    server_context,
)
from engine.log_limit import RateLimitedLog
from engine.message import Delivery, Outbound, Receipt, Retry, SourceMeta

log = logging.getLogger("conduit.mllp")

_MAX_PENDING_FRAMES = 64  # frames a pipelining sender may have waiting before we pause it


class MllpSourceConfig(SourceBase, tag="mllp"):
    port: Annotated[int, Meta(ge=1, le=65535, description="TCP port to listen on")]
    host: Annotated[str, Meta(description="address to bind; 0.0.0.0 for every interface")] = (
        "127.0.0.1"
    )
    max_message_size: Annotated[
        ByteSize, Meta(description="larger frames are rejected with AR and kept truncated")
    ] = ByteSize(10 * 1024 * 1024)
    read_timeout: Annotated[
        Duration, Meta(description="time allowed to finish a frame, counted from its first "
                                   "byte")
    ] = Duration(30.0)
    idle_timeout: Annotated[
        Duration, Meta(description="a connection with no message for this long is closed")
    ] = Duration(600.0)
    max_connections: Annotated[
        int, Meta(ge=1, description="concurrent connections; when full, the longest-idle one "
                                    "gives way to a new one")
    ] = 200
    max_connections_per_peer: Annotated[
        int, Meta(ge=1, description="concurrent connections from one address (an IPv6 /64); "
                                    "beyond it, that peer's longest-idle one gives way")
    ] = 20
    allow: Annotated[
        list[Network], Meta(description="networks senders may connect from (CIDR, such as "
                                        "10.20.0.0/16 or fd00::/8); empty: any")
    ] = []
    tls: Annotated[
        ServerTls | None, Meta(description="serve MLLP over TLS (and require client "
                                           "certificates with client_ca)")
    ] = None
    insecure: Annotated[
        bool, Meta(description="allow listening on a non-loopback host without tls; PHI "
                               "then crosses the network in clear (logged, and shown on the "
                               "status page)")
    ] = False
    start_byte: Annotated[int, Meta(ge=0, le=255, description="frame start (0x0B)")] = START
    end_byte: Annotated[int, Meta(ge=0, le=255, description="frame end (0x1C)")] = END
    end_trailer: (
        Annotated[int, Meta(ge=0, le=255, description="byte after the end (0x0D); null: none")]
        | None
    ) = CR
    keepalive: Annotated[
        bool, Meta(description="TCP keep-alive, so a vanished peer's connection is noticed")
    ] = True

    def resources(self) -> list[str]:
        """What this source binds, so validation can catch two channels on one port."""
        return [f"tcp:{self.port}"]

    @property
    def markers(self) -> Markers:
        return Markers(self.start_byte, self.end_byte, self.end_trailer)


class _Connection(asyncio.Protocol):
    """One peer: frames in, replies out, in order."""

    def __init__(self, source: MllpSource) -> None:
        self._source = source
        self._framer = Framer(source.config.max_message_size, source.config.markers)
        self._pending: collections.deque[Frame] = collections.deque()
        self._worker: asyncio.Task | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._idle_since = 0.0  # connected, last frame in or last reply out
        self._frame_began: float | None = None  # first byte of the frame under way
        self._paused = False
        self._admitted = False
        self._eof = False  # the peer has sent all it will (half-closed its side)
        self.peer = ""
        self.host = ""  # the peer's address, without its port
        self.subject = ""  # the client certificate's subject under mutual TLS

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.host = str(peer[0]) if isinstance(peer, tuple) else str(peer or "")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else self.host
        self.subject = peer_subject(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and self._source.config.keepalive:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if not self._source.admission.admit(self, self.host):
            transport.close()
            return
        self._admitted = True
        self._arm_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._source.admission.leave(self)
        if self._timer is not None:
            self._timer.cancel()
        if self._framer.discarded:
            self._source.notice(logging.WARNING, "junk", self.host,
                                "mllp %s: dropped %d bytes outside MLLP framing from %s",
                                self._source.address, self._framer.discarded, self.peer)

    @property
    def idle_since(self) -> float | None:
        """When this connection last finished a message; None while one is under way (a
        frame arriving or a reply owed), when closing it would cut that message."""
        if self._framer.in_frame or self._busy:
            return None
        return self._idle_since

    @property
    def _busy(self) -> bool:
        return self._worker is not None and not self._worker.done()

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        frames = self._framer.feed(data)
        now = asyncio.get_running_loop().time()
        if frames:
            self._idle_since = now
        if not self._framer.in_frame:
            self._frame_began = None
        elif frames or self._frame_began is None:
            self._frame_began = now  # a frame has begun: its deadline counts from here
            self._advance_timer(now + self._source.config.read_timeout)
        if frames:
            self._pending.extend(frames)
            if self._worker is None or self._worker.done():
                self._worker = asyncio.ensure_future(self._work())
                self._source.workers.add(self._worker)
                self._worker.add_done_callback(self._source.workers.discard)
            if len(self._pending) > _MAX_PENDING_FRAMES and not self._paused:
                self._paused = True
                assert self._transport is not None
                self._transport.pause_reading()

    def eof_received(self) -> bool:
        # Keep the write side open until pending replies are sent; the worker then
        # closes, so a client that reads until end of stream is not left waiting.
        self._eof = True
        return self._busy

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def stop_reading(self) -> None:
        """Take no more frames (the listener is stopping); those received still finish."""
        self._admitted = False
        if self._transport is not None and not self._transport.is_closing():
            with contextlib.suppress(Exception):
                self._transport.pause_reading()

    def _arm_timer(self) -> None:
        """One timer per connection, moved later only when it fires: activity just records
        its time, so a busy connection costs no timer churn per message. A frame's start
        moves it earlier, to that frame's deadline."""
        loop = asyncio.get_running_loop()
        self._idle_since = loop.time()
        self._timer = loop.call_at(self._deadline(), self._timed_out)

    def _deadline(self) -> float:
        """The frame under way must end read_timeout after its first byte; between
        frames, a connection may stay idle_timeout after its last message."""
        cfg = self._source.config
        if self._frame_began is not None:
            return self._frame_began + cfg.read_timeout
        return self._idle_since + cfg.idle_timeout

    def _advance_timer(self, when: float) -> None:
        if self._timer is not None and self._timer.when() > when:
            self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_at(when, self._timed_out)

    def _timed_out(self) -> None:
        loop = asyncio.get_running_loop()
        if self._busy:  # we are the slow one, the peer awaits our reply: look again later
            self._timer = loop.call_later(self._source.config.read_timeout, self._timed_out)
            return
        deadline = self._deadline()
        if deadline > loop.time():
            self._timer = loop.call_at(deadline, self._timed_out)
            return
        what = "an unfinished frame" if self._framer.in_frame else "silence"
        self._source.notice(logging.INFO, what, self.host, "mllp %s: closing %s after %s",
                            self._source.address, self.peer, what)
        if self._transport is not None:
            self._transport.close()

    async def _work(self) -> None:
        transport = self._transport
        assert transport is not None
        while self._pending:
            frame = self._pending.popleft()
            meta = SourceMeta("mllp", self.peer, frame.size, frame.truncated, self.subject)
            try:
                receipt = await self._source.deliver(frame.payload, meta)
            except Exception as exc:  # the channel's bug must not leave the sender waiting
                log.error("mllp %s: a message from %s could not be taken on (%s); closing "
                          "the connection unanswered, so the sender sends it again",
                          self._source.address, self.peer, type(exc).__name__)
                self._pending.clear()
                transport.close()
                return
            if transport.is_closing():
                # The peer left before its reply; the message is stored and queued, so
                # nothing is lost; its sender will probably resend it.
                log.info("mllp %s: %s left before reply to message %s",
                         self._source.address, self.peer, receipt.message_id)
                continue
            for reply in receipt.replies:
                transport.write(self._source.config.markers.wrap(reply))
            receipt.replied()
            if self._paused and len(self._pending) <= _MAX_PENDING_FRAMES // 2:
                self._paused = False
                transport.resume_reading()
                if self._frame_began is not None:  # its bytes waited on us, not on the peer
                    self._frame_began = asyncio.get_running_loop().time()
        if self._eof:
            transport.close()
            return
        self._idle_since = asyncio.get_running_loop().time()
        self._advance_timer(self._deadline())  # a frame begun meanwhile may be overdue


class MllpSource:
    """Listens for MLLP connections and hands each frame to the channel."""

    def __init__(self, config: MllpSourceConfig, shared_port: bool = False) -> None:
        self.config = config
        self._shared_port = shared_port  # engine.connectors.base.SourceContext.shared_port
        self._notices = RateLimitedLog(log)
        self.admission = Admission(self.address, self._notices, limit=config.max_connections,
                                   per_peer=config.max_connections_per_peer,
                                   allow=config.allow)
        self.workers: set[asyncio.Task] = set()
        self._server: asyncio.base_events.Server | None = None
        self._deliver: Deliver | None = None
        self._adopted: socket.socket | None = None  # taken over from the source replaced

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    @property
    def connections(self) -> set[_Connection]:
        return self.admission.members  # type: ignore[return-value]

    def notice(self, level: int, what: str, host: str, message: str, *args: object) -> None:
        """Log a line about a peer at most once a minute per peer and kind of line, so a
        flood of connections cannot flood the log."""
        self._notices.log(level, (what, peer_key(peer_address(host), host)), message, *args)

    def resources(self) -> list[str]:
        return self.config.resources()

    async def deliver(self, payload: bytes, meta: SourceMeta) -> Receipt:
        assert self._deliver is not None
        return await self._deliver(payload, meta)

    def take_over(self, other: object) -> bool:
        """Listen, once started, on the very socket `other` (the source this one replaces
        in a swap) listens on: a copy of its descriptor keeps the port bound and its
        backlog kept after `other` stops, so a swap refuses no connection; those that
        come meanwhile wait in the backlog. False when `other` listens elsewhere."""
        if (not isinstance(other, MllpSource) or other._server is None
                or other.address != self.address or len(other._server.sockets) != 1):
            return False
        self._adopted = socket.socket(fileno=os.dup(other._server.sockets[0].fileno()))
        return True

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        loop = asyncio.get_running_loop()
        tls = server_context(self.config.tls) if self.config.tls else None
        # a handshake is counted nowhere until done: give it a frame's time
        handshake = self.config.read_timeout if tls else None
        if self._adopted is not None:
            sock, self._adopted = self._adopted, None
            self._server = await loop.create_server(
                lambda: _Connection(self), sock=sock, ssl=tls,
                ssl_handshake_timeout=handshake)
        else:
            self._server = await loop.create_server(
                lambda: _Connection(self), self.config.host, self.config.port,
                reuse_address=True, reuse_port=self._shared_port or None, ssl=tls,
                ssl_handshake_timeout=handshake)
        log.info("mllp listening on %s", self.address)
        if exposed(self.config.host, self.config.tls):
            log.warning("mllp %s: listening WITHOUT TLS on a network address (insecure: "
                        "true): messages cross the network in clear", self.address)

    async def stop(self) -> None:
        """Stop accepting, finish the frames already received, then close connections.
        Connections stop reading first: a frame arriving while the others finish would be
        committed after its connection closed, unanswered, and then sent again."""
        if self._server is not None:
            self._server.close()
        if self._adopted is not None:  # taken over but never started
            self._adopted.close()
            self._adopted = None
        for conn in list(self.connections):
            conn.stop_reading()
        while self.workers:
            await asyncio.gather(*list(self.workers), return_exceptions=True)
        for conn in list(self.connections):
            conn.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        self._server = None

    def describe(self) -> dict[str, object]:
        return {
            "address": f"{'mllps' if self.config.tls else 'mllp'}://{self.address}",
            "peers": sorted(c.peer for c in self.connections),
            "refused": dict(self.admission.refused),
            "evicted": self.admission.evicted,
            "insecure": exposed(self.config.host, self.config.tls),
        }


class MllpDestinationConfig(DestinationBase, tag="mllp"):
    host: Annotated[str, Meta(description="receiving system's host")] = ""
    port: Annotated[int, Meta(ge=0, le=65535, description="receiving system's MLLP port")] = 0
    address: (
        Annotated[str, Meta(pattern=r"^[^\s:]+:\d{1,5}$",
                            description="host:port in one value (one environment variable), "
                                        "instead of host and port")]
        | None
    ) = None
    connect_timeout: Annotated[Duration, Meta(description="limit for connecting")] = Duration(
        10.0
    )
    tls: Annotated[
        ClientTls | None, Meta(description="send over TLS (verify the receiver; present a "
                                           "client certificate for mutual TLS)")
    ] = None
    start_byte: Annotated[int, Meta(ge=0, le=255, description="frame start (0x0B)")] = START
    end_byte: Annotated[int, Meta(ge=0, le=255, description="frame end (0x1C)")] = END
    end_trailer: (
        Annotated[int, Meta(ge=0, le=255, description="byte after the end (0x0D); null: none")]
        | None
    ) = CR

    def __post_init__(self) -> None:
        if self.address:
            host, _, port = self.address.rpartition(":")
            msgspec.structs.force_setattr(self, "host", host)
            msgspec.structs.force_setattr(self, "port", int(port))
        if not self.host or not 1 <= self.port <= 65535:
            raise ValueError("give host and port (1-65535), or address as host:port")


class MllpClient:
    """One MLLP connection that sends a frame and waits for the reply frame."""

    def __init__(self, host: str, port: int, max_reply: int = 10 * 1024 * 1024, *,
                 tls: ClientTls | None = None, markers: Markers = STANDARD) -> None:
        self.host = host
        self.port = port
        self._tls = client_context(tls) if tls else None
        self._server_name = (tls.server_name or host) if tls else None
        self._markers = markers
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._framer = Framer(max_reply, markers)
        self._frames: collections.deque[Frame] = collections.deque()

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self, timeout: float) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=self._tls,
                                    server_hostname=self._server_name), timeout
        )
        self._framer = Framer(self._framer.max_size, self._markers)
        self._frames.clear()

    async def exchange(self, payload: bytes, timeout: float) -> bytes:
        """Send one message and return the next reply frame's payload."""
        assert self._writer is not None and self._reader is not None
        self._writer.write(self._markers.wrap(payload))
        await self._writer.drain()
        return await asyncio.wait_for(self._next_frame(), timeout)

    async def _next_frame(self) -> bytes:
        assert self._reader is not None
        while not self._frames:
            data = await self._reader.read(65536)
            if not data:
                raise ConnectionError("connection closed before the acknowledgement")
            self._frames.extend(self._framer.feed(data))
        return self._frames.popleft().payload

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        self._writer = self._reader = None


class MllpDestination:
    """Sends each message over one kept-open MLLP connection and reads the receiver's
    acknowledgement through the codec."""

    def __init__(self, config: MllpDestinationConfig, context: DestinationContext) -> None:
        self.config = config
        self._context = context
        self._client = MllpClient(
            config.host, config.port, tls=config.tls,
            markers=Markers(config.start_byte, config.end_byte, config.end_trailer))
        # One exchange at a time on the one connection: with `concurrency` (order per
        # patient) several sends wait here in turn, while a patient waiting for its next
        # attempt holds back no one.
        self._turn = asyncio.Lock()

    @property
    def address(self) -> str:
        scheme = "mllps" if self.config.tls else "mllp"
        return f"{scheme}://{self.config.host}:{self.config.port}"

    async def open(self) -> None:
        """Connect lazily on first send, so a down receiver does not stop the engine."""

    async def send(self, outbound: Outbound) -> Delivery:
        async with self._turn:
            return await self._send(outbound)

    async def _send(self, outbound: Outbound) -> Delivery:
        reader = self._context.reply_reader
        try:
            if not self._client.connected:
                await self._client.connect(self.config.connect_timeout)
            reply = await self._client.exchange(outbound.content, self.config.timeout)
        except TimeoutError:
            await self._client.close()
            return Retry("no acknowledgement within the timeout")
        except OSError as exc:
            await self._client.close()
            return Retry(f"connection failed: {exc.strerror or type(exc).__name__}")
        except ConnectionError as exc:
            await self._client.close()
            return Retry(str(exc))
        if reader is None:
            return Retry("channel has no codec to read acknowledgements")
        return reader.read_reply(reply, outbound)

    async def healthcheck(self) -> str | None:
        if self._client.connected:
            return None
        try:
            await self._client.connect(self.config.connect_timeout)
        except (OSError, TimeoutError) as exc:
            return f"cannot connect to {self.config.host}:{self.config.port}: {exc}"
        return None

    async def close(self) -> None:
        await self._client.close()
