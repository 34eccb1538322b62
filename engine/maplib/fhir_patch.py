"""Transaction entries that change part of a resource instead of replacing it, and
references to resources a Bundle does not carry.

A message that only changes a status (a CancelRx, a response deciding a Task) must not
PUT the resource: a PUT replaces it whole, so whatever the later message does not
repeat (the NewRx's dosage, dispense request, a patient's address) would be erased.

The change is a JSON Patch (RFC 6902) in a Binary resource, the entry's method PATCH:
the form FHIR R4 gives for JSON Patch in a transaction, and the patch format HAPI,
Azure Health Data Services and Google Cloud Healthcare all take (Google takes no
FHIRPath Patch at all). A PATCH of a resource the server does not hold fails (404),
which fails the transaction: a change never creates what it changes. The engine's
FHIR destination POSTs a transaction Bundle as the mapping wrote it, so the entries go
as they are. A conditional PATCH (`Type?search`) patches the one match; no match or
several fail the same way.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any
from urllib.parse import quote

import msgspec

from engine.maplib.fhir import ID_NAMESPACE

JSON_PATCH = "application/json-patch+json"


def patch_entry(url: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
    """A PATCH of `url` (`Type/id`, or a conditional `Type?params`) by `operations`.
    fullUrl is a urn:uuid of the url (deterministic, as every output must be)."""
    data = msgspec.json.encode(operations)
    digest = hashlib.sha1(ID_NAMESPACE.bytes + b"patch|" + url.encode()).digest()[:16]
    return {"fullUrl": f"urn:uuid:{uuid.UUID(bytes=digest, version=5)}",
            "resource": {"resourceType": "Binary", "contentType": JSON_PATCH,
                         "data": base64.b64encode(data).decode("ascii")},
            "request": {"method": "PATCH", "url": url}}


def set_ops(values: dict[str, Any]) -> list[dict[str, Any]]:
    """`add` of each top-level element that has a value (add replaces one present), and
    `replace` of status, which every resource we patch already has."""
    return [{"op": "replace" if name == "status" else "add", "path": f"/{name}",
             "value": value} for name, value in values.items()
            if value is not None and value != [] and value != {}]


def literal(resource_type: str, rid: str) -> dict[str, str]:
    """A reference to a resource the server already holds (not in this Bundle)."""
    return {"reference": f"{resource_type}/{rid}"}


def search_token(system: str, value: str) -> str:
    """`system|value` escaped as FHIR search says (\\ , $ |) and URL-encoded, `|` kept."""
    def escape(text: str) -> str:
        for char in ("\\", ",", "$", "|"):
            text = text.replace(char, "\\" + char)
        return text
    return quote(f"{escape(system)}|{escape(value)}", safe=":/|")


def with_entries(bundle: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The transaction with `entries` after its own."""
    return {**bundle, "entry": [*bundle.get("entry", []), *entries]}


def held_by_server(resources: list[dict[str, Any]], *held: dict[str, Any] | None
                   ) -> list[dict[str, Any]]:
    """`resources` without the `held` ones (written by an earlier, richer message: a
    NewRx's Patient and prescriber), every reference to those made literal, so this
    Bundle names them without replacing them with the less it knows."""
    urls = {f"urn:uuid:{r['id']}": f"{r['resourceType']}/{r['id']}" for r in held if r}
    kept = [r for r in resources if not any(r is h for h in held)]
    return [_relinked(r, urls) for r in kept]


def _relinked(node: Any, urls: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: (urls.get(v, v) if k == "reference" and isinstance(v, str)
                    else _relinked(v, urls)) for k, v in node.items()}
    if isinstance(node, list):
        return [_relinked(v, urls) for v in node]
    return node
