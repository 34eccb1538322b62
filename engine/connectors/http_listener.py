"""The HTTP listener the HTTP-based sources (fhir, http) share: one aiohttp app that
hands every request to the source, bounded in body size, with TLS when configured, and
a warning when it listens on a network address in clear (`insecure: true`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from engine.connectors.tls import exposed, server_context


async def listen(config: Any, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                 address: str, log: logging.Logger, kind: str, carries: str
                 ) -> web.AppRunner:
    """Serve `handler` on config.host:config.port (config.tls, config.max_request_size);
    the runner to clean up on stop. OSError when the port cannot be bound."""
    tls = server_context(config.tls) if config.tls else None
    app = web.Application(client_max_size=config.max_request_size + 1)
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=10.0)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, reuse_address=True,
                       ssl_context=tls)
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
