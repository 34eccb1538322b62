"""A real aiohttp server on 127.0.0.1 and a free port, for the test doubles of other
systems (FHIR servers, alert webhooks, OTLP collectors)."""

from __future__ import annotations

import ssl

from aiohttp import web


class LoopbackServer:
    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.scheme = "http"

    async def serve(self, app: web.Application, tls: ssl.SSLContext | None = None) -> None:
        """Serve `app`; over HTTPS with `tls`, a server-side context."""
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=tls)
        self.scheme = "https" if tls else "http"
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
