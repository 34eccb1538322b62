"""The accounting of disclosures on the API, for the auditor (and admin): the same
report as `conduit audit disclosures`, as JSON or CSV.

POST with a JSON body is the way to ask: the identifier then never sits in a URL, which
proxies and browsers log. GET with query parameters answers too, as the existing
patient search (/api/messages?patient=) does.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from engine.security.roles import Permission
from engine.store import disclosures
from engine.web.auth import json_error, requires, user_of
from engine.web.body import body_of

PATH = "/api/audit/disclosures"
_FORMATS = ("json", "csv")


def add_routes(app: web.Application, ops: web.AppKey[Any]) -> None:
    """`ops`: engine.web.api's key of the Operations (api imports this module, so the
    key is handed over rather than imported)."""

    @requires(Permission.READ_AUDIT)
    async def disclosures_report(request: web.Request) -> web.Response:
        return await _report(request, request.app[ops])

    app.router.add_get(PATH, disclosures_report)
    app.router.add_post(PATH, disclosures_report)


async def _report(request: web.Request, ops: Any) -> web.Response:
    if request.method == "POST":
        body = body_of(request)
        if not isinstance(body, dict):
            return json_error(400, "bad-json", 'the body must be a JSON object such as '
                              '{"patient": "MRN", "from": "2026-01-01", "to": "2026-03-31"}')
        params: Any = {k: v for k, v in body.items() if isinstance(v, str | int | float)}
    else:
        params = request.query
    patient = str(params.get("patient") or "").strip()
    fmt = str(params.get("format") or "json")
    if not patient:
        return json_error(400, "bad-parameter", "patient (the identifier) is required")
    if fmt not in _FORMATS:
        return json_error(400, "bad-parameter", "format must be json or csv")
    since, until = params.get("from"), params.get("to")
    try:
        lo, hi = disclosures.period(None if since is None else str(since),
                                    None if until is None else str(until),
                                    time.time_ns() // 1000)
        pseudonym, rows = await ops.disclosures(patient, lo, hi,
                                                f"web:{user_of(request).name}", fmt)
    except disclosures.BadPeriod as exc:
        return json_error(400, "bad-parameter", str(exc))
    if fmt == "csv":
        return web.Response(text=disclosures.to_csv(rows), content_type="text/csv",
                            headers={"Content-Disposition":
                                     'attachment; filename="disclosures.csv"'})
    return web.Response(text=disclosures.to_json(rows, pseudonym, lo, hi),
                        content_type="application/json")
