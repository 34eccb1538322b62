"""aiohttp application: /healthz (process alive) and /readyz (store reachable, channels
started), for load balancers and orchestrators. No content, no identifiers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

ENGINE_KEY = web.AppKey("engine", Any)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    report = await request.app[ENGINE_KEY].readiness()
    return web.json_response(report, status=200 if report["ready"] else 503)


def build_app(engine: Any) -> web.Application:
    app = web.Application()
    app[ENGINE_KEY] = engine
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
