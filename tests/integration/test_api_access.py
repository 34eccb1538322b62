"""Who may do what over the real HTTP listener: every role against every route.

One engine serves the whole module (its web listener on a free port of 127.0.0.1). The
table below is the specification: each cell is its own test, named after the role, the
method and the path, and each checks the status, the JSON error of a refusal, and the one
"denied" audit event a refusal writes (by route pattern, never by id or query string).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import msgspec
import pytest
import pytest_asyncio
import sqlalchemy as sa

from engine.runtime import Engine
from engine.security.roles import Role
from engine.store.schema import audit
from tests.fhir_server import Answer, FhirTestServer
from tests.harness import EngineHarness, adt, exchange, free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")

# -- shared helpers (test_api_operations imports these) --------------------------------------

USERS = {"viewer": "vic", "operator": "opal", "analyst": "ana", "auditor": "aud",
         "admin": "ada"}
BAD_TOKEN = "cdt_" + "x" * 43


class WebHarness(EngineHarness):
    """EngineHarness with the web listener on a free port, and one user per role."""

    def __init__(self, root: Path, *, metrics_open: bool = False,
                 mappings_dir: Path | None = None) -> None:
        super().__init__(root, web_port=free_port(), mappings_dir=mappings_dir,
                         web={"metrics_open": "true" if metrics_open else "false"})

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def add_users(self) -> dict[str, str]:
        """One user per role, made as `conduit users add/token` makes them: role -> token."""
        assert self.engine is not None and self.engine.users is not None
        tokens = {}
        for role, name in USERS.items():
            self.engine.users.add(name, Role(role))
            tokens[role] = self.engine.users.new_token(name)
        return tokens


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def adt_channel(port: int, out: Path, fhir_url: str, extra: str = "") -> str:
    return f"""
    source: {{type: mllp, port: {port}, read_timeout: 2s}}
    filter:
      - field: MSH-9.1
        equals: ADT
    mapping: hl7v2-adt-to-fhir@1
    retry: {{max_attempts: 2, initial_delay: 20ms, max_delay: 50ms, jitter: 0}}
    destinations:
      - {{name: files, type: file, directory: "{out}"}}
      - {{name: fhir, type: fhir, url: "{fhir_url}", timeout: 2s}}
    {extra}
    """


def audit_rows(engine: Engine, *where: Any) -> list[Any]:
    assert engine.services is not None
    with engine.services.db.connect() as conn:
        return conn.execute(sa.select(audit).where(*where).order_by(audit.c.seq)).all()


def last_seq(engine: Engine) -> int:
    assert engine.services is not None
    with engine.services.db.connect() as conn:
        return conn.execute(sa.select(sa.func.coalesce(sa.func.max(audit.c.seq), 0))).scalar()


async def running(engine: Engine) -> None:
    """The shared channel started again: the table's operator cells pause and stop it,
    and pytest-xdist may give a cell and the cell undoing it to different workers."""
    channel = engine.channels["adt"]
    if channel.state.value == "paused":
        await channel.resume()
    elif channel.state.value == "stopped":
        await channel.start()
    assert channel.state.value == "started"


async def queue_of(base: str, token: str, key: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as client, client.get(
            f"{base}/api/queues", headers=bearer(token)) as resp:
        for q in await resp.json():
            if q["destination"] == key:
                return q
    return {"destination": key, "ready": 0, "leased": 0, "dead": 0}


# -- the module's engine ---------------------------------------------------------------------

NAME, MRN = "QUIZZLEWORTH", "8675309421"  # the test patient: no response may hold them


class World(msgspec.Struct):
    harness: WebHarness
    engine: Any
    tokens: dict[str, str]
    ids: dict[str, str]  # what -> message id: accepted, error, rejected, filtered
    mllp_port: int

    @property
    def base(self) -> str:
        return self.harness.base

    def token(self, role: str) -> str | None:
        if role == "anonymous":
            return None
        return BAD_TOKEN if role == "bad-token" else self.tokens[role]


def _probe_messages() -> dict[str, bytes]:
    """The test patient in a message of every status."""
    good = adt("PHI1", MRN, family=NAME)
    bad_date = adt("PHI2", MRN, family=NAME).replace(b"|19700412|", b"|19701345|")
    oru = adt("PHI3", MRN, family=NAME).replace(b"ADT^A01^ADT_A01", b"ORU^R01^ORU_R01")
    broken = adt("PHI4", MRN, family=NAME).replace(b"MSH|^~\\&|", b"MSH|^^\\&|")
    return {"accepted": good, "error": bad_date, "filtered": oru, "rejected": broken}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("access")
    fhir = await FhirTestServer().start()
    fhir.default = Answer(400)  # every FHIR delivery fails at once: dead letters to act on
    harness = WebHarness(root)
    try:
        port = free_port()
        engine = await harness.start({"adt": adt_channel(port, root / "out", fhir.url)})
        tokens = harness.add_users()
        probes = _probe_messages()
        acks = await exchange(port, list(probes.values()))
        assert [a.value("MSA-1") for a in acks] == ["AA", "AE", "AA", "AR"]
        with engine.services.db.connect() as conn:
            rows = conn.exec_driver_sql("SELECT id, status FROM messages ORDER BY id").all()
        ids = {status: mid for mid, status in rows}
        assert set(ids) == set(probes), rows
        await harness.settle(lambda: bool(engine.services.stats.count(
            "dead-lettered", "adt", "fhir")))
        yield World(harness, engine, tokens, ids, port)
    finally:
        await harness.stop()
        await fhir.stop()


# -- the table -------------------------------------------------------------------------------

ROLES = ("anonymous", "bad-token", "viewer", "operator", "analyst", "auditor", "admin")
OK, BAD, NO, DENY, GONE = 200, 400, 401, 403, 404

# {id}: a stored message; {missing}: a well-formed id that is not stored; {mrn}: the test
# patient's identifier as a user would type it.
TABLE = [
    # method   path                                           anon bad view oper anal audi admin
    ("GET",    "/healthz",                                     OK,  OK,  OK,  OK,  OK,  OK,  OK),
    ("GET",    "/readyz",                                      OK,  OK,  OK,  OK,  OK,  OK,  OK),
    ("GET",    "/",                                            OK,  OK,  OK,  OK,  OK,  OK,  OK),
    ("GET",    "/metrics",                                     NO,  NO,  OK,  OK,  OK,  OK,  OK),
    ("POST",   "/api/session",                                 NO,  NO,  OK,  OK,  OK,  OK,  OK),
    ("GET",    "/api/session",                                 NO,  NO,  OK,  OK,  OK,  OK,  OK),
    ("DELETE", "/api/session",                                 NO,  NO,  OK,  OK,  OK,  OK,  OK),
    ("GET",    "/api/channels",                                NO,  NO,  OK,  OK,  OK,  OK,  OK),
    ("GET",    "/api/channels/adt",                            NO,  NO,  OK,  OK,  OK,  OK,  OK),
    ("GET",    "/api/channels/nosuch",                         NO,  NO, GONE,GONE,GONE,GONE,GONE),
    ("POST",   "/api/channels/adt/pause",                      NO,  NO, DENY, OK,DENY,DENY,  OK),
    ("POST",   "/api/channels/adt/resume",                     NO,  NO, DENY, OK,DENY,DENY,  OK),
    ("POST",   "/api/channels/adt/stop",                       NO,  NO, DENY, OK,DENY,DENY,  OK),
    ("POST",   "/api/channels/adt/start",                      NO,  NO, DENY, OK,DENY,DENY,  OK),
    ("POST",   "/api/channels/adt/explode",                    NO,  NO, DENY,GONE,DENY,DENY,GONE),
    ("GET",    "/api/queues",                                  NO,  NO,  OK,  OK,  OK,  OK,  OK),
    ("POST",   "/api/queues/adt/fhir/retry",                   NO,  NO, DENY, OK,DENY,DENY,  OK),
    ("POST",   "/api/queues/adt/fhir/discard",                 NO,  NO, DENY, OK,DENY,DENY,  OK),
    ("GET",    "/api/messages",                                NO,  NO,  OK,  OK,  OK,  OK,  OK),
    ("GET",    "/api/messages?channel=adt&status=error",       NO,  NO,  OK,  OK,  OK,  OK,  OK),
    ("GET",    "/api/messages?patient={mrn}",                  NO,  NO, DENY,DENY,  OK,  OK,  OK),
    ("GET",    "/api/messages/{id}",                           NO,  NO,  OK,  OK,  OK,  OK,  OK),
    ("GET",    "/api/messages/{missing}",                      NO,  NO, GONE,GONE,GONE,GONE,GONE),
    ("GET",    "/api/messages/{id}?content=1&reason=x",        NO,  NO, DENY,DENY,  OK,DENY,  OK),
    ("GET",    "/api/messages/{missing}?content=1&reason=x",   NO,  NO, DENY,DENY,GONE,DENY,GONE),
    ("GET",    "/api/messages/{id}?content=1",                 NO,  NO, DENY,DENY, BAD,DENY, BAD),
    ("POST",   "/api/messages/{id}/reprocess",                 NO,  NO, DENY,DENY,  OK,DENY,  OK),
    ("POST",   "/api/messages/{missing}/reprocess",            NO,  NO, DENY,DENY,GONE,DENY,GONE),
    ("GET",    "/api/audit",                                   NO,  NO, DENY,DENY,DENY,  OK,  OK),
    ("GET",    "/api/audit?message={id}",                      NO,  NO, DENY,DENY,DENY,  OK,  OK),
    ("GET",    "/api/audit?patient={mrn}",                     NO,  NO, DENY,DENY,DENY,  OK,  OK),
    ("GET",    "/api/audit/verify",                            NO,  NO, DENY,DENY,DENY,  OK,  OK),
    ("GET",    "/api/audit/export",                            NO,  NO, DENY,DENY,DENY,  OK,  OK),
    ("GET",    "/api/audit/disclosures?patient={mrn}",         NO,  NO, DENY,DENY,DENY,  OK,  OK),
    ("POST",   "/api/audit/disclosures",                       NO,  NO, DENY,DENY,DENY, BAD, BAD),
    ("GET",    "/api/revisions",                               NO,  NO,  OK,  OK,  OK,  OK,  OK),
    ("GET",    "/api/revisions/1",                             NO,  NO, GONE,GONE,GONE,GONE,GONE),
    ("POST",   "/api/revisions/1/approve",                     NO,  NO, DENY,DENY,DENY,DENY,GONE),
    ("GET",    "/api/events",                                  NO,  NO,  OK,  OK,  OK,  OK,  OK),
    ("GET",    "/api/alerts",                                  NO,  NO,  OK,  OK,  OK,  OK,  OK),
    ("GET",    "/api/nosuch",                                  NO,  NO, GONE,GONE,GONE,GONE,GONE),
]  # fmt: skip

CELLS = [(role, method, path, expected)
         for method, path, *statuses in TABLE
         for role, expected in zip(ROLES, statuses, strict=True)]
MISSING_ID = "0" * 26


def route_of(path: str) -> str:
    """The route pattern a denied event must name for `path` (no ids, no query)."""
    path = path.split("?", 1)[0].replace("{missing}", "{id}")
    if path == "/api/nosuch":
        return "unmatched"
    path = re.sub(r"^/api/channels/adt/\w+$", "/api/channels/{name}/{action}", path)
    path = re.sub(r"^/api/channels/\w+$", "/api/channels/{name}", path)
    path = re.sub(r"^/api/revisions/1/\w+$", "/api/revisions/{number}/{action}", path)
    path = re.sub(r"^/api/revisions/1$", "/api/revisions/{number}", path)
    return re.sub(r"^/api/queues/adt/fhir/", "/api/queues/{channel}/{destination}/", path)


async def request(world: World, role: str, method: str, path: str,
                  headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One request as `role`, with a fresh client and no cookies: (status, body)."""
    url = world.base + path.format(id=world.ids["accepted"], missing=MISSING_ID, mrn=MRN)
    body = None
    if (method, path) == ("POST", "/api/session"):
        body = {"token": world.token(role)} if role != "anonymous" else {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client, \
            client.request(method, url, json=body,
                           headers={**bearer(world.token(role)), **(headers or {})}) as resp:
        if resp.content_type == "text/event-stream":  # a live stream: its first event
            return resp.status, await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)
        return resp.status, await resp.read()


@pytest.mark.parametrize(("role", "method", "path", "expected"), CELLS,
                         ids=[f"{r} {m} {p}" for r, m, p, _ in CELLS])
async def test_access_table(world, role, method, path, expected):
    cell = f"{role} {method} {path}"
    before = last_seq(world.engine)
    status, body = await request(world, role, method, path)
    assert status == expected, f"{cell}: expected {expected}, got {status}: {body[:300]!r}"
    denied = audit_rows(world.engine, audit.c.seq > before, audit.c.kind == "denied")
    if status in (NO, DENY):
        error = json.loads(body)
        assert set(error) == {"error", "message"}, f"{cell}: {error}"
        assert len(denied) == 1, f"{cell}: {len(denied)} denied events"
        [event] = denied
        detail = json.loads(event.detail)
        assert detail["route"] == route_of(path), f"{cell}: {detail}"
        assert (detail["method"], detail["status"]) == (method, status), f"{cell}: {detail}"
        expected_actor = f"web:{USERS[role]}" if role in USERS else "anonymous"
        assert event.actor == expected_actor, f"{cell}: {event.actor}"
        assert event.message_id is None and event.patient is None, cell
        for secret in (world.ids["accepted"], MISSING_ID, MRN, "content=", "reason", "?"):
            assert secret not in event.detail, f"{cell}: {secret!r} in {event.detail}"
    else:
        assert denied == [], f"{cell}: a {status} wrote a denied event"


async def test_every_api_route_is_in_the_table(world):
    """A new route must get a row: the table is only a specification if it is complete."""
    app_routes = {(r.method, r.resource.canonical)
                  for r in world.engine.web.app.router.routes()
                  if r.method != "HEAD" and not r.resource.canonical.startswith("/static")}
    covered = {(method, route_of(path)) for method, path, *_ in TABLE}
    assert app_routes - covered == set()


# -- refusals leak nothing -------------------------------------------------------------------

@pytest.mark.parametrize("role", ["anonymous", "bad-token", "viewer", "operator", "auditor"])
@pytest.mark.parametrize("path", ["/api/messages/{}?content=1&reason=x",
                                  "/api/messages/{}?content=1",
                                  "/api/messages/{}/reprocess"])
async def test_refusal_is_the_same_whether_the_message_exists_or_not(world, role, path):
    method = "POST" if path.endswith("reprocess") else "GET"
    exists = await request(world, role, method, path.format(world.ids["accepted"]))
    missing = await request(world, role, method, path.format(MISSING_ID))
    malformed = await request(world, role, method, path.format("not-an-id"))
    assert exists[0] in (NO, DENY)
    assert exists == missing == malformed


# -- session cookies -------------------------------------------------------------------------

async def test_session_cookie_is_httponly_strict_and_csrf_protected(world):
    await running(world.engine)
    base, token = world.base, world.tokens["operator"]
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies for 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as client:
        async with client.post(f"{base}/api/session", json={"token": token}) as resp:
            assert resp.status == OK
            signed_in = await resp.json()
            set_cookie = resp.headers["Set-Cookie"]
        assert signed_in["user"] == "opal" and signed_in["role"] == "operator"
        csrf = signed_in["csrf"]
        assert set_cookie.startswith("conduit_session=")
        attributes = {a.strip().lower() for a in set_cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= attributes, set_cookie
        session_id = set_cookie.split(";", 1)[0].split("=", 1)[1]
        assert token not in set_cookie and session_id != token

        async with client.get(f"{base}/api/channels") as resp:
            assert resp.status == OK
        async with client.get(f"{base}/api/session") as resp:
            assert (await resp.json())["csrf"] == csrf

        before = last_seq(world.engine)
        pause = f"{base}/api/channels/adt/pause"
        async with client.post(pause) as resp:
            assert resp.status == DENY and (await resp.json())["error"] == "csrf"
        async with client.post(pause, headers={"X-CSRF-Token": csrf[:-2] + "xx"}) as resp:
            assert resp.status == DENY
        async with client.post(pause, headers={"X-CSRF-Token": token}) as resp:
            assert resp.status == DENY  # the API token is not the CSRF token
        denied = audit_rows(world.engine, audit.c.seq > before, audit.c.kind == "denied")
        reasons = [(e.actor, json.loads(e.detail)["why"]) for e in denied]
        assert reasons == [("web:opal", "csrf")] * 3
        assert world.engine.channels["adt"].state.value == "started"

        async with client.post(pause, headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status == OK and (await resp.json())["state"] == "paused"
        async with client.post(f"{base}/api/channels/adt/resume",
                               headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status == OK and (await resp.json())["state"] == "started"

        async with client.delete(f"{base}/api/session") as resp:
            assert resp.status == DENY  # signing out changes state too
        async with client.delete(f"{base}/api/session", headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status == OK
        async with client.get(f"{base}/api/channels") as resp:
            assert resp.status == NO  # the browser dropped the cookie

    # The server ended the session too: the old cookie, replayed, opens nothing.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client, \
            client.get(f"{base}/api/channels",
                       headers={"Cookie": f"conduit_session={session_id}"}) as resp:
        assert resp.status == NO


async def test_a_viewer_session_cannot_act_even_with_the_csrf_token(world):
    await running(world.engine)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        async with client.post(f"{world.base}/api/session",
                               json={"token": world.tokens["viewer"]}) as resp:
            csrf = (await resp.json())["csrf"]
        async with client.post(f"{world.base}/api/channels/adt/stop",
                               headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status == DENY and (await resp.json())["error"] == "forbidden"
    assert world.engine.channels["adt"].state.value == "started"


async def test_bearer_token_requests_need_no_csrf_header(world):
    await running(world.engine)
    headers = bearer(world.tokens["operator"])
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        for action, state in (("pause", "paused"), ("resume", "started")):
            async with client.post(f"{world.base}/api/channels/adt/{action}",
                                   headers=headers) as resp:
                assert resp.status == OK
                assert (await resp.json())["state"] == state


async def test_sign_in_with_a_bad_token_sets_no_cookie(world):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        for body in ({"token": BAD_TOKEN}, {"token": ""}, {}, ["not", "an", "object"]):
            async with client.post(f"{world.base}/api/session", json=body) as resp:
                assert resp.status == NO, body
                assert "Set-Cookie" not in resp.headers
        async with client.post(f"{world.base}/api/session", data=b"not json") as resp:
            assert resp.status == BAD and "Set-Cookie" not in resp.headers
            assert (await resp.json())["error"] == "bad-json"


# -- /metrics --------------------------------------------------------------------------------

async def test_metrics_can_be_opened_to_scrapers_by_configuration(tmp_path):
    harness = WebHarness(tmp_path, metrics_open=True)
    try:
        await harness.start({"adt": adt_channel(free_port(), tmp_path / "out",
                                                "http://127.0.0.1:9/fhir")})
        async with aiohttp.ClientSession() as client:
            async with client.get(f"{harness.base}/metrics") as resp:
                assert resp.status == OK
                assert "conduit_" in await resp.text()
            async with client.get(f"{harness.base}/api/channels") as resp:
                assert resp.status == NO  # only /metrics is opened
    finally:
        await harness.stop()


# -- no PHI to viewers and operators ---------------------------------------------------------

async def _every_get(world: World, token: str) -> dict[str, str]:
    """Every GET a viewer or operator may make, and each response body."""
    paths = ["/api/channels", "/api/channels/adt", "/api/messages", "/api/queues",
             "/api/alerts", "/metrics", "/api/session", "/readyz", "/"]
    paths += [f"/api/messages?status={s}" for s in world.ids]
    paths += [f"/api/messages/{mid}" for mid in world.ids.values()]
    bodies = {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        for path in paths:
            async with client.get(world.base + path, headers=bearer(token)) as resp:
                assert resp.status == OK, path
                bodies[path] = await resp.text()
        async with client.get(f"{world.base}/api/events", headers=bearer(token)) as resp:
            chunks: list[bytes] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 2.5  # the stream sends a snapshot every 2 s
            while (left := deadline - loop.time()) > 0:
                try:
                    chunks.append(await asyncio.wait_for(resp.content.readany(), left))
                except TimeoutError:
                    break
            bodies["/api/events"] = b"".join(chunks).decode()
    assert bodies["/api/events"].count("event: status") >= 2
    return bodies


async def test_no_phi_in_any_response_to_a_viewer_or_operator(world):
    roles = ("viewer", "operator")
    seen = await asyncio.gather(*(_every_get(world, world.tokens[r]) for r in roles))
    for role, bodies in zip(roles, seen, strict=True):
        for path, text in bodies.items():
            assert NAME.lower() not in text.lower(), f"{role} GET {path} shows the name"
            assert MRN not in text, f"{role} GET {path} shows the patient's MRN"
        # The search can fail: the messages are there, with their ids and statuses.
        for status, mid in world.ids.items():
            assert mid in bodies["/api/messages"], status
            assert f'"status":"{status}"' in bodies[f"/api/messages/{mid}"]


async def test_an_analyst_content_view_does_show_the_patient(world):
    async with aiohttp.ClientSession() as client:
        for status, mid in world.ids.items():
            async with client.get(f"{world.base}/api/messages/{mid}",
                                  params={"content": "1", "reason": "PHI boundary test"},
                                  headers=bearer(world.tokens["analyst"])) as resp:
                assert resp.status == OK
                content = (await resp.json())["content"]
            assert NAME in content["raw"] and MRN in content["raw"], status
            if status == "accepted":  # the mapped FHIR Bundle carries the patient too
                assert any(NAME.lower() in o["content"].lower() for o in content["outputs"])
    viewed = audit_rows(world.engine, audit.c.kind == "viewed", audit.c.actor == "web:ana")
    assert {e.message_id for e in viewed} >= set(world.ids.values())
    assert all(json.loads(e.detail)["reason"] in ("x", "PHI boundary test") for e in viewed)


async def test_the_reason_can_travel_in_a_header_out_of_the_address(world):
    """The status page sends the reason in X-Conduit-Reason (percent-encoded, so any
    language fits), never in the URL a proxy logs; the trail keeps it decoded."""
    mid = world.ids["accepted"]
    said = "Überprüfung: INC-7 ζ"
    async with aiohttp.ClientSession() as client, client.get(
            f"{world.base}/api/messages/{mid}", params={"content": "1"},
            headers={**bearer(world.tokens["analyst"]),
                     "X-Conduit-Reason": quote(said)}) as resp:
        assert resp.status == OK
        assert "reason" not in str(resp.url)
    viewed = audit_rows(world.engine, audit.c.kind == "viewed", audit.c.message_id == mid)
    assert json.loads(viewed[-1].detail)["reason"] == said
