"""The web listener: serves the status page, the JSON API, /metrics and health for one
engine, started and closed by whatever starts that engine.

The runtime does not import the web app (the web app uses the runtime, never the other
way round). What starts an engine (`conduit run`, the test harness) hands `serve` to it:

    engine = Engine(config, channels, catalog, serve=serve)

and the engine calls it at the same point of start-up as before (after the channels,
service levels and alerts are running, so the first /readyz sees them) and closes what
it returned at the same point of shutdown (after every channel has drained, so /readyz
keeps answering "not ready" during the drain, and before the store closes). The log
lines and the error for a port already taken are the ones the engine always wrote: the
logger is the engine's.
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING

from aiohttp import web

from engine.connectors.http_listener import ConnectionGuard
from engine.errors import ConduitError
from engine.web.app import build_app

if TYPE_CHECKING:
    from engine.runtime import Engine

log = logging.getLogger("conduit.engine")

# Operators behind one address (a NAT, a jump host) each keep a live stream open and a
# browser's handful of connections: a peer may hold many; a request must still arrive
# in time (engine.connectors.http_listener.ConnectionGuard).
WEB_CONNECTIONS = 512
WEB_CONNECTIONS_PER_PEER = 128
WEB_REQUEST_TIMEOUT = 30.0


class WebServer:
    """A running web listener; `close()` stops it."""

    def __init__(self, runner: web.AppRunner) -> None:
        self._runner = runner

    @property
    def app(self) -> web.Application:
        return self._runner.app

    async def close(self) -> None:
        await self._runner.cleanup()


async def serve(engine: Engine) -> WebServer | None:
    """Start the web listener of `engine.config.web`; None when its port is 0 (off).
    A port that cannot be bound stops the engine and raises ConduitError naming it."""
    web_cfg = engine.config.web
    if not web_cfg.port:
        return None
    tls = tls_context(web_cfg.tls_cert, web_cfg.tls_key)
    app = build_app(engine, metrics_open=web_cfg.metrics_open,
                    secure_cookies=tls is not None)
    guard = ConnectionGuard(f"{web_cfg.host}:{web_cfg.port}", log, "web",
                            limit=WEB_CONNECTIONS, per_peer=WEB_CONNECTIONS_PER_PEER,
                            timeout=WEB_REQUEST_TIMEOUT)
    app.middlewares.insert(0, guard.middleware)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    assert runner.server is not None
    guard.attach(runner.server)
    server = WebServer(runner)
    web_site = web.TCPSite(runner, web_cfg.host, web_cfg.port, ssl_context=tls)
    try:
        await web_site.start()
    except OSError as exc:
        await engine.stop()
        await server.close()
        raise ConduitError(
            f"the web listener cannot bind {web_cfg.host}:"
            f"{web_cfg.port}: {exc.strerror or exc}; choose another port "
            "with CONDUIT_WEB_PORT (0 turns the listener off)") from None
    log.info("status page on %s://%s:%d/", "https" if tls else "http",
             web_cfg.host, web_cfg.port)
    return server


def tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """TLS for the web listener when both files are configured."""
    if not cert and not key:
        return None
    if not (cert and key):
        raise ConduitError("web TLS needs both tls_cert and tls_key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConduitError(f"web TLS: cannot load {cert} / {key}: {exc}") from None
    return context
