"""The HTTP listener the HTTP-based sources (fhir, http) share: one aiohttp app that
hands every request to the source, bounded in body size, with TLS when configured, and
a warning when it listens on a network address in clear (`insecure: true`); connections
bounded per peer and in all, and each closed when no request arrives in time
(ConnectionGuard, shared with the status page); and the reading of a request body
bounded in size and in time, each source answering a refusal in its own standard's
words."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from aiohttp import web
from msgspec import Meta

from engine.config.types import Duration
from engine.connectors.admission import Admission
from engine.connectors.tls import exposed, server_context
from engine.log_limit import RateLimitedLog

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The settings every HTTP source takes for its listener (engine.connectors.fhir_source,
# engine.connectors.http_source), described once.
ReadTimeout = Annotated[Duration, Meta(
    description="time allowed to receive a request's body (408 after), and its headers "
                "after the connection opened or the last answer (the connection is closed "
                "after)")]
MaxConnections = Annotated[int, Meta(
    ge=1, description="connections held at once; at the limit the longest-idle gives way "
                      "to a new one")]
MaxConnectionsPerPeer = Annotated[int, Meta(
    ge=1, description="connections one address (an IPv6 /64) may hold; beyond it, that "
                      "peer's longest-idle one gives way")]


class _Occupant:
    """One HTTP connection as admission sees it (engine.connectors.admission.Occupant)."""

    __slots__ = ("handler", "peer", "since", "timer")

    def __init__(self, handler: Any, peer: str, now: float) -> None:
        self.handler = handler  # aiohttp's RequestHandler: the connection's protocol
        self.peer = peer
        self.since = now  # connected, or last answered
        self.timer: asyncio.TimerHandle | None = None

    @property
    def idle_since(self) -> float | None:
        # aiohttp marks a request from its parsed headers until its answer is written;
        # an aiohttp without the mark never has a connection counted idle
        return None if getattr(self.handler, "_request_in_progress", True) else self.since

    def close(self) -> None:
        self.handler.force_close()


class ConnectionGuard:
    """What the MLLP listener does for its peers, for an aiohttp server: admission (a
    peer's `per_peer` connections, the listener's `limit`, the longest-idle giving way
    to a newcomer) and a deadline: a connection whose next request has not fully
    arrived `timeout` seconds after it opened or after its last answer is closed, so
    sockets opened and left, or headers sent a byte at a time, hold nothing for long.
    (The body has its own deadline: read_body.)"""

    def __init__(self, name: str, log: logging.Logger, kind: str, *, limit: int,
                 per_peer: int, timeout: float) -> None:
        self.admission = Admission(name, RateLimitedLog(log), limit=limit,
                                   per_peer=per_peer, kind=kind)
        self._timeout = timeout
        self._by_handler: dict[Any, _Occupant] = {}

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Marks the request's connection answered when its handler returns."""
        try:
            return await handler(request)
        finally:
            occupant = self._by_handler.get(request.protocol)
            if occupant is not None:
                occupant.since = asyncio.get_running_loop().time()

    def attach(self, server: web.Server) -> None:
        """Admit each connection `server` (a set-up runner's) makes, and forget it when
        lost; aiohttp reports both to the server through these two methods."""
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: Any, transport: asyncio.Transport) -> None:
            made(handler, transport)
            peer = transport.get_extra_info("peername")
            host = str(peer[0]) if isinstance(peer, tuple) else str(peer or "")
            loop = asyncio.get_running_loop()
            occupant = _Occupant(handler, f"{host}:{peer[1]}" if isinstance(peer, tuple)
                                 else host, loop.time())
            if not self.admission.admit(occupant, host):
                transport.close()
                return
            self._by_handler[handler] = occupant
            occupant.timer = loop.call_at(occupant.since + self._timeout, self._check,
                                          occupant)

        def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
            occupant = self._by_handler.pop(handler, None)
            if occupant is not None:
                self.admission.leave(occupant)
                if occupant.timer is not None:
                    occupant.timer.cancel()
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    def _check(self, occupant: _Occupant) -> None:
        loop = asyncio.get_running_loop()
        idle = occupant.idle_since
        due = loop.time() + self._timeout if idle is None else idle + self._timeout
        if due > loop.time():
            occupant.timer = loop.call_at(due, self._check, occupant)
            return
        occupant.timer = None
        occupant.close()


async def listen(config: Any, handler: Handler, address: str, log: logging.Logger,
                 kind: str, carries: str, shared_port: bool = False,
                 sock: socket.socket | None = None) -> tuple[web.AppRunner, ConnectionGuard]:
    """Serve `handler` on config.host:config.port (config.tls, config.max_request_size,
    config.max_connections, config.max_connections_per_peer, config.read_timeout); the
    runner to clean up on stop, and the guard counting its connections. OSError when the
    port cannot be bound. `shared_port`: engine.connectors.base.SourceContext.shared_port.
    `sock`: serve this socket, already listening there (taken over in a swap: see
    take_over), instead of binding."""
    tls = server_context(config.tls) if config.tls else None
    guard = ConnectionGuard(address, log, kind, limit=config.max_connections,
                            per_peer=config.max_connections_per_peer,
                            timeout=config.read_timeout)
    app = web.Application(client_max_size=config.max_request_size + 1,
                          middlewares=[guard.middleware])
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=10.0)
    await runner.setup()
    assert runner.server is not None
    guard.attach(runner.server)
    site: web.BaseSite = web.SockSite(runner, sock, ssl_context=tls) if sock is not None \
        else web.TCPSite(runner, config.host, config.port, reuse_address=True,
                         reuse_port=shared_port or None, ssl_context=tls)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    log.info("%s listening on %s", kind, address)
    if exposed(config.host, config.tls):
        log.warning("%s %s: listening WITHOUT TLS on a network address (insecure: true): "
                    "%s and bearer tokens cross the network in clear", kind, address,
                    carries)
    return runner, guard


def take_over(new: Any, old: Any) -> socket.socket | None:
    """For a source `new` replacing `old` (same class) in a swap: a copy of the descriptor
    of the one socket `old` listens on when both listen at the same address. Served by
    `new`, it keeps the port bound and its backlog kept after `old` stops, so a swap
    refuses no connection. None otherwise (then `new` binds anew)."""
    runner = getattr(old, "_runner", None)
    if type(new) is not type(old) or runner is None or (
            (new.config.host, new.config.port) != (old.config.host, old.config.port)):
        return None
    servers = [getattr(site, "_server", None) for site in runner.sites]
    sockets = [s for server in servers if server is not None for s in server.sockets]
    if len(sockets) != 1:
        return None
    return socket.socket(fileno=os.dup(sockets[0].fileno()))


class BodyRefused(Exception):
    """A request body over the size limit (413) or not arrived in time (408)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The body, up to `limit` bytes, all of it within `timeout` seconds; BodyRefused
    otherwise (a declared length over the limit is refused before anything is read)."""
    too_big = BodyRefused(413, f"the request is over this endpoint's limit of {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_big
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.content.iter_chunked(65536):
                size += len(chunk)
                if size > limit:
                    raise too_big
                chunks.append(chunk)
    except TimeoutError:
        raise BodyRefused(408, f"the request body did not arrive in {timeout:g} s") from None
    return b"".join(chunks)
