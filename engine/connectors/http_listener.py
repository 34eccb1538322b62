"""The HTTP listener the HTTP-based sources (fhir, http) share: one aiohttp app that
hands every request to the source, bounded in body size, with TLS when configured, and
a warning when it listens on a network address in clear (`insecure: true`); and the
reading of a request body bounded in size and in time, each source answering a refusal
in its own standard's words."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from engine.connectors.tls import exposed, server_context


async def listen(config: Any, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                 address: str, log: logging.Logger, kind: str, carries: str,
                 shared_port: bool = False, sock: socket.socket | None = None
                 ) -> web.AppRunner:
    """Serve `handler` on config.host:config.port (config.tls, config.max_request_size);
    the runner to clean up on stop. OSError when the port cannot be bound. `shared_port`:
    engine.connectors.base.SourceContext.shared_port. `sock`: serve this socket, already
    listening there (taken over in a swap: see take_over), instead of binding."""
    tls = server_context(config.tls) if config.tls else None
    app = web.Application(client_max_size=config.max_request_size + 1)
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=10.0)
    await runner.setup()
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
    return runner


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
