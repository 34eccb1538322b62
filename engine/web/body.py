"""The one reader of JSON request bodies on the web API, bounded in size and depth.

Every state-changing API request has its body read here, after the caller is known (a
refusal never waits on a body) and before its handler runs, so a new route is covered
without asking. msgspec decodes (its recursion guard raises RecursionError where the
stdlib parser would take the stack down) and the result's depth is measured without
recursion: whatever is sent, the answer is a JSON 400 or 413, never a 500.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from engine.web.auth import json_error

MAX_BYTES = 1024 * 1024  # the app's client_max_size too: API bodies are a few fields
MAX_DEPTH = 32  # {"mapping": "name@2"} is depth 1; nothing the API takes nests further
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BODY_KEY: web.RequestKey[Any] = web.RequestKey("conduit_body", object)
_decode = msgspec.json.Decoder().decode


class BadBody(ValueError):
    """A body the API cannot take; `status` and `error` are the JSON error's."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error = status, error


def decode(raw: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of `raw` (None when empty), or BadBody."""
    if not raw.strip():
        return None
    try:
        value = _decode(raw)
    except RecursionError:
        raise BadBody(400, "bad-json", "the body is nested too deeply") from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise BadBody(400, "bad-json", "the body is not JSON (UTF-8)") from None
    if _depth_over(value, max_depth):
        raise BadBody(400, "bad-json", f"the body is nested more than {max_depth} deep")
    return value


def _depth_over(value: Any, limit: int) -> bool:
    """Whether containers nest more than `limit` deep; a loop, so depth costs no stack."""
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list))
    return False


async def read_json(request: web.Request, max_bytes: int = MAX_BYTES) -> Any:
    """The request's JSON body (None when there is none), or BadBody."""
    if not request.body_exists:
        return None
    if request.content_length is not None and request.content_length > max_bytes:
        raise BadBody(413, "too-large", f"the body is over {max_bytes} bytes")
    try:
        raw = await request.read()  # a chunked body is cut off at client_max_size
    except web.HTTPRequestEntityTooLarge:
        raise BadBody(413, "too-large", f"the body is over {max_bytes} bytes") from None
    if len(raw) > max_bytes:
        raise BadBody(413, "too-large", f"the body is over {max_bytes} bytes")
    return decode(raw)


def body_of(request: web.Request) -> Any:
    """The body `json_bodies` read: None when the request had none."""
    return request.get(BODY_KEY)


@web.middleware
async def json_bodies(request: web.Request, handler: Any) -> web.StreamResponse:
    """Reads and checks the body of every state-changing /api/ request."""
    if request.method not in _SAFE_METHODS and request.path.startswith("/api/"):
        try:
            request[BODY_KEY] = await read_json(request)
        except BadBody as exc:
            return json_error(exc.status, exc.error, str(exc))
    return await handler(request)
