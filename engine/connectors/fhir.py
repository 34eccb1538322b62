"""FHIR REST destination: the engine as a FHIR client.

Which interaction a message becomes (the rule, in order):

1. A Bundle of type `transaction` or `batch` is POSTed to the base URL, whatever
   `interaction` says; its entries' `request` (method, url, ifNoneExist, ifMatch) are the
   mapping's own choice per resource. A 2xx batch-response (or transaction-response) is
   read entry by entry: any entry status of 400 or more makes the delivery a Retry
   (every failing entry 408/425/429/5xx) or a Fail (any other).
2. Any other resource (a document Bundle too) follows the destination's `interaction`:
   - `auto` (the default): PUT `[base]/[type]/[id]` when it has an id (a redelivery
     updates instead of duplicating), else POST `[base]/[type]`.
   - `create`: POST `[base]/[type]`.
   - `update`: PUT `[base]/[type]/[id]`; a resource without an id is a Fail.
   - `conditional-create`: POST `[base]/[type]` with `If-None-Exist: identifier=
     system|value` from the resource's business identifier, so a redelivery after a crash
     makes no duplicate (the server answers 200 and creates nothing).
   - `conditional-update`: PUT `[base]/[type]?identifier=system|value` (the server
     updates the one match or creates; 412 when several match, a Fail), sent without
     the resource's id and versionId, which are the sender's, not the server's.
   The business identifier is the first with a value, or the first with the system named
   by `identifier_system`; none is a Fail (no retry could add one). Content that is not
   a FHIR JSON resource is a Fail too.

Answers: 2xx delivered; 408/425/429/5xx and network errors retried, honouring
Retry-After; any other 4xx is permanent. The reason is PHI-free ("HTTP 422 Unprocessable
Entity: 2 issues (error: required at Patient.identifier)"); the OperationOutcome itself
is kept sealed with the dead letter. The identifier's value is PHI: it appears in the
request only, never in a reason or a log line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import quote

import msgspec
from msgspec import Meta

from engine.connectors.http import (
    HttpDestination,
    HttpDestinationConfig,
    Unsendable,
    classify,
    kept_answer,
    retryable,
    status_text,
)
from engine.formats import fhir_answer
from engine.formats.fhir import decode_json, encode_json
from engine.message import Delivery, Fail, Outbound, Retry, Sent

FHIR_JSON = "application/fhir+json"
_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}\Z")
_ID = re.compile(r"[A-Za-z0-9.-]{1,64}\Z")  # FHIR's id type: no path can hide in it

Interaction = Literal["auto", "create", "update", "conditional-create", "conditional-update"]


class FhirDestinationConfig(HttpDestinationConfig, tag="fhir"):
    url: Annotated[
        str, Meta(pattern=r"^https?://", description="the FHIR server's base URL")
    ]
    interaction: Annotated[Interaction, Meta(description=(
        "what a single resource becomes: auto (PUT with an id, else POST), create, update, "
        "conditional-create (If-None-Exist on the business identifier) or "
        "conditional-update; transaction and batch Bundles are always POSTed to the base"
    ))] = "auto"
    identifier_system: Annotated[
        Annotated[str, Meta(min_length=1)] | None,
        Meta(description="the identifier system conditional interactions match on "
                         "(default: the resource's first identifier)"),
    ] = None


class _Head(msgspec.Struct):
    """The few fields that choose the interaction; the rest is skipped, not decoded."""

    resourceType: Any = None
    id: Any = None
    type: Any = None  # Bundle.type (other resources' `type` is a CodeableConcept)
    identifier: Any = None


_decode_head = msgspec.json.Decoder(_Head).decode



class FhirDestination(HttpDestination):
    config: FhirDestinationConfig

    def request_for(self, outbound: Outbound) -> tuple[str, str, dict[str, str]]:
        base = self.config.url.rstrip("/")
        headers = {
            "Content-Type": f"{FHIR_JSON}; charset=utf-8",
            "Accept": FHIR_JSON,
            # Errors still come back as OperationOutcomes; successes need not echo the
            # resource (and its PHI) back to us.
            "Prefer": "return=minimal",
        }
        try:
            head = _decode_head(outbound.content)
        except (msgspec.DecodeError, msgspec.ValidationError):
            head = _Head()
        kind = head.resourceType if isinstance(head.resourceType, str) else ""
        if not _TYPE.match(kind):
            raise Unsendable("the content is not a FHIR JSON resource (no valid "
                             "resourceType)")
        if kind == "Bundle" and head.type in ("transaction", "batch"):
            return "POST", base, headers
        interaction = self.config.interaction
        rid = head.id if isinstance(head.id, str) and _ID.match(head.id) else None
        if interaction == "create" or (interaction == "auto" and rid is None):
            return "POST", f"{base}/{kind}", headers
        if interaction in ("auto", "update"):
            if rid is None:
                raise Unsendable(f"interaction update needs the {kind}'s id; it has none "
                                 "(or not a valid FHIR id)")
            return "PUT", f"{base}/{kind}/{rid}", headers
        search = self._identifier_search(kind, head.identifier)
        if interaction == "conditional-create":
            headers["If-None-Exist"] = search
            return "POST", f"{base}/{kind}", headers
        return "PUT", f"{base}/{kind}?{search}", headers

    def body_for(self, outbound: Outbound) -> bytes:
        """A conditional update sends the resource without its id: that id is the
        sender's, not the receiver's, and FHIR answers 400 when a body's id differs from
        the resource the search matched. Everything else goes as queued."""
        if self.config.interaction != "conditional-update":
            return outbound.content
        try:
            resource = decode_json(outbound.content)
        except msgspec.DecodeError:
            return outbound.content
        if not isinstance(resource, dict) or "id" not in resource \
                or resource.get("resourceType") == "Bundle":
            return outbound.content
        resource = {k: v for k, v in resource.items() if k != "id"}
        meta = resource.get("meta")
        if isinstance(meta, dict) and "versionId" in meta:  # the sender's version, too
            resource["meta"] = {k: v for k, v in meta.items() if k != "versionId"}
        return encode_json(resource)

    def _identifier_search(self, kind: str, identifiers: Any) -> str:
        """`identifier=system|value`, escaped as FHIR search and URL-encoded (a `|` stays
        as the spec's examples write it)."""
        wanted = self.config.identifier_system
        for ident in identifiers if isinstance(identifiers, list) else []:
            if not isinstance(ident, dict) or not isinstance(ident.get("value"), str):
                continue
            system = ident.get("system") if isinstance(ident.get("system"), str) else ""
            if ident["value"] and (wanted is None or system == wanted):
                token = f"{_escape(system)}|{_escape(ident['value'])}"
                return f"identifier={quote(token, safe=':/|')}"
        which = f"with system {wanted}" if wanted else "with a value"
        raise Unsendable(f"interaction {self.config.interaction} needs an identifier "
                         f"{which} on the {kind}; it has none")

    def read_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> Delivery:
        doc = fhir_answer.decode(body) if body else None
        if 200 <= status < 300:
            if doc is not None and fhir_answer.is_response_bundle(doc):
                failed = self._failed_entries(status, headers, body, doc)
                if failed is not None:
                    return failed
            return Sent(str(status))
        return classify(status, headers.get("Retry-After"),
                        detail=fhir_answer.outcome_summary(doc),
                        answer=kept_answer(headers, body))

    @staticmethod
    def _failed_entries(status: int, headers: Mapping[str, str], body: bytes,
                        bundle: dict[str, Any]) -> Delivery | None:
        """A transaction-response or batch-response with failing entries, as a Retry
        when every failure is one a receiver may get over, else a Fail; None if none."""
        failures = fhir_answer.failed_entries(bundle)
        if not failures:
            return None
        text = (f"{status_text(status)}: "
                f"{fhir_answer.entries_summary(failures, len(bundle.get('entry') or []))}")
        answer = kept_answer(headers, body)
        if all(f.status and retryable(f.status) for f in failures):
            return Retry(text, code=str(status), answer=answer)
        return Fail(text, code=str(status), answer=answer)


def _escape(text: str) -> str:
    """FHIR search escaping: a literal \\ | , or $ in a token is preceded by \\."""
    return re.sub(r"([\\|,$])", r"\\\1", text)
