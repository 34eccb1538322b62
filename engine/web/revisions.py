"""Revisions on the API: the history, one revision with its diff, each channel's live
revision, and approving or rejecting a pending one (admin; never the revision's own
author), as `conduit deploy approve|reject N` does on the command line."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from engine.change.revisions import NoSuchRevision, RevisionRefused, RevisionStore
from engine.change.snapshot import diff
from engine.security.roles import Permission, Role
from engine.web.auth import json_error, requires, user_of
from engine.web.body import body_of

ENGINE = web.AppKey("change_engine", Any)  # the engine.runtime.Engine served


def _engine(request: web.Request) -> Any:
    return request.app[ENGINE]


def _store(request: web.Request) -> RevisionStore:
    svc = _engine(request).services
    return RevisionStore(svc.db, svc.keys.audit)


def _number(request: web.Request) -> int | None:
    try:
        return int(request.match_info["number"])
    except ValueError:
        return None


@requires(Permission.VIEW_STATUS)
async def list_revisions(request: web.Request) -> web.Response:
    store = _store(request)
    history = await asyncio.to_thread(store.history, 50)
    channels = await asyncio.to_thread(store.channel_revisions)
    approvals = _engine(request).config.change_control.approvals
    return web.json_response({
        "running": _engine(request).revision, "approvals_required": approvals,
        "live": next((r.number for r in history if r.state == "live"), None),
        "channels": channels, "revisions": [r.summary() for r in history]})


@requires(Permission.VIEW_STATUS)
async def revision_detail(request: web.Request) -> web.Response:
    number = _number(request)
    store = _store(request)
    try:
        if number is None:
            raise NoSuchRevision("a revision is a number")
        rev = await asyncio.to_thread(store.get, number)
        base = (await asyncio.to_thread(store.get, rev.based_on)
                if rev.based_on is not None else None)
    except NoSuchRevision as exc:
        return json_error(404, "not-found", str(exc))
    return web.json_response({**rev.summary(), "diff": diff(
        base.snapshot if base else None, rev.snapshot,
        old_label=f"r{base.number}" if base else "none", new_label=f"r{rev.number}")})


@requires(Permission.APPROVE_REVISIONS)
async def decide(request: web.Request) -> web.Response:
    number, action = _number(request), request.match_info["action"]
    if action not in ("approve", "reject"):
        return json_error(404, "not-found", "actions are approve, reject")
    body = body_of(request)
    reason = str(body.get("reason", "")) if isinstance(body, dict) else ""
    user = user_of(request)
    store = _store(request)
    admin = user.role == Role.ADMIN
    actor = f"web:{user.name}"
    try:
        if number is None:
            raise NoSuchRevision("a revision is a number")
        if action == "approve":
            rev = await asyncio.to_thread(
                lambda: store.approve(number, approver=user.name, is_admin=admin, actor=actor,
                                      approvals=_engine(request).config.change_control
                                      .approvals))
        else:
            rev = await asyncio.to_thread(
                lambda: store.reject(number, by=user.name, is_admin=admin, actor=actor,
                                     reason=reason.strip()))
    except NoSuchRevision as exc:
        return json_error(404, "not-found", str(exc))
    except RevisionRefused as exc:
        return json_error(409 if "not pending" in str(exc) else 403, "refused", str(exc))
    return web.json_response(rev.summary())


def add_routes(app: web.Application, engine: Any) -> None:
    app[ENGINE] = engine
    app.router.add_get("/api/revisions", list_revisions)
    app.router.add_get("/api/revisions/{number}", revision_detail)
    app.router.add_post("/api/revisions/{number}/{action}", decide)
