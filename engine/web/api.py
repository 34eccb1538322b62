"""The JSON API: everything the status page does, for scripts and other tools too.

Handlers are thin: they read parameters, check the finer permissions that depend on
them (content, patient search), and call Operations.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any
from urllib.parse import unquote

import msgspec
from aiohttp import web

from engine.audit_export import EXPORT_ACTION
from engine.errors import KeyError_, StoreError
from engine.mapping_base import MAPPING_REF
from engine.message import MessageStatus
from engine.operations import ACTIONS, NotApproved, NotFound, Operations
from engine.security.roles import Permission, allows
from engine.store.retention import ContentPruned
from engine.store.search import MAX_PAGE, AuditQuery, MessageQuery
from engine.web import audit_reports
from engine.web.auth import (
    CSRF_HEADER,
    CSRF_KEY,
    PUBLIC,
    SESSION_COOKIE,
    SIGNED_IN,
    Auth,
    json_error,
    requires,
    user_of,
)
from engine.web.body import body_of

OPS = web.AppKey("ops", Operations)
CLOSING = web.AppKey("closing", asyncio.Event)  # set when the server shuts down
AUTH = web.AppKey("auth", Auth)
SECURE_COOKIES = web.AppKey("secure_cookies", bool)


def _plain(value: Any) -> Any:
    """Config values such as Duration (a float subclass) encode as plain numbers."""
    for kind in (float, int, str):
        if isinstance(value, kind):
            return kind(value)
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


_encode = msgspec.json.Encoder(enc_hook=_plain).encode


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encode(data), status=status, content_type="application/json")


def _ops(request: web.Request) -> Operations:
    return request.app[OPS]


def _actor(request: web.Request) -> str:
    return f"web:{user_of(request).name}"


class BadParameter(ValueError):
    """A query parameter a handler cannot use; answered with 400 before any work."""


# Unix seconds the engine can have stored messages at: from 1970 to the year 5000.
_TIME_RANGE = (0.0, 95_617_584_000.0)


def _time(request: web.Request, name: str) -> float | None:
    """A Unix time in seconds, or None when absent."""
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadParameter(f"{name} must be a Unix time in seconds") from None
    if not _TIME_RANGE[0] <= value <= _TIME_RANGE[1]:  # also refuses nan and inf
        raise BadParameter(f"{name} must be a Unix time in seconds after 1970")
    return value


def _int(request: web.Request, name: str, low: int, high: int) -> int | None:
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise BadParameter(f"{name} must be between {low} and {high}")
    return value


def _limit(request: web.Request, default: int) -> int:
    """Page size; a larger ask gets a full page (whose `next` continues the rest)."""
    return min(_int(request, "limit", 1, 1_000_000) or default, MAX_PAGE)


# -- session ----------------------------------------------------------------------------

@requires(PUBLIC)
async def sign_in(request: web.Request) -> web.Response:
    """Exchange a token for an HttpOnly, SameSite=Strict session cookie."""
    body = body_of(request)
    token = str(body.get("token", "")) if isinstance(body, dict) else ""
    auth = request.app[AUTH]
    users = auth.users
    # the user and the session in one transaction: a token replaced or a user removed by
    # another process meanwhile leaves no session behind
    signed = await asyncio.to_thread(users.sign_in, token) if token else None
    if signed is None:
        return await auth.deny(request, None, 401, "unauthenticated", "unknown token")
    user, session_id, csrf = signed
    response = _json({"user": user.name, "role": user.role.value, "csrf": csrf})
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="Strict",
                        secure=request.app[SECURE_COOKIES], path="/")
    return response


@requires(SIGNED_IN)
async def whoami(request: web.Request) -> web.Response:
    user = user_of(request)
    return _json({"user": user.name, "role": user.role.value, "csrf": request.get(CSRF_KEY),
                  "permissions": sorted(p.value for p in Permission if allows(user.role, p))})


@requires(SIGNED_IN)
async def sign_out(request: web.Request) -> web.Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await asyncio.to_thread(request.app[AUTH].users.close_session, cookie)
    response = _json({"signed_out": True})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


# -- channels and queues ----------------------------------------------------------------

@requires(Permission.VIEW_STATUS)
async def list_channels(request: web.Request) -> web.Response:
    return _json(await _ops(request).channels())


@requires(Permission.VIEW_STATUS)
async def channel_detail(request: web.Request) -> web.Response:
    detail = await _ops(request).channel(request.match_info["name"])
    if not allows(user_of(request).role, Permission.SEARCH_PATIENT):
        for m in detail["recent_messages"]:
            m["patient"] = None
    return _json(detail)


@requires(Permission.CONTROL_CHANNELS)
async def control_channel(request: web.Request) -> web.Response:
    action = request.match_info["action"]
    if action not in ACTIONS:
        return json_error(404, "not-found", f"actions are {', '.join(ACTIONS)}")
    return _json(await _ops(request).control(request.match_info["name"], action,
                                             _actor(request)))


@requires(Permission.VIEW_STATUS)
async def list_queues(request: web.Request) -> web.Response:
    return _json(await _ops(request).queues())


def _queue_key(request: web.Request) -> str:
    return f"{request.match_info['channel']}/{request.match_info['destination']}"


@requires(Permission.MANAGE_QUEUES)
async def retry_dead(request: web.Request) -> web.Response:
    key = _queue_key(request)
    return _json({"destination": key,
                  "requeued": await _ops(request).retry_dead(key, _actor(request))})


@requires(Permission.MANAGE_QUEUES)
async def discard_dead(request: web.Request) -> web.Response:
    key = _queue_key(request)
    return _json({"destination": key,
                  "discarded": await _ops(request).discard_dead(key, _actor(request))})


# -- messages ---------------------------------------------------------------------------

@requires(Permission.VIEW_STATUS)
async def list_messages(request: web.Request) -> web.Response:
    q = request.query
    role = user_of(request).role
    patient = None
    if q.get("patient"):
        if not allows(role, Permission.SEARCH_PATIENT):
            return await request.app[AUTH].deny(request, user_of(request), 403, "forbidden",
                                                f"role {role.value} may not search by patient")
        patient = _ops(request).pseudonym(q["patient"])
    status = q.get("status") or None
    if status is not None and status not in _STATUSES:
        raise BadParameter(f"status must be one of {', '.join(_STATUSES)}")
    query = MessageQuery(
        channel=q.get("channel") or None, status=status,
        message_type=q.get("type") or None, control_id=q.get("control_id") or None,
        patient=patient, since=_time(request, "since"), until=_time(request, "until"),
        before=q.get("before") or None, after=q.get("after") or None,
        limit=_limit(request, 50))
    started = time.perf_counter()
    found = await _ops(request).search(query)
    older, newer = await _neighbours(_ops(request), query, found)
    if patient is not None:
        await _ops(request).record_read(_actor(request), PATIENT_SEARCH, patient,
                                        of="messages", found=len(found))
    if not allows(role, Permission.SEARCH_PATIENT):
        for m in found:
            m["patient"] = None
    return _json({"messages": found, "took_ms": round((time.perf_counter() - started) * 1000,
                                                      2),
                  "next": older, "previous": newer})


_STATUSES = tuple(MessageStatus)


async def _neighbours(ops: Operations, query: MessageQuery, found: list[dict[str, Any]]
                      ) -> tuple[str | None, str | None]:
    """The cursors to the older page (`before=`) and the newer one (`after=`), each only
    when a message there matches: one indexed one-row look each way, so a browser never
    offers a page that turns out empty."""
    if not found:
        return None, None
    first, last = found[0]["id"], found[-1]["id"]
    one = {"limit": 1, "before": None, "after": None}
    older = await ops.search(msgspec.structs.replace(query, **{**one, "before": last}))
    newer = await ops.search(msgspec.structs.replace(query, **{**one, "after": first}))
    return (last if older else None), (first if newer else None)


REASON_HEADER = "X-Conduit-Reason"


@requires(Permission.VIEW_STATUS)
async def message_detail(request: web.Request) -> web.Response:
    user = user_of(request)
    wants_content = request.query.get("content") in ("1", "true", "yes")
    # The header (percent-encoded) keeps the reason out of the address, which proxies
    # and browsers record; `&reason=` still works for scripts.
    said = request.headers.get(REASON_HEADER)
    reason = (unquote(said) if said is not None else request.query.get("reason", "")).strip()
    if wants_content and not allows(user.role, Permission.VIEW_CONTENT):
        return await request.app[AUTH].deny(request, user, 403, "forbidden",
                                            f"role {user.role.value} may not see content")
    if wants_content and not reason:
        return json_error(400, "reason-required",
                          f"reading message content needs a reason ({REASON_HEADER}: "
                          "... percent-encoded, or &reason=...)")
    ops = _ops(request)
    detail = await ops.message(request.match_info["id"])
    if not allows(user.role, Permission.SEARCH_PATIENT):
        detail["patient"] = None
        for hop in detail["hops"]:
            hop["patient"] = None
    if wants_content:
        detail["content"] = await ops.content(detail["id"], _actor(request), reason)
    return _json(detail)


_REPROCESS_BODY = 'the body must be empty or a JSON object such as {"mapping": "name@2"}'


@requires(Permission.REPROCESS)
async def reprocess(request: web.Request) -> web.Response:
    mapping = None
    body = body_of(request)
    if body is not None:
        if not isinstance(body, dict):
            return json_error(400, "bad-json", _REPROCESS_BODY)
        mapping = body.get("mapping")
        if mapping is not None and not (isinstance(mapping, str)
                                        and MAPPING_REF.match(mapping)):
            return json_error(400, "bad-parameter",
                              "mapping must be a name@version such as hl7v2-adt-to-fhir@1")
    return _json(await _ops(request).reprocess(request.match_info["id"], mapping,
                                               _actor(request)))


# -- audit ------------------------------------------------------------------------------

def _audit_query(request: web.Request) -> AuditQuery:
    q = request.query
    patient = _ops(request).pseudonym(q["patient"]) if q.get("patient") else None
    since, until = _time(request, "since"), _time(request, "until")
    return AuditQuery(
        message_id=q.get("message") or None, channel=q.get("channel") or None,
        patient=patient, actor=q.get("actor") or None, kind=q.get("kind") or None,
        since_us=int(since * 1e6) if since is not None else None,
        until_us=int(until * 1e6) if until is not None else None,
        before_seq=_int(request, "before", 1, 2**62), limit=_limit(request, 100))


@requires(Permission.READ_AUDIT)
async def audit_events(request: web.Request) -> web.Response:
    query = _audit_query(request)
    rows = await _ops(request).audit(query)
    if query.patient is not None:
        await _ops(request).record_read(_actor(request), PATIENT_SEARCH, query.patient,
                                        of="audit", found=len(rows))
    for row in rows:
        row["detail"] = msgspec.json.decode(row["detail"])
    return _json({"events": rows, "next": rows[-1]["seq"] if rows else None})


@requires(Permission.READ_AUDIT)
async def audit_verify(request: web.Request) -> web.Response:
    result = await _ops(request).verify()
    return _json({"ok": result["broken"] is None, **result})


# The export's filters named in its event; a patient goes as the event's pseudonym.
_EXPORT_FILTERS = ("message", "channel", "patient", "actor", "kind", "since", "until")
# A search by patient: who looked for whose messages or events, and how many they saw.
PATIENT_SEARCH = "patient-search"


@requires(Permission.READ_AUDIT)
async def audit_export(request: web.Request) -> web.StreamResponse:
    """Every matching event as JSON lines, oldest first, streamed a page at a time."""
    query = _audit_query(request)  # before the 200 goes out: a bad parameter is a 400
    query.limit, query.after_seq = MAX_PAGE, 0
    # recorded before the first byte: no export without its event, even one cut short
    await _ops(request).record_read(
        _actor(request), EXPORT_ACTION, query.patient, via="api",
        **{k: v for k, v in request.query.items() if k in _EXPORT_FILTERS and k != "patient"})
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson",
                                           "Cache-Control": "no-store"})
    await response.prepare(request)
    while rows := await _ops(request).audit(query):
        await response.write(b"".join(_encode(row) + b"\n" for row in rows))
        query.after_seq = rows[-1]["seq"]
    await response.write_eof()
    return response


# -- live updates -----------------------------------------------------------------------

@requires(Permission.VIEW_STATUS)
async def events_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: a status snapshot every two seconds, for the live page."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store"})
    await response.prepare(request)
    ops = _ops(request)
    closing = request.app[CLOSING]
    auth = request.app[AUTH]
    try:
        while not closing.is_set():
            user, _ = await auth.identify(request)
            if user is None:  # signed out or token revoked since the stream opened
                break
            snapshot = {"channels": await ops.channels(), "alerts": ops.alerts(),
                        "at": time.time()}
            await response.write(b"event: status\ndata: " + _encode(snapshot) + b"\n\n")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), 2.0)
    except ConnectionResetError:
        pass  # the page went away
    return response


@requires(Permission.VIEW_STATUS)
async def list_alerts(request: web.Request) -> web.Response:
    return _json(_ops(request).alerts())


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/session", sign_in)
    r.add_get("/api/session", whoami)
    r.add_delete("/api/session", sign_out)
    r.add_get("/api/channels", list_channels)
    r.add_get("/api/channels/{name}", channel_detail)
    r.add_post("/api/channels/{name}/{action}", control_channel)
    r.add_get("/api/queues", list_queues)
    r.add_post("/api/queues/{channel}/{destination}/retry", retry_dead)
    r.add_post("/api/queues/{channel}/{destination}/discard", discard_dead)
    r.add_get("/api/messages", list_messages)
    r.add_get("/api/messages/{id}", message_detail)
    r.add_post("/api/messages/{id}/reprocess", reprocess)
    r.add_get("/api/audit", audit_events)
    r.add_get("/api/audit/verify", audit_verify)
    r.add_get("/api/audit/export", audit_export)
    audit_reports.add_routes(app, OPS)  # /api/audit/disclosures
    r.add_get("/api/events", events_stream)
    r.add_get("/api/alerts", list_alerts)


@web.middleware
async def errors_as_json(request: web.Request, handler: Any) -> web.StreamResponse:
    """Known failures become JSON errors a script can read; no tracebacks leak. API
    answers are never cached (some hold content); static files are revalidated, so a
    browser never runs an old page against a new engine."""
    try:
        response = await handler(request)
    except NotFound as exc:
        response = json_error(404, "not-found", str(exc))
    except NotApproved as exc:
        response = json_error(409, "not-approved", str(exc))
    except ContentPruned as exc:  # the message is known; its content is gone for good
        response = json_error(410, "content-pruned", str(exc))
    except BadParameter as exc:
        response = json_error(400, "bad-parameter", str(exc))
    except KeyError_ as exc:  # a record's content key is missing: named, not a traceback
        response = json_error(500, "key-missing", str(exc))
    except StoreError as exc:
        response = json_error(400 if "reason" in str(exc) else 503, "store", str(exc))
    if not response.prepared:
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        elif request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-cache"
    return response


__all__ = ["AUTH", "CLOSING", "CSRF_HEADER", "OPS", "SECURE_COOKIES", "add_routes",
           "errors_as_json"]
