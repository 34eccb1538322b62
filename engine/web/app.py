"""The daemon's aiohttp application: the status page, the JSON API, /metrics, and the
health checks (/healthz: the process is alive; /readyz: the store answers and every
channel is started), which need no token."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from engine.security.roles import Permission
from engine.web import api, revisions
from engine.web.auth import PUBLIC, Auth, requires
from engine.web.body import MAX_BYTES, json_bodies
from engine.web.metrics import render

ENGINE_KEY = web.AppKey("engine", Any)
STATIC = Path(__file__).parent / "static"


@requires(PUBLIC)
async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


@requires(PUBLIC)
async def readyz(request: web.Request) -> web.Response:
    report = await request.app[ENGINE_KEY].readiness()
    return web.json_response(report, status=200 if report["ready"] else 503)


@requires(Permission.VIEW_METRICS)
async def metrics(request: web.Request) -> web.Response:
    ops = request.app[api.OPS]
    engine = request.app[ENGINE_KEY]
    now = time.time()
    queues = {
        key: {"depth": q.ready + q.leased, "dead": q.dead,
              "oldest_age_s": now - q.oldest_at if q.oldest_at else None}
        for key, q in (await ops.queue_stats()).items()
    }
    channels = {name: c.state.value for name, c in engine.channels.items()}
    body = render(engine.services.stats, channels, queues, ops.extra_metrics())
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


@requires(PUBLIC)
async def index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={
        "Cache-Control": "no-cache",
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                   "frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    })


def build_app(engine: Any, *, metrics_open: bool = False, secure_cookies: bool = False
              ) -> web.Application:
    auth = Auth(engine.users, engine.ops.record)
    app = web.Application(middlewares=[api.errors_as_json, auth.middleware, json_bodies],
                          client_max_size=MAX_BYTES)
    app[ENGINE_KEY] = engine
    app[api.OPS] = engine.ops
    app[api.AUTH] = auth
    app[api.SECURE_COOKIES] = secure_cookies
    app[api.CLOSING] = asyncio.Event()

    async def end_streams(app: web.Application) -> None:
        app[api.CLOSING].set()  # live streams end, so shutdown does not wait on them

    app.on_shutdown.append(end_streams)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", _metrics_handler(metrics_open))
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC, append_version=True)
    api.add_routes(app)
    revisions.add_routes(app, engine)  # /api/revisions: change control (engine.change)
    return app


def _metrics_handler(open_: bool) -> Any:
    """/metrics needs viewer unless the configuration opens it to scrapers."""
    if not open_:
        return metrics

    @requires(PUBLIC)
    async def open_metrics(request: web.Request) -> web.Response:
        return await metrics(request)

    return open_metrics
