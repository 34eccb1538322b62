"""The engine as a FHIR R4 REST endpoint: a channel source of type `fhir`.

Serves, under a base path, `POST [base]/[type]` (create), `PUT [base]/[type]/[id]`
(update), `POST [base]` with a batch or transaction Bundle, `GET [base]/metadata`
(the CapabilityStatement), and, with `subscription: true`, the R4 rest-hook receiver
(an empty POST is a ping; a backport-IG `history` Bundle is a handshake, a heartbeat or
an event notification). Everything else is 404 or 405 with an OperationOutcome.

Decisions a sender will notice:
- Answers come only after `deliver` returns, that is after the durable commit; every
  answer that follows a commit names the engine's message id (header
  X-Conduit-Message-Id, and in the OperationOutcome).
- What HTTP itself can judge (method, path, Content-Type, size, readable JSON, a
  resource of the URL's type, the id of a PUT) is refused here without storing anything,
  like an MLLP framing error; what the channel judges (validation, mapping) is stored
  with its status for the analyst, and answered 400/422.
- A server sets meta.lastUpdated itself: where a resource (or a Bundle entry's
  resource) has none, the source sets it to the receipt time (UTC, milliseconds) before
  the message is stored, so the stored message is what the mapping read (HL7v2 MSH-7
  comes from it). Where the sender set one, it is kept. Stamped messages say so in their
  "received" audit detail (SourceMeta.changes). The entries of a Bundle that carries a
  timestamp are not stamped: the sender's Bundle.timestamp is their time, and it is what
  the FHIR-to-HL7v2 mappings then read as MSH-7 (of the Bundle, or of each split part,
  which carries it as its meta.lastUpdated), not the time the engine received it.
- Versions and ids: a PUT gets the next version of its id, kept in the store
  (engine.connectors.fhir_source_versions): 201 and W/"1" the first time, then 200 and
  W/"2", ...; a versionId in the body does not set it (but one ahead is kept). A create
  gets an id of the server's own (a UUID; the body's is ignored, as R4 says) and
  version 1.
- JSON and XML: an XML body (application/fhir+xml, or application/xml, text/xml) is
  turned into FHIR JSON first (engine.formats.fhir_xml), so the channel, the store and
  the mappings only ever see JSON; the "received" audit event says it was converted.
  XML that is no FHIR resource is a 400 and stores nothing, as unreadable JSON is.
  Answers follow `_format`, else Accept (q values), else the request's own format.
- No access log: URLs name resource ids, which may be identifiers.
- HTTPS with `tls:` (and client certificates with `tls.client_ca`); plain HTTP only on
  loopback unless the source says `insecure: true` (engine.config.checks).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import importlib.util
import logging
import re
import socket
import time
from typing import Annotated, Any, NoReturn

import msgspec
from aiohttp import web
from msgspec import Meta

from engine.config.base import SourceBase
from engine.config.types import ByteSize, Duration
from engine.connectors import fhir_source_rest as rest
from engine.connectors.base import Deliver, SourceContext
from engine.connectors.fhir_source_auth import AuthConfig, Authenticator, Client, Refused
from engine.connectors.fhir_source_versions import Taken, Versioner
from engine.connectors.http_listener import (
    BodyRefused,
    ConnectionGuard,
    MaxConnections,
    MaxConnectionsPerPeer,
    ReadTimeout,
    listen,
    read_body,
    take_over,
)
from engine.connectors.tls import ServerTls, exposed
from engine.events import Event, Kind
from engine.formats import fhir_xml
from engine.formats.fhir import decode_json, encode_json
from engine.formats.fhir import issue as problem_issue
from engine.formats.fhir_json_rules import duplicate_keys
from engine.message import MessageStatus, Receipt, SourceMeta
from engine.security.jwt import CREATE, UPDATE

log = logging.getLogger("conduit.fhir")

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}\Z")
_TYPE = r"^[A-Z][A-Za-z]+$"
_ENVELOPES = ("Parameters", "SubscriptionStatus")  # a notification's status entry
MESSAGE_ID_HEADER = "X-Conduit-Message-Id"
_PINGS = ("handshake", "heartbeat", "query-status")
_RAW = web.RequestKey("conduit_raw", bytes)  # the body as read, until it is delivered
_FROM_XML = web.RequestKey("conduit_from_xml", bool)  # the body came as XML
_TWICE = web.RequestKey("conduit_twice", list)  # FHIRPaths of keys sent twice (lenient)
_TWICE_TEXT = "this key is sent twice in its object; FHIR JSON has each element once"
CONVERTED = "converted from application/fhir+xml"  # SourceMeta.changes: all of the body
_XML_INLINE = 256 * 1024  # larger XML bodies are converted off the event loop
# No FHIR resource repeats an element this often; a body that does is built to make
# validation and mapping spend seconds of CPU (200,000 items: 2 s of model validation).
MAX_ARRAY_ITEMS = 10_000
RECENT = 300.0  # seconds a client counts as a peer on the status page after a request


class FhirSourceConfig(SourceBase, tag="fhir", rename={"types": "resources"}, kw_only=True):
    port: Annotated[int, Meta(ge=1, le=65535, description="TCP port to listen on (HTTP, or "
                                                          "HTTPS with tls)")]
    auth: Annotated[
        AuthConfig,
        Meta(description="who may post: {type: users} (tokens of engine users whose role "
                         "may submit), {type: jwt, issuer, audience, jwks_url, scopes}, or "
                         "{type: none}"),
    ]
    host: Annotated[str, Meta(description="address to bind; 0.0.0.0 for every interface")] = (
        "127.0.0.1"
    )
    tls: Annotated[
        ServerTls | None, Meta(description="serve HTTPS (and require client certificates "
                                           "with client_ca)")
    ] = None
    insecure: Annotated[
        bool, Meta(description="allow listening on a non-loopback host without tls; "
                               "resources and bearer tokens then cross the network in clear "
                               "(logged, and shown on the status page)")
    ] = False
    base_path: Annotated[
        str, Meta(pattern=r"^(/[A-Za-z0-9._~-]+)*$",
                  description="the FHIR base under the host, e.g. /fhir")
    ] = "/fhir"
    types: Annotated[  # `resources:` in YAML; resources() is what the source binds
        list[Annotated[str, Meta(pattern=_TYPE)]],
        Meta(min_length=1, description="resource types accepted by create and update; "
                                       "Bundle: batch and transaction Bundles on POST [base]"),
    ]
    required: Annotated[
        dict[Annotated[str, Meta(pattern=_TYPE)], list[str]],
        Meta(description="elements each resource type must have, e.g. {Patient: "
                         "[identifier, name.family]}: 422 when missing (needs the "
                         "channel's validation: lenient or strict)"),
    ] = {}
    max_request_size: Annotated[
        ByteSize, Meta(description="larger request bodies are refused with 413 unread")
    ] = ByteSize(10 * 1024 * 1024)
    read_timeout: ReadTimeout = Duration(30.0)
    max_connections: MaxConnections = 200
    max_connections_per_peer: MaxConnectionsPerPeer = 20
    subscription: Annotated[
        bool, Meta(description="also a FHIR R4 rest-hook subscription endpoint at the base: "
                               "pings, handshakes and heartbeats are answered and audited, "
                               "event notifications taken as messages")
    ] = False

    def __post_init__(self) -> None:
        for kind in [*self.types, *self.required]:
            if importlib.util.find_spec(f"fhir.resources.R4B.{kind.lower()}") is None:
                raise ValueError(f"{kind} is not a FHIR R4 resource type")

    def resources(self) -> list[str]:
        """What this source binds, so validation can catch two channels on one port."""
        return [f"tcp:{self.port}"]


class _Answer(Exception):
    """A finished response, raised from deep in a request's handling."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response


class FhirSource:
    """An aiohttp server that hands each accepted resource or Bundle to the channel."""

    def __init__(self, config: FhirSourceConfig, context: SourceContext) -> None:
        self.config = config
        self.context = context
        self.base = config.base_path.rstrip("/")
        self.auth = Authenticator(config.auth, context.users)
        self.types = frozenset(config.types)
        self.bundles = "Bundle" in self.types
        self._deliver: Deliver | None = None
        self._runner: web.AppRunner | None = None
        self._guard: ConnectionGuard | None = None
        self._adopted: socket.socket | None = None  # taken over from the source replaced
        self._seen: dict[str, float] = {}  # client name -> when it was last let in
        self.versions = Versioner(context.versions, context.channel)

    @property
    def address(self) -> str:
        scheme = "https" if self.config.tls else "http"
        return f"{scheme}://{self.config.host}:{self.config.port}{self.base}"

    def resources(self) -> list[str]:
        return self.config.resources()

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        sock, self._adopted = self._adopted, None
        self._runner, self._guard = await listen(
            self.config, self._handle, self.address, log, "fhir", "resources",
            self.context.shared_port, sock)

    def take_over(self, other: object) -> bool:
        """Serve, once started, the socket `other` (the source this one replaces in a
        swap) listens on (engine.connectors.http_listener.take_over)."""
        self._adopted = take_over(self, other)
        return self._adopted is not None

    async def stop(self) -> None:
        """Stop accepting; requests in flight finish and get their answers."""
        if self._adopted is not None:  # taken over but never started
            self._adopted.close()
            self._adopted = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _base_url(self, request: web.Request) -> str:
        """[base] as the spec's Location and CapabilityStatement mean it: the absolute
        URL of this endpoint, as the client addressed it."""
        return f"{request.scheme}://{request.host}{self.base}"

    def describe(self) -> dict[str, object]:
        """HTTP clients do not stay connected: the peers shown are the clients (user or
        JWT client names, never PHI) that were let in within the last RECENT seconds."""
        since = time.monotonic() - RECENT
        guard = self._guard.admission if self._guard is not None else None
        return {"address": self.address,
                "peers": sorted(name for name, at in self._seen.items() if at >= since),
                "refused": dict(guard.refused) if guard else {},
                "evicted": guard.evicted if guard else 0,
                "insecure": exposed(self.config.host, self.config.tls)}

    # ------------------------------------------------------------------ routing

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        pattern = "unmatched"
        try:
            pattern, handler, allowed = self._route(request)
            if handler is None:
                if allowed:
                    raise _Answer(_fhir(405, rest.refusal(
                        "not-supported", f"{request.method} is not supported here; this "
                        f"endpoint takes {', '.join(allowed)}"), Allow=", ".join(allowed)))
                raise _Answer(_fhir(404, rest.refusal(
                    "not-supported", "no such FHIR interaction at this endpoint; "
                    f"see {self.base}/metadata")))
            return _negotiated(request, await handler(request, pattern))
        except _Answer as answer:
            if answer.response.status >= 400 and answer.response.status not in (401, 403):
                log.info("fhir %s: %s %s answered %d", self.address, request.method, pattern,
                         answer.response.status)
            return _negotiated(request, answer.response)
        except Exception as exc:  # a bug must cost one request, never the daemon
            log.error("fhir %s: %s %s failed (%s)", self.address, request.method, pattern,
                      type(exc).__name__)
            return _negotiated(request, _fhir(500, rest.refusal(
                "exception", "the engine failed on this request; nothing was taken on")))

    def _route(self, request: web.Request) -> tuple[str, Any, list[str]]:
        """(route pattern, handler or None, methods allowed on this path)."""
        path = request.path
        if path != self.base and not path.startswith(self.base + "/"):
            return "unmatched", None, []
        parts = [p for p in path[len(self.base):].split("/") if p]
        method = request.method
        base = self.base or "/"
        if not parts:
            if not (self.bundles or self.config.subscription):
                return base, None, []
            return base, self._system if method == "POST" else None, ["POST"]
        if parts == ["metadata"]:
            return f"{self.base}/metadata", self._metadata if method in ("GET", "HEAD") \
                else None, ["GET"]
        kind = parts[0]
        if kind not in self.types or kind == "Bundle" or len(parts) > 2:
            return f"{self.base}/{{type}}", None, []
        if len(parts) == 1:
            return f"{self.base}/{{type}}", self._create if method == "POST" else None, ["POST"]
        return (f"{self.base}/{{type}}/{{id}}", self._update if method == "PUT" else None,
                ["PUT"])

    # ------------------------------------------------------------------ interactions

    async def _metadata(self, request: web.Request, pattern: str) -> web.StreamResponse:
        self._answer_type(request)
        statement = rest.capability_statement(
            list(self.config.types), bundles=self.bundles,
            subscription=self.config.subscription, auth=self.auth.kind,
            base_url=self._base_url(request),
            now=dt.datetime.now(dt.UTC))
        return _fhir(200, statement)

    async def _create(self, request: web.Request, pattern: str) -> web.StreamResponse:
        kind = request.path.rstrip("/").rsplit("/", 1)[-1]
        client = await self._authenticate(request, pattern)
        resource = await self._read_typed(request, kind)
        await self._authorize(request, pattern, client, [(kind, CREATE)])
        resource, taken = await self.versions.create(kind, resource)
        return await self._take(request, resource, client, created=True,
                                taken=[taken] if taken else [], assigned=[f"{kind}.id"])

    async def _read_typed(self, request: web.Request, kind: str) -> dict[str, Any]:
        """The body, which must be a resource of the type the URL names."""
        resource = await self._read_resource(request)
        if resource.get("resourceType") != kind:
            raise _Answer(_fhir(400, rest.refusal(
                "invalid", f"the body is a {_kind_text(resource)}, but this URL takes {kind}",
                "resourceType")))
        return resource

    async def _update(self, request: web.Request, pattern: str) -> web.StreamResponse:
        kind, rid = request.path.rstrip("/").rsplit("/", 2)[-2:]
        client = await self._authenticate(request, pattern)
        resource = await self._read_typed(request, kind)
        if resource.get("id") != rid:
            raise _Answer(_fhir(400, rest.refusal(
                "invalid", "the resource's id must equal the id in the URL", f"{kind}.id")))
        await self._authorize(request, pattern, client, [(kind, UPDATE)])
        expected = rest.if_match(request.headers.get("If-Match"))
        if expected is None:
            resource, taken = await self.versions.update(kind, rid, resource)
        else:  # version-aware: R4 http.html#concurrency
            found = await self.versions.update_if(kind, rid, resource, expected)
            if found is None:
                raise _Answer(_fhir(412, rest.refusal(
                    "conflict", f"If-Match names version {expected}, which is not the "
                    f"current version of this {kind}", f"{kind}.meta.versionId")))
            resource, taken = found
        return await self._take(request, resource, client, created=taken is not None and
                                taken.version == 1, taken=[taken] if taken else [])

    async def _system(self, request: web.Request, pattern: str) -> web.StreamResponse:
        """A batch or transaction Bundle; with `subscription`, also pings and
        notifications."""
        client = await self._authenticate(request, pattern)
        if self.config.subscription and _empty(request):
            await self._audit_ping(request, client, "ping")
            return _fhir(200, rest.outcome([rest.issue(
                "information", "informational", "subscription ping received")]))
        bundle = await self._read_resource(request)
        if bundle.get("resourceType") != "Bundle":
            raise _Answer(_fhir(400, rest.refusal(
                "invalid", f"POST {self.base} takes a Bundle, not a {_kind_text(bundle)}",
                "resourceType")))
        kind = bundle.get("type")
        notification = rest.notification_type(bundle) if self.config.subscription else None
        if notification in _PINGS:
            await self._audit_ping(request, client, str(notification))
            return _fhir(200, rest.outcome([rest.issue(
                "information", "informational", f"subscription {notification} received")]))
        if notification is None and not (self.bundles and kind in ("transaction", "batch")):
            what = "batch or transaction Bundles" if self.bundles else "subscription " \
                "notifications"
            raise _Answer(_fhir(400, rest.refusal(
                "not-supported", f"Bundle type {str(kind)[:40]} is not processed here; this "
                f"endpoint takes {what}", "Bundle.type")))
        entries = bundle.get("entry", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise _Answer(_fhir(400, rest.refusal(
                "structure", "Bundle.entry must be a list of objects", "Bundle.entry")))
        refused = {} if notification is not None or kind != "batch" else {
            i: r for i, e in enumerate(entries) if (r := rest.batch_refusal(i, e)) is not None}
        kept = [i for i in range(len(entries)) if i not in refused]
        if refused and not kept:  # nothing for the channel: nothing stored
            return _fhir(200, rest.response_bundle("batch", list(refused.values())))
        wants = self._entry_wants([entries[i] for i in kept], notification is not None,
                                  transaction=kind == "transaction")
        await self._authorize(request, pattern, client, wants)
        given = [entries[i] for i in kept]
        taken: list[Taken] = []
        if notification is None:
            given, taken = await self._versioned(given)
        if refused or taken:  # the channel gets the entries it can take, versioned
            bundle = {**bundle, "entry": given}
        receipt, _ = await self._deliver_resource(request, bundle, client, [
            f"Bundle.entry[{t.entry}].resource.meta.versionId" for t in taken] + [
            f"left out of the batch: Bundle.entry[{i}] (answered {refused[i]['status'][:3]})"
            for i in refused])
        await self.versions.settle(taken, receipt)
        if notification is not None:
            code = rest.http_status(receipt.status, receipt.problems, receipt.message_id,
                                    created=False)
            headers = {MESSAGE_ID_HEADER: receipt.message_id} if receipt.message_id else {}
            if code == 503:
                headers["Retry-After"] = "10"
            response = _fhir(code, _receipt_outcome(receipt), **headers)
        else:
            response = self._bundle_answer(receipt, given, str(kind), refused)
        return await _send(request, response, receipt)

    # ------------------------------------------------------------------ steps

    def _answer_type(self, request: web.Request) -> None:
        if _wanted(request) is None:
            raise _Answer(_fhir(406, rest.refusal(
                "not-supported", "this endpoint answers in application/fhir+json or "
                                 "application/fhir+xml only")))

    async def _authenticate(self, request: web.Request, pattern: str) -> Client:
        self._answer_type(request)
        try:
            client = await self.auth.authenticate(request.headers.get("Authorization", ""))
        except Refused as refused:
            await self._deny(request, pattern, None, refused)
        if len(self._seen) < 1000 or client.name in self._seen:  # bounded, whoever knocks
            self._seen[client.name] = time.monotonic()
        return client

    async def _authorize(self, request: web.Request, pattern: str, client: Client,
                         wants: list[tuple[str, str]]) -> None:
        try:
            self.auth.authorize(client, wants)
        except Refused as refused:
            await self._deny(request, pattern, client, refused)

    async def _deny(self, request: web.Request, pattern: str, client: Client | None,
                    refused: Refused) -> NoReturn:
        """Audit the refusal (route pattern and reason; never the URL or the token), then
        answer it."""
        if self.context.record is not None and refused.status in (401, 403):
            await self.context.record(Event(
                kind=Kind.DENIED, actor=client.name if client else "anonymous",
                channel=self.context.channel, peer=request.remote or "",
                detail={"method": request.method, "route": pattern, "status": refused.status,
                        "why": refused.reason}))
        headers = {}
        if refused.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="conduit", error="invalid_token"' \
                if request.headers.get("Authorization") else 'Bearer realm="conduit"'
        elif refused.status == 503:
            headers["Retry-After"] = "30"
        raise _Answer(_fhir(refused.status, rest.refusal(refused.code, refused.reason),
                            **headers))

    async def _read_resource(self, request: web.Request) -> dict[str, Any]:
        """The request body as a JSON object with a resourceType (XML converted), or a
        refusal: 415 for another Content-Type, 413 over the size limit (read no further),
        400 when it is no FHIR resource."""
        fmt = rest.body_format(request.headers.get("Content-Type", ""),
                               request.query.get("_format"))
        if fmt == "other":
            raise _Answer(_fhir(415, rest.refusal(
                "not-supported", "send the resource as application/fhir+json or "
                                 "application/fhir+xml")))
        raw = await self._read_body(request)
        if not raw.strip():
            raise _Answer(_fhir(400, rest.refusal("required", "the request has no body")))
        if fmt == "xml":
            raw = await _from_xml(raw)
            request[_FROM_XML] = True
        try:
            body = decode_json(raw)
        except msgspec.DecodeError as exc:
            text = "the body is not UTF-8" if "UTF-8" in str(exc) else "the body is not JSON"
            raise _Answer(_fhir(400, rest.refusal("structure", text))) from None
        except RecursionError:
            raise _Answer(_fhir(400, rest.refusal(
                "structure", "the body is nested too deeply to be a FHIR resource"))) from None
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise _Answer(_fhir(400, rest.refusal(
                "structure", "the body is not a FHIR resource (no resourceType)",
                "resourceType")))
        where = _oversized_array(body)
        if where is not None:
            raise _Answer(_fhir(400, rest.refusal(
                "too-costly", f"an array holds more than {MAX_ARRAY_ITEMS} items", where)))
        request[_RAW] = raw
        await self._keys_twice(request, raw)
        return body

    async def _keys_twice(self, request: web.Request, raw: bytes) -> None:
        """A key sent twice in one object is no FHIR JSON, and decoding keeps only the
        last, so only the source sees it: under strict validation a 400 naming each
        (nothing stored); otherwise the last is kept, said in the "received" audit detail
        and, under lenient, as a warning in the answer."""
        if request.get(_FROM_XML):
            return  # made from XML here: each key once
        twice = duplicate_keys(raw) if len(raw) <= _XML_INLINE else \
            await asyncio.to_thread(duplicate_keys, raw)
        if not twice:
            return
        if self.context.validation == "strict":
            raise _Answer(_fhir(400, rest.outcome(
                rest.issue("error", "structure", _TWICE_TEXT, where) for where in twice[:50])))
        request[_TWICE] = twice

    async def _read_body(self, request: web.Request) -> bytes:
        """The body, bounded in size and in time; a refusal closes the connection."""
        try:
            return await read_body(request, self.config.max_request_size,
                                   self.config.read_timeout)
        except BodyRefused as exc:
            code = "too-costly" if exc.status == 413 else "timeout"
            refusal = _fhir(exc.status, rest.refusal(code, exc.reason))
            refusal.force_close()
            raise _Answer(refusal) from None

    def _entry_wants(self, entries: list[dict[str, Any]], notification: bool, *,
                     transaction: bool = False) -> list[tuple[str, str]]:
        """(resource type, action) for each entry, refusing methods we do not take, a PUT
        whose body is not what its URL names, and (a transaction's) a resource written
        twice."""
        wants: list[tuple[str, str]] = []
        for index, entry in enumerate(entries):
            resource = entry.get("resource")
            kind = resource.get("resourceType") if isinstance(resource, dict) else None
            if notification:
                if isinstance(kind, str) and kind not in _ENVELOPES:
                    wants.append((kind, UPDATE))
                continue
            request = entry.get("request") if isinstance(entry.get("request"), dict) else {}
            method = str(request.get("method", ""))
            if method not in ("POST", "PUT") or not isinstance(kind, str):
                raise _Answer(_fhir(400, rest.refusal(
                    "not-supported", f"entry {index}: only POST and PUT of a resource are "
                    "taken here", f"Bundle.entry[{index}].request.method")))
            wrong = rest.put_target_problem(index, entry)
            if wrong is not None:
                raise _Answer(_fhir(400, rest.refusal("invalid", *wrong)))
            wants.append((kind, CREATE if method == "POST" else UPDATE))
        twice = rest.twice_written(entries) if transaction and not notification else None
        if twice is not None:
            raise _Answer(_fhir(400, rest.refusal(
                "duplicate", "a transaction may write a resource once; an earlier entry "
                "writes this one", f"Bundle.entry[{twice}].request.url")))
        return wants

    async def _versioned(self, entries: list[dict[str, Any]]
                         ) -> tuple[list[dict[str, Any]], list[Taken]]:
        """The entries with the next version of each PUT's resource, and what was taken."""
        out, taken = [], []
        for index, entry in enumerate(entries):
            resource, request = entry.get("resource"), entry.get("request")
            if isinstance(resource, dict) and isinstance(request, dict) \
                    and request.get("method") == "PUT":
                resource, took = await self.versions.update(
                    str(resource.get("resourceType")), resource.get("id"), resource, index)
                if took is not None:
                    entry = {**entry, "resource": resource}
                    taken.append(took)
            out.append(entry)
        return out, taken

    async def _take(self, request: web.Request, resource: dict[str, Any], client: Client,
                    *, created: bool, taken: list[Taken] | None = None,
                    assigned: list[str] | None = None) -> web.StreamResponse:
        """Deliver one resource and answer it; a version taken for it is given back when
        the answer is no 2xx. `assigned`: elements the source set (a create's id)."""
        changes = (assigned or []) + [f"{t.kind}.meta.versionId" for t in taken or []]
        receipt, stamped = await self._deliver_resource(request, resource, client, changes)
        await self.versions.settle(taken or [], receipt)
        if receipt.response is not None:  # a `respond:` channel: its answer, not ours
            return await _send(request, _responded(receipt), receipt)
        notes = [rest.issue("warning", "structure", _TWICE_TEXT, where)
                 for where in request.get(_TWICE, [])[:50]] \
            if self.context.validation == "lenient" else []
        response = self._single_answer(receipt, stamped, self._base_url(request),
                                       created=created, prefer=_prefer(request), notes=notes)
        return await _send(request, response, receipt)

    async def _deliver_resource(self, request: web.Request, resource: dict[str, Any],
                                client: Client, made: list[str] | None = None
                                ) -> tuple[Receipt, dict[str, Any]]:
        """Stamp meta.lastUpdated where missing, hand the message to the channel, and
        return its receipt (after the durable commit) with what was stored. `made`: what
        the source already changed in `resource` (a version it set, the batch entries it
        answered itself and left out), for the "received" audit detail."""
        now = dt.datetime.now(dt.UTC)
        stamped, changes = _stamp(resource, rest.instant(now))
        changes += made or []
        changes += [f"{where}: sent twice, the last kept" for where in request.get(_TWICE, [])]
        raw = encode_json(stamped) if changes else request[_RAW]
        if request.get(_FROM_XML):
            changes.insert(0, CONVERTED)
        assert self._deliver is not None
        peer = request.transport.get_extra_info("peername") if request.transport else None
        meta = SourceMeta("fhir", f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "",
                          len(raw), False, client.name, changes=tuple(changes))
        return await self._deliver(raw, meta), stamped

    async def _audit_ping(self, request: web.Request, client: Client, kind: str) -> None:
        if self.context.record is not None:
            await self.context.record(Event(
                kind=Kind.ADMIN, actor=client.name, channel=self.context.channel,
                peer=request.remote or "",
                detail={"action": f"subscription-{kind}"}))

    # ------------------------------------------------------------------ answers

    def _single_answer(self, receipt: Receipt, resource: dict[str, Any], base_url: str,
                       *, created: bool, prefer: str,
                       notes: list[dict[str, Any]] | None = None) -> web.StreamResponse:
        """`notes`: issues the source adds to an OperationOutcome answer (the lenient
        warnings about what only it could see)."""
        mid = receipt.message_id
        code = rest.http_status(receipt.status, receipt.problems, mid, created)
        headers = {MESSAGE_ID_HEADER: mid} if mid else {}
        headers["X-Conduit-Status"] = receipt.status.value if mid else "not-stored"
        if code >= 400:
            if code == 503:
                headers["Retry-After"] = "10"
            return _fhir(code, _receipt_outcome(receipt, notes), **headers)
        kind = str(resource.get("resourceType"))
        rid = resource.get("id") if isinstance(resource.get("id"), str) else mid
        version = rest.version_of(resource)
        headers["Location"] = f"{base_url}/{kind}/{rid}/_history/{version}"
        headers["ETag"] = f'W/"{version}"'
        modified = _http_date(resource)
        if modified:
            headers["Last-Modified"] = modified
        if prefer == "minimal":
            return web.Response(status=code, headers=headers)
        if prefer == "OperationOutcome":
            return _fhir(code, _receipt_outcome(receipt, notes), **headers)
        shown = dict(resource)
        shown["id"] = rid
        shown["meta"] = {**(resource.get("meta") or {}), "versionId": version}
        return _fhir(code, shown, **headers)

    def _bundle_answer(self, receipt: Receipt, entries: list[dict[str, Any]], kind: str,
                       refused: dict[int, dict[str, Any]]) -> web.Response:
        """The transaction/batch-response: per entry, its part's receipt when the channel
        split the Bundle, else the whole Bundle's. The channel checks every part of a
        transaction before it commits any, so a transaction is taken or refused whole
        (400/422 with the channel's OperationOutcome). Should a part still fail after
        others were committed (its own commit failed), the answer is that part's error
        with an OperationOutcome naming every entry's fate and message id, so the sender
        does not resend the committed ones blindly. `refused`: the batch entries the
        source answered itself (by their index in the request), not in `entries`."""
        mid = receipt.message_id
        headers = {MESSAGE_ID_HEADER: mid} if mid else {}
        if not mid:
            return _fhir(503, _receipt_outcome(receipt), **headers, **{"Retry-After": "10"})
        parts = {p.index: p for p in receipt.parts}
        originals = [i for i in range(len(entries) + len(refused)) if i not in refused]
        responses = []
        for index, entry in enumerate(entries):
            resource = entry.get("resource")
            if parts and index not in parts:
                responses.append(rest.untaken_entry(resource, originals[index]))
                continue
            responses.append(rest.part_entry(
                parts.get(index), resource, default_status=receipt.status, message_id=mid,
                problems=receipt.problems, created=rest.creates(entry)))
            if not parts:
                responses[-1]["outcome"]["issue"][0]["diagnostics"] = \
                    f"message {mid}: {receipt.status.value} (the Bundle as one message)"
        failed = [r for r in responses if not r["status"].startswith("2")]
        code = rest.http_status(receipt.status, receipt.problems, mid, True)
        if not parts and code >= 300:  # the Bundle as one message was not taken on
            return _fhir(code, _receipt_outcome(receipt), **headers)  # (even of no entries)
        if kind == "transaction" and failed:
            worst = max(int(r["status"][:3]) for r in failed)
            issues = []
            for index, r in enumerate(responses):
                for item in r.get("outcome", {}).get("issue", []):
                    issues.append({**item, "expression": [f"Bundle.entry[{index}]"]})
            return _fhir(worst, rest.outcome(issues), **headers)
        taken = iter(responses)
        everything = [refused[i] if i in refused else next(taken)
                      for i in range(len(responses) + len(refused))]
        return _fhir(200, rest.response_bundle(kind, everything), **headers)


# ---------------------------------------------------------------------- helpers


async def _send(request: web.Request, response: web.Response, receipt: Receipt
                ) -> web.Response:
    """Write the answer, then let the channel audit that it was acknowledged."""
    response = _negotiated(request, response)
    await response.prepare(request)
    await response.write_eof()
    receipt.replied()
    return response


# A request/response channel's outcome (engine.message.Response) as HTTP: its answer
# 200, none in time 504 (the message is still delivered), a refusal or an unusable
# answer from the receiver 502.
_RESPONDED = {"timeout": (504, "timeout"), "refused": (502, "exception"),
              "bad-answer": (502, "exception")}


def _responded(receipt: Receipt) -> web.Response:
    """The answer of a channel with `respond:` (e.g. a CoverageEligibilityResponse
    mapped from a payer's 271), or an OperationOutcome saying why there is none."""
    response = receipt.response
    assert response is not None
    headers = {MESSAGE_ID_HEADER: receipt.message_id,
               "X-Conduit-Status": receipt.status.value}
    if response.outcome == "answered":
        kind = response.content_type.partition(";")[0]
        return web.Response(status=200, body=response.body, headers=headers,
                            content_type=kind.strip() or "application/octet-stream",
                            charset="utf-8" if kind.strip() == rest.FHIR_JSON else None)
    status, code = _RESPONDED.get(response.outcome, (502, "exception"))
    return _fhir(status, rest.refusal(code, response.reason), **headers)


def _fhir(status: int, body: dict[str, Any], **headers: str) -> web.Response:
    return web.Response(status=status, body=encode_json(body), headers=headers,
                        content_type=rest.FHIR_JSON, charset="utf-8")


async def _from_xml(raw: bytes) -> bytes:
    """An XML body as the FHIR JSON a JSON sender would have sent, or a 400. Large bodies
    are converted in a thread so one sender cannot stall every other request."""
    try:
        if len(raw) > _XML_INLINE:
            resource = await asyncio.to_thread(fhir_xml.to_json, raw)
        else:
            resource = fhir_xml.to_json(raw)
    except fhir_xml.XmlError as exc:
        raise _Answer(_fhir(400, rest.refusal(exc.code, str(exc), exc.expression))) from None
    return encode_json(resource)


def _wanted(request: web.Request) -> str | None:
    """The media type the client wants its answer in (None: nothing we write)."""
    own = rest.body_format(request.headers.get("Content-Type", ""),
                           request.query.get("_format"))
    return rest.answer_type(request.headers.get("Accept", ""), request.query.get("_format"),
                            "xml" if own == "xml" else "json")


def _negotiated(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """The answer in XML when the client wants XML (it is built as JSON everywhere).
    The rare answer that cannot be written as XML (a representation whose narrative div
    is no XHTML) stays JSON rather than fail after the commit."""
    if response.prepared or not isinstance(response, web.Response) or \
            response.content_type != rest.FHIR_JSON or not isinstance(response.body, bytes) \
            or _wanted(request) != rest.FHIR_XML:
        return response
    try:
        response.body = fhir_xml.to_xml(decode_json(response.body))
    except (fhir_xml.XmlError, msgspec.DecodeError) as exc:
        log.info("fhir: an answer stays JSON (%s)", type(exc).__name__)
        return response
    response.headers.pop("Content-Length", None)
    response.content_type = rest.FHIR_XML
    return response


def _kind_text(resource: dict[str, Any]) -> str:
    """The resourceType for an error text: a word of letters at most 64 long, else
    "resource" (the text is sent back and logged, so it must never carry content)."""
    kind = resource.get("resourceType")
    return kind if isinstance(kind, str) and re.fullmatch(r"[A-Za-z]{1,64}", kind) \
        else "resource"


def _prefer(request: web.Request) -> str:
    """representation (our default: what FHIR clients expect back from a create),
    minimal or OperationOutcome, from the Prefer header."""
    for part in request.headers.get("Prefer", "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "return":
            value = value.strip().strip('"')
            if value in ("minimal", "representation", "OperationOutcome"):
                return value
    return "representation"


def _empty(request: web.Request) -> bool:
    """True for a request without a body (an R4 rest-hook ping)."""
    return request.content_length == 0 or not request.body_exists


def _stamp(resource: dict[str, Any], now: str) -> tuple[dict[str, Any], list[str]]:
    """The resource with meta.lastUpdated set where the server would set it (the resource,
    or each entry's resource of a Bundle without a timestamp; never a notification's
    status entry), and the FHIRPath of each element set."""
    changes: list[str] = []
    if resource.get("resourceType") != "Bundle":
        stamped = _stamp_one(resource, now)
        if stamped is not resource:
            changes.append(f"{resource['resourceType']}.meta.lastUpdated")
        return stamped, changes
    entries = resource.get("entry")
    if not isinstance(entries, list) or resource.get("timestamp"):
        return resource, changes  # the sender's Bundle.timestamp is its entries' time
    new_entries = []
    for index, entry in enumerate(entries):
        inner = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(inner, dict) and inner.get("resourceType") not in _ENVELOPES:
            stamped = _stamp_one(inner, now)
            if stamped is not inner:
                entry = {**entry, "resource": stamped}
                changes.append(f"Bundle.entry[{index}].resource.meta.lastUpdated")
        new_entries.append(entry)
    return ({**resource, "entry": new_entries} if changes else resource), changes


def _stamp_one(resource: dict[str, Any], now: str) -> dict[str, Any]:
    meta = resource.get("meta")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict) or meta.get("lastUpdated"):
        return resource  # a malformed meta is for validation to report, not ours to fix
    return {**resource, "meta": {**meta, "lastUpdated": now}}


def _oversized_array(body: dict[str, Any]) -> str | None:
    """The FHIRPath of the first array longer than MAX_ARRAY_ITEMS, else None. Iterative
    (depth costs no stack) and path-free until it finds one (a 10 MiB body of scalars
    takes well under a second)."""
    stack: list[tuple[Any, Any]] = [(body, None)]  # (node, (parent link, step))
    containers = (dict, list)
    while stack:
        node, link = stack.pop()
        if type(node) is dict:
            stack.extend((v, (link, k)) for k, v in node.items() if type(v) in containers)
        elif len(node) > MAX_ARRAY_ITEMS:
            steps = []
            while link is not None:
                link, step = link
                steps.append(f"[{step}]" if isinstance(step, int) else f".{step}")
            return str(body.get("resourceType", "")) + "".join(reversed(steps))
        else:
            stack.extend((v, (link, i)) for i, v in enumerate(node) if type(v) in containers)
    return None


def _http_date(resource: dict[str, Any]) -> str | None:
    meta = resource.get("meta")
    value = meta.get("lastUpdated") if isinstance(meta, dict) else None
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return email.utils.format_datetime(moment.astimezone(dt.UTC), usegmt=True)


def _receipt_outcome(receipt: Receipt, notes: list[dict[str, Any]] | None = None
                     ) -> dict[str, Any]:
    """The channel's own answer (an OperationOutcome from the codec, or the splitter's
    for a split Bundle) with the source's `notes` and the message id added, so the
    sender can trace it."""
    body: Any = None
    if receipt.replies:
        try:
            body = decode_json(receipt.replies[0])
        except msgspec.DecodeError:
            body = None
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        body = rest.outcome([problem_issue(p) for p in receipt.problems])
    issues = list(body.get("issue") or []) + list(notes or [])
    if receipt.message_id:
        issues.append(rest.issue("information", "informational",
                                 f"message {receipt.message_id}: {receipt.status.value}"))
    elif receipt.status is MessageStatus.ERROR:
        issues = issues or [rest.issue("error", "transient", "the engine could not store the "
                                                             "message; send it again")]
    return {**body, "issue": issues}
