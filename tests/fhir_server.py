"""A real FHIR-ish HTTP server for tests: records what it receives and answers as told.

Scripted answers let a test make the receiving system fail (503, 429 with Retry-After,
400 with an OperationOutcome that quotes the patient back, as real servers do), hang,
drop the connection after committing, or recover, over a real socket. Without a script
it behaves like a small FHIR server: it keeps what it is sent, honours If-None-Exist
and conditional update on `identifier`, and answers transactions and batches entry by
entry. It can also demand credentials, and serve a SMART backend-services token
endpoint that checks the client assertion's signature against a registered public key.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from aiohttp import web
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from tests.loopback import LoopbackServer

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class Answer:
    """One scripted answer. `outcome` is the OperationOutcome's diagnostics for an error
    (real servers quote the resource back); `drop` commits the request, then closes the
    connection without answering (the answer is lost, as in a crash); `hold` commits,
    then waits that long before answering; `entries` fails entries of a transaction or
    batch by index: {1: 422}."""

    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    outcome: str = "processing failed"
    drop: bool = False
    hold: float = 0.0
    entries: dict[int, int] = field(default_factory=dict)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    query: str = ""
    status: int = 0  # what the server answered (0: nothing, the connection was dropped)
    at: float = 0.0  # time.time() when it arrived

    def json(self):
        return json.loads(self.body)


def outcome(status: int, diagnostics: str, code: str = "processing") -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [{
        "severity": "error", "code": code, "diagnostics": diagnostics,
        "expression": ["Patient.identifier"]}]}


def _token_matches(ident: Any, token: str) -> bool:
    """FHIR token search `system|value` (or `|value`, or `value`) against one Identifier;
    `\\|` is a literal bar."""
    if not isinstance(ident, dict):
        return False
    parts = token.replace("\\|", "\0").split("|")
    if len(parts) == 1:
        return ident.get("value") == parts[0].replace("\0", "|")
    system, value = (p.replace("\0", "|").replace("\\", "") for p in parts[:2])
    return ident.get("system", "") == system and ident.get("value") == value


class FhirTestServer(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self.received: list[Received] = []  # requests answered 2xx (kept as before)
        self.requests: list[Received] = []  # every request to the FHIR base, any answer
        self.script: deque[Answer] = deque()
        self.default = Answer(200)
        self.arrived = asyncio.Event()
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}
        self._ids = itertools.count(1)
        # Credentials: None accepts anything; else the Authorization values accepted.
        self.accept: set[str] | None = None
        # SMART token endpoint at /token.
        self.client_keys: dict[str, tuple[str, RSAKey | ECKey]] = {}  # client_id -> kid, key
        self.token_script: deque[int] = deque()  # statuses to answer before issuing
        self.expires_in: float = 3600
        self.honour_tokens = True  # False: issue tokens, then refuse them (a broken server)
        self.tokens_issued: list[str] = []
        self.token_requests: list[dict[str, Any]] = []  # the verified assertion claims
        self._jtis: set[str] = set()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/fhir"

    @property
    def token_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/token"

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r for (k, _), r in self.resources.items() if k == kind]

    def revoke(self, token: str) -> None:
        assert self.accept is not None
        self.accept.discard(f"Bearer {token}")

    # -- FHIR -------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        record = Received(request.method, request.path, dict(request.headers), body,
                          request.query_string, 0, time.time())
        self.requests.append(record)
        if self.accept is not None and request.headers.get("Authorization") not in self.accept:
            record.status = 401
            return self._json(401, outcome(401, "invalid or expired token", "login"))
        answer = self.script.popleft() if self.script else self.default
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.status >= 300:
            record.status = answer.status
            return self._json(answer.status, outcome(answer.status, answer.outcome),
                              answer.headers)
        status, payload, headers = self._apply(request, body, answer)
        if answer.hold:
            await asyncio.sleep(answer.hold)
        if answer.drop:
            assert request.transport is not None
            request.transport.close()  # committed, but the client never hears of it
            return web.Response()
        record.status = status
        if status < 300:
            self.received.append(record)
            self.arrived.set()
        return self._json(status, payload, {**headers, **answer.headers})

    @staticmethod
    def _json(status: int, payload: Any, headers: dict[str, str] | None = None
              ) -> web.Response:
        if payload is None:  # Prefer: return=minimal, which the engine always asks for
            return web.Response(status=status, headers=headers or {})
        return web.Response(body=json.dumps(payload).encode(), status=status,
                            headers=headers or {}, content_type="application/fhir+json")

    def _apply(self, request: web.Request, body: bytes, answer: Answer
               ) -> tuple[int, Any, dict[str, str]]:
        """Do what a FHIR server would with this request; (status, body, headers)."""
        parts = [p for p in request.path.split("/")[2:] if p]  # after /fhir
        try:
            resource = json.loads(body) if body else None
        except ValueError:
            return 400, outcome(400, "not JSON"), {}
        if not parts and isinstance(resource, dict) and resource.get("type") in (
                "transaction", "batch"):
            return self._bundle(resource, answer.entries)
        kind = parts[0] if parts else ""
        rid = parts[1] if len(parts) > 1 else None
        if request.method == "PUT" and rid is None and request.query_string:
            return self._one("PUT", f"{kind}?{request.query_string}", resource, None)
        if request.method == "PUT":
            return self._one("PUT", f"{kind}/{rid}", resource, None)
        return self._one("POST", kind, resource, request.headers.get("If-None-Exist"))

    def _one(self, method: str, url: str, resource: Any, if_none_exist: str | None
             ) -> tuple[int, Any, dict[str, str]]:
        path, _, query = url.partition("?")
        kind, _, rid = path.partition("/")
        if method == "DELETE":
            self.resources.pop((kind, rid), None)
            return 204, None, {}
        if not isinstance(resource, dict):
            return 400, outcome(400, "no resource"), {}
        if method == "POST":
            if if_none_exist:
                found = self._search(kind, if_none_exist)
                if len(found) > 1:
                    return 412, outcome(412, "several matches", "duplicate"), {}
                if found:
                    return 200, None, {"Location": f"{kind}/{found[0]['id']}/_history/1"}
            rid = f"s{next(self._ids)}"
        elif query:  # conditional update
            found = self._search(kind, query)
            if len(found) > 1:
                return 412, outcome(412, f"match URL {kind}?{unquote(query)} matched "
                                         f"{len(found)} resources", "multiple-matches"), {}
            rid = found[0]["id"] if found else f"s{next(self._ids)}"
        existed = (kind, rid) in self.resources
        self.resources[(kind, rid)] = {**resource, "id": rid}
        return (200 if existed else 201), None, {"Location": f"{kind}/{rid}/_history/1"}

    def _search(self, kind: str, query: str) -> list[dict[str, Any]]:
        tokens = parse_qs(query).get("identifier", [])
        return [r for r in self.of_type(kind) for t in tokens
                if any(_token_matches(i, t) for i in r.get("identifier") or [])]

    def _bundle(self, bundle: dict[str, Any], failing: dict[int, int]
                ) -> tuple[int, Any, dict[str, str]]:
        entries = bundle.get("entry") or []
        if bundle["type"] == "transaction" and failing:  # all or nothing
            status = next(iter(failing.values()))
            return status, outcome(status, "entry failed"), {}
        out = []
        for index, entry in enumerate(entries):
            if index in failing:
                out.append({"response": {"status": str(failing[index]),
                                         "outcome": outcome(failing[index], "entry failed")}})
                continue
            req = entry.get("request") or {}
            url = urlsplit(req.get("url", ""))
            target = url.path + (f"?{url.query}" if url.query else "")
            status, _, headers = self._one(req.get("method", "POST"), target,
                                           entry.get("resource"), req.get("ifNoneExist"))
            out.append({"response": {"status": str(status), **(
                {"location": headers["Location"]} if "Location" in headers else {})}})
        kind = f"{bundle['type']}-response"
        return 200, {"resourceType": "Bundle", "type": kind, "entry": out}, {}

    # -- SMART backend services token endpoint ----------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if self.token_script:
            status = self.token_script.popleft()
            return web.json_response({"error": "temporarily_unavailable"}, status=status)
        if (form.get("grant_type") != "client_credentials"
                or form.get("client_assertion_type") != ASSERTION_TYPE):
            return web.json_response({"error": "invalid_request"}, status=400)
        claims = self._verify(str(form.get("client_assertion", "")))
        if claims is None:
            return web.json_response({"error": "invalid_client"}, status=401)
        self.token_requests.append({**claims, "scope": form.get("scope")})
        token = f"tok{len(self.tokens_issued) + 1}"
        self.tokens_issued.append(token)
        if self.accept is not None and self.honour_tokens:
            self.accept.add(f"Bearer {token}")
        return web.json_response({"access_token": token, "token_type": "bearer",
                                  "expires_in": self.expires_in,
                                  "scope": form.get("scope")})

    def _verify(self, assertion: str) -> dict[str, Any] | None:
        """The assertion's claims when it is signed by the client's registered key and
        says what SMART requires; None otherwise."""
        try:
            unverified = json.loads(_b64(assertion.split(".")[1]))
            kid, key = self.client_keys[unverified["iss"]]
            token = jwt.decode(assertion, key, algorithms=["RS384", "ES384"])
        except (JoseError, ValueError, KeyError, IndexError):
            return None
        claims, header = token.claims, token.header
        registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": unverified["iss"]},
            sub={"essential": True, "value": unverified["iss"]},
            aud={"essential": True, "value": self.token_url},
            exp={"essential": True}, jti={"essential": True})
        try:
            registry.validate(claims)
        except JoseError:
            return None
        if (header.get("kid") != kid or claims["jti"] in self._jtis
                or claims["exp"] > time.time() + 300):
            return None
        self._jtis.add(claims["jti"])
        return {**claims, "alg": header["alg"]}

    # -- plumbing ---------------------------------------------------------------------

    async def start(self, tls: ssl.SSLContext | None = None) -> FhirTestServer:
        """Listen on loopback; over HTTPS with `tls` (url then says https)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/token", self._token)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        await self.serve(app, tls)
        return self

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        async def enough() -> None:
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(enough(), timeout)
        return self.received


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
