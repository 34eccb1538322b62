"""The FHIR R4 REST protocol as the FHIR source speaks it: content negotiation, the
OperationOutcome of a refusal, the CapabilityStatement, transaction/batch-response
Bundles, status codes, and what a subscription notification is.

Pure functions of dicts and strings: the source (fhir_source) does the I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from engine import __version__
from engine.formats.fhir import issue as problem_issue
from engine.formats.fhir_validation import is_must_have
from engine.message import MessageStatus, PartReceipt, Problem

FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"
# What a request body may be: the R4 type, plain JSON, and the DSTU2 spelling some
# older clients still send.
JSON_TYPES = frozenset({FHIR_JSON, "application/json", "application/json+fhir"})
XML_TYPES = frozenset({FHIR_XML, "application/xml", "text/xml", "application/xml+fhir"})
_FORMAT_PARAM = {"json": FHIR_JSON, "application/json": FHIR_JSON, FHIR_JSON: FHIR_JSON,
                 "application/json+fhir": FHIR_JSON, "xml": FHIR_XML, "text/xml": FHIR_XML,
                 "application/xml": FHIR_XML, FHIR_XML: FHIR_XML}
FHIR_VERSION = "4.0.1"
REASONS = {200: "200 OK", 201: "201 Created", 400: "400 Bad Request", 405:
           "405 Method Not Allowed", 422: "422 Unprocessable Entity", 503:
           "503 Service Unavailable", 500: "500 Internal Server Error"}
TAKEN_METHODS = ("POST", "PUT")  # of a Bundle entry: create and update, nothing else


def media_type(header: str) -> str:
    """`application/fhir+json` of `application/fhir+json; charset=utf-8; fhirVersion=4.0`."""
    return header.split(";", 1)[0].strip().lower()


def answer_type(accept: str, format_param: str | None, body: str = "json") -> str | None:
    """The media type to answer in, or None when the client accepts nothing we write
    (406). `_format` overrides Accept, as the spec says; without either, or for a
    wildcard, the answer is in the request's own format (`body`: "json" or "xml");
    otherwise the format of the higher q value, the request's on a tie."""
    own = FHIR_XML if body == "xml" else FHIR_JSON
    if format_param:
        return _FORMAT_PARAM.get(format_param.strip().lower())
    if not accept.strip():
        return own
    named: dict[str, float] = {}
    wildcard = 0.0
    for part in accept.split(","):
        kind, q = media_type(part), _quality(part)
        if kind in JSON_TYPES or kind in XML_TYPES:
            fmt = FHIR_JSON if kind in JSON_TYPES else FHIR_XML
            named[fmt] = max(named.get(fmt, 0.0), q)
        elif kind in ("*/*", "application/*"):
            wildcard = max(wildcard, q)
    scores = {fmt: named.get(fmt, wildcard) for fmt in (own, FHIR_JSON, FHIR_XML)}
    best = max(scores.values())
    if best <= 0:
        return None
    return next(fmt for fmt, q in scores.items() if q == best)


def _quality(part: str) -> float:
    for param in part.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def body_format(content_type: str, format_param: str | None) -> str:
    """"json", "xml" or "other" for a request body."""
    kind = media_type(content_type)
    if not kind and format_param:  # a body without Content-Type: _format may say
        kind = _FORMAT_PARAM.get(format_param.strip().lower(), "")
    if kind in JSON_TYPES:
        return "json"
    return "xml" if kind in XML_TYPES else "other"


def issue(severity: str, code: str, text: str, expression: str | None = None
          ) -> dict[str, Any]:
    out: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": text}
    if expression:
        out["expression"] = [expression]
    return out


def outcome(issues: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


def refusal(code: str, text: str, expression: str | None = None) -> dict[str, Any]:
    """The OperationOutcome of a request refused before it became a message."""
    return outcome([issue("error", code, text, expression)])


def capability_statement(resources: Sequence[str], *, bundles: bool, subscription: bool,
                         auth: str, base_url: str, now: dt.datetime) -> dict[str, Any]:
    """What this endpoint accepts, and nothing more: create and update per resource type,
    batch and transaction when Bundles are taken, the security service when tokens are
    required. Both formats, by R4's short codes for them (CapabilityStatement.format)."""
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": "Conduit interface engine: messages are taken on, mapped and "
                         "delivered onwards; nothing here can be read back.",
        "resource": [
            {"type": kind, "interaction": [{"code": "create"}, {"code": "update"}],
             "versioning": "versioned", "updateCreate": True}
            for kind in resources if kind != "Bundle"],
    }
    if bundles:
        rest["interaction"] = [{"code": "transaction"}, {"code": "batch"}]
    if auth != "none":
        service = {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR" if auth == "jwt" else "OAuth"}]}
        rest["security"] = {
            "cors": False, "service": [service],
            "description": "Authorization: Bearer <token> on every request but this one"
                           + (" (a JWT of the configured issuer, with SMART system/ or "
                              "user/ write scopes)" if auth == "jwt" else
                              " (a token of an engine user whose role may submit)")}
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kind": "instance",
        "software": {"name": "Conduit", "version": __version__},
        "implementation": {"description": "Conduit FHIR source", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["json", "xml"],
        "rest": [rest],
    }
    if subscription:
        statement["implementation"]["description"] += " (also a rest-hook subscription endpoint)"
    return statement


def notification_type(bundle: dict[str, Any]) -> str | None:
    """The type of a subscription notification (handshake, heartbeat, event-notification,
    query-status, query-event), or None when the Bundle is no notification. R4 backport
    IG: a `history` Bundle whose first entry is a Parameters with parameter `type`;
    R4B/R5: a SubscriptionStatus with element `type`."""
    if bundle.get("type") not in ("history", "subscription-notification"):
        return None
    entries = bundle.get("entry")
    first = entries[0].get("resource") if isinstance(entries, list) and entries \
        and isinstance(entries[0], dict) else None
    if not isinstance(first, dict):
        return None
    if first.get("resourceType") == "SubscriptionStatus":
        kind = first.get("type")
        return kind if isinstance(kind, str) else "event-notification"
    if first.get("resourceType") != "Parameters":
        return None
    for param in first.get("parameter") or ():
        if isinstance(param, dict) and param.get("name") == "type":
            kind = param.get("valueCode")
            return kind if isinstance(kind, str) else "event-notification"
    return None


def http_status(status: MessageStatus, problems: Sequence[Problem], message_id: str,
                created: bool) -> int:
    """The HTTP answer to what became of a message.

    accepted: 201 for a create, 200 for an update; filtered and duplicate: 200 (taken on,
    on record, nothing new made). rejected: 422 when the content is valid FHIR that
    breaks this channel's rules (must-have elements missing, a transaction part its
    mapping cannot take), else 400 (not valid FHIR).
    error (the mapping failed on valid FHIR): 422, since the same content sent again
    fails the same way and a 5xx would invite exactly that; the message is kept for the
    analyst. Not stored at all (message_id ""): 503, send again later."""
    if not message_id:
        return 503
    if status is MessageStatus.ACCEPTED:
        return 201 if created else 200
    if status in (MessageStatus.FILTERED, MessageStatus.DUPLICATE):
        return 200
    if status is MessageStatus.ERROR:
        return 422
    errors = [p for p in problems if p.severity in ("E", "F")]
    return 422 if errors and all(_business(p) for p in errors) else 400


def _business(problem: Problem) -> bool:
    """A problem of valid FHIR that this channel cannot take (its must-have elements, a
    transaction part its mapping fails on), as opposed to content that is no valid FHIR."""
    return is_must_have(problem) or problem.code in ("207", "processing", "business-rule")


def response_bundle(kind: str, entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A transaction-response or batch-response: one entry per request entry."""
    return {"resourceType": "Bundle", "type": f"{kind}-response",
            "entry": [{"response": e} for e in entries]}


def creates(entry: dict[str, Any]) -> bool:
    """Whether a Bundle entry, once taken, made a new resource (201) rather than a new
    version of one (200): every POST, and a PUT at its first version."""
    request = entry.get("request")
    resource = entry.get("resource")
    if not isinstance(request, dict) or request.get("method") != "PUT" \
            or not isinstance(resource, dict):
        return True
    return version_of(resource) == "1"


def part_entry(part: PartReceipt | None, resource: Any, *, default_status: MessageStatus,
               message_id: str, problems: Sequence[Problem], created: bool = True
               ) -> dict[str, Any]:
    """The `response` of one request entry: its part's receipt when the channel split the
    Bundle, else the whole Bundle's (`default_status`, `message_id`)."""
    status = part.status if part else default_status
    mid = part.message_id if part else message_id
    own = part.problems if part else problems
    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    code = http_status(status, own, mid, created=created)
    response: dict[str, Any] = {"status": REASONS.get(code, str(code))}
    if code < 300 and isinstance(kind, str):
        rid = resource.get("id") if isinstance(resource.get("id"), str) else mid
        response["location"] = f"{kind}/{rid}/_history/{version_of(resource)}"
        response["etag"] = f'W/"{version_of(resource)}"'
    texts = [issue("information", "informational", f"message {mid}: {status.value}")] \
        if mid else []
    response["outcome"] = outcome(texts + [problem_issue(p) for p in own])
    return response


def untaken_entry(resource: Any, index: int) -> dict[str, Any]:
    """The `response` of a batch entry the channel did not take as a message (its split
    takes another resource type): nothing was created, so no 2xx."""
    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    what = f"{kind} entries are" if isinstance(kind, str) and kind.isalpha() and \
        len(kind) <= 64 else "this entry is"
    return entry_refused(400, "not-supported", f"{what} not taken by this channel",
                         f"Bundle.entry[{index}]")


def entry_refused(code: int, issue_type: str, text: str, expression: str) -> dict[str, Any]:
    """The `response` of one batch entry refused on its own: its status and an
    OperationOutcome locating why."""
    return {"status": REASONS.get(code, str(code)),
            "outcome": outcome([issue("error", issue_type, text, expression)])}


def batch_refusal(index: int, entry: dict[str, Any]) -> dict[str, Any] | None:
    """The `response` of a batch entry this endpoint cannot process at all (a read, a
    delete, a POST without a resource), or None for one the channel is handed. A batch's
    entries are independent (FHIR R4 http.html#batch): such an entry is answered alone
    while the others are taken."""
    request = entry.get("request")
    method = request.get("method") if isinstance(request, dict) else None
    if method not in TAKEN_METHODS:
        return entry_refused(405, "not-supported", "only POST and PUT of a resource are "
                             "taken here", f"Bundle.entry[{index}].request.method")
    resource = entry.get("resource")
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return entry_refused(400, "required", f"a {method} entry needs a resource",
                             f"Bundle.entry[{index}].resource")
    wrong = put_target_problem(index, entry)
    return entry_refused(400, "invalid", *wrong) if wrong else None


def put_target(entry: dict[str, Any]) -> tuple[str, str] | None:
    """(type, id) a PUT entry's request.url names (`[base/]Type/id`), else None (another
    method; a conditional update, judged by its search; a URL of a type alone, which
    senders use for the body's own id)."""
    request = entry.get("request")
    if not isinstance(request, dict) or request.get("method") != "PUT":
        return None
    url = str(request.get("url", ""))
    parts = url.rstrip("/").split("/")
    if "?" in url or len(parts) < 2 or not parts[-2][:1].isupper():
        return None
    return parts[-2], parts[-1]


def put_target_problem(index: int, entry: dict[str, Any]) -> tuple[str, str] | None:
    """(text, FHIRPath) when a PUT entry's resource is not the one its URL names: an
    update writes the resource the URL names (R4 http.html#update), so a body with
    another type or id would be stored under the wrong identity."""
    target, resource = put_target(entry), entry.get("resource")
    if target is None or not isinstance(resource, dict):
        return None
    rid = resource.get("id")
    if resource.get("resourceType") != target[0] or (rid is not None and rid != target[1]):
        return ("the resource's type and id must equal those its request.url names",
                f"Bundle.entry[{index}].resource.id")
    return None


def twice_written(entries: list[dict[str, Any]]) -> int | None:
    """The index of the first PUT entry of a transaction that writes a resource an earlier
    entry writes: R4 (http.html#transaction) fails a transaction whose entries overlap."""
    seen: set[tuple[str, str]] = set()
    for index, entry in enumerate(entries):
        target = put_target(entry)
        if target is None:
            continue
        if target in seen:
            return index
        seen.add(target)
    return None


def version_of(resource: dict[str, Any]) -> str:
    meta = resource.get("meta")
    version = meta.get("versionId") if isinstance(meta, dict) else None
    return version if isinstance(version, str) and version else "1"


def instant(moment: dt.datetime) -> str:
    """A FHIR instant in UTC with milliseconds."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{moment.microsecond // 1000:03d}Z"


def if_match(header: str | None) -> int | None:
    """The version an If-Match header names (`W/"3"`, `"3"`), None without one; a
    header naming no whole version is version 0, which no resource is at."""
    if header is None or not header.strip():
        return None
    tag = header.strip().removeprefix("W/").strip('"')
    return int(tag) if tag.isdecimal() and len(tag) < 16 else 0
