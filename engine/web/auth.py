"""Who is asking, and may they: bearer tokens, session cookies, CSRF, and refusals.

Each handler declares the one permission it needs with `@requires`. The middleware
finds the user (a bearer token, or a session cookie whose state-changing requests must
carry the CSRF header), refuses with 401 or 403 before the handler runs, so a refusal
reveals nothing about what exists, and audits every refusal by route pattern, never by
the URL itself (a query string may hold an identifier someone typed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from engine.events import Event, Kind
from engine.security.roles import Permission, allows
from engine.security.users import Session, User, same_secret

SESSION_COOKIE = "conduit_session"
CSRF_HEADER = "X-CSRF-Token"
PUBLIC = "public"  # no user needed
SIGNED_IN = "signed-in"  # any user
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
USER_KEY = web.RequestKey("conduit_user", User)
CSRF_KEY = web.RequestKey("conduit_csrf", str)


def requires(permission: Permission | str) -> Callable[[Handler], Handler]:
    def mark(handler: Handler) -> Handler:
        handler.permission = permission  # type: ignore[attr-defined]
        return handler
    return mark


def user_of(request: web.Request) -> User:
    return request[USER_KEY]


def json_error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


class Auth:
    """The middleware, bound to the engine's users and audit trail."""

    def __init__(self, users: Any, record: Callable[[Event], Awaitable[None]],
                 open_paths: frozenset[str] = frozenset()) -> None:
        self.users = users
        self._record = record
        self._open_paths = open_paths

    async def identify(self, request: web.Request) -> tuple[User | None, Session | None]:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            user = await asyncio.to_thread(self.users.by_token, header[7:].strip())
            return user, None
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            session = await asyncio.to_thread(self.users.session, cookie)
            if session is not None:
                return session.user, session
        return None, None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        permission = getattr(handler, "permission", None)
        if permission is None and request.path in self._open_paths:
            permission = PUBLIC
        if permission is None:  # static files and unknown routes declare nothing
            permission = PUBLIC if not request.path.startswith("/api/") else SIGNED_IN
        if permission == PUBLIC:
            return await handler(request)
        user, session = await self.identify(request)
        if user is None:
            return await self.deny(request, None, 401, "unauthenticated",
                                   "sign in: send 'Authorization: Bearer <token>'")
        if session is not None and request.method not in _SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or not same_secret(sent, session.csrf):
                return await self.deny(request, user, 403, "csrf",
                                       f"state-changing requests need the {CSRF_HEADER} header")
        if permission != SIGNED_IN and not allows(user.role, Permission(permission)):
            return await self.deny(request, user, 403, "forbidden",
                                   f"role {user.role.value} does not allow {permission}")
        request[USER_KEY] = user
        if session is not None:
            request[CSRF_KEY] = session.csrf
        return await handler(request)

    async def deny(self, request: web.Request, user: User | None, status: int, error: str,
                   message: str) -> web.Response:
        """Refuse, and audit the refusal by route pattern and method only."""
        await self._record(Event(
            kind=Kind.DENIED, actor=f"web:{user.name}" if user else "anonymous",
            peer=request.remote or "",
            detail={"method": request.method, "route": route_pattern(request),
                    "status": status, "why": error}))
        return json_error(status, error, message)


def route_pattern(request: web.Request) -> str:
    """`/api/messages/{id}`, not the URL with its id and query."""
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"
