"""Hostile JSON bodies on the web API: every route that takes a body, taken from the
app's own router (a new route is covered without editing this file), answers a JSON
400 for a body nested 100,000 deep, or refuses the caller first (401/403), and never a
500 or a traceback in the log."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.harness import free_port
from tests.integration.test_api_access import WebHarness, adt_channel, bearer

pytestmark = pytest.mark.asyncio(loop_scope="module")

DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
BODY_METHODS = ("POST", "PUT", "PATCH")
# Plausible values for path parameters; the body must be refused whatever they name.
PARAMS = {"id": "0" * 26, "name": "adt", "action": "pause", "channel": "adt",
          "destination": "files"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("bodies")
    harness = WebHarness(root)
    try:
        engine = await harness.start({"adt": adt_channel(free_port(), root / "out",
                                                         "http://127.0.0.1:9/fhir")})
        yield harness, engine, harness.add_users()["admin"]
    finally:
        await harness.stop()


def body_routes(engine: Any) -> list[tuple[str, str]]:
    """(method, path) of every route that accepts a request body."""
    routes = set()
    for route in engine.web.app.router.routes():
        if route.method in BODY_METHODS:
            path = re.sub(r"\{(\w+)\}", lambda m: PARAMS.get(m[1], "x"),
                          route.resource.canonical)
            routes.add((route.method, path))
    return sorted(routes)


async def _session(client: aiohttp.ClientSession, base: str, token: str) -> str:
    async with client.post(f"{base}/api/session", json={"token": token}) as resp:
        assert resp.status == 200
        return (await resp.json())["csrf"]


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert "Traceback" not in caplog.text
    assert "RecursionError" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info], caplog.text


async def test_the_api_has_routes_that_take_a_body(served):
    _, engine, _ = served
    assert ("POST", "/api/session") in body_routes(engine)
    assert ("POST", f"/api/messages/{PARAMS['id']}/reprocess") in body_routes(engine)


@pytest.mark.parametrize("deep", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
async def test_a_deeply_nested_body_is_a_json_400_on_every_route(served, deep, caplog):
    caplog.set_level(logging.DEBUG)
    harness, engine, admin = served
    answers: dict[str, tuple[int, set[int], str]] = {}
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as signed_in, \
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as plain:
        csrf = await _session(signed_in, harness.base, admin)
        # caller: (client, headers, whether it may be refused before its body is read)
        callers = {
            "anonymous": (plain, {}, True),
            "admin token": (plain, bearer(admin), False),
            "admin session": (signed_in, {"X-CSRF-Token": csrf}, False),
            "admin session without CSRF": (signed_in, {}, True),
        }
        for method, path in body_routes(engine):
            for who, (client, headers, refusable) in callers.items():
                async with client.request(method, harness.base + path, data=deep, headers={
                        **headers, "Content-Type": "application/json"}) as resp:
                    text = await resp.text()
                    public = path == "/api/session"  # signing in needs no user
                    expected = {400, 401, 403} if refusable and not public else {400}
                    answers[f"{who} {method} {path}"] = (resp.status, expected, text)
    assert answers
    for call, (status, expected, text) in answers.items():
        assert status in expected, f"{call}: {status} {text[:200]}"
        error = json.loads(text)
        assert set(error) == {"error", "message"}, f"{call}: {error}"
    _no_traceback(caplog)
    assert engine.channels["adt"].state.value == "started"  # no pause went through


@pytest.mark.parametrize(("body", "error"), [
    (b"not json", "bad-json"),
    (b"\xff\xfe", "bad-json"),
    (b"[" * 40 + b"]" * 40, "bad-json"),  # under the decoder's limit, over the API's
])
async def test_unreadable_bodies_are_a_json_400(served, body, error, caplog):
    harness, _, admin = served
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client, \
            client.post(f"{harness.base}/api/messages/{PARAMS['id']}/reprocess", data=body,
                        headers=bearer(admin)) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == error
    _no_traceback(caplog)


async def test_a_body_over_the_size_limit_is_a_json_413(served, caplog):
    harness, _, admin = served
    big = b'{"mapping": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client, \
            client.post(f"{harness.base}/api/messages/{PARAMS['id']}/reprocess", data=big,
                        headers=bearer(admin)) as resp:
        assert resp.status == 413
        assert set(await resp.json()) == {"error", "message"}
    _no_traceback(caplog)


async def test_ordinary_bodies_still_work(served):
    harness, _, admin = served
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        async with client.post(f"{harness.base}/api/session", json={"token": admin}) as resp:
            assert resp.status == 200
        async with client.post(f"{harness.base}/api/channels/adt/pause",
                               headers=bearer(admin)) as resp:  # no body at all
            assert resp.status == 200
        async with client.post(f"{harness.base}/api/channels/adt/resume", json={},
                               headers=bearer(admin)) as resp:
            assert resp.status == 200
            assert (await resp.json())["state"] == "started"
