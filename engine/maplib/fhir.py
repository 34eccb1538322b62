"""FHIR building blocks every mapping shares: deterministic ids, transaction entries,
and the rule that empty elements are left out.

Ids are uuid5 of (resource type, scope, identifier system, identifier value) in one
namespace, so the same patient, visit or order gets the same id from every feed and every
mapping version: a redelivered or reprocessed message updates instead of duplicating.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from typing import Any

import msgspec

# Changing this changes every id already stored on receiving servers: never do.
ID_NAMESPACE = uuid.UUID("b2ec2468-a2cd-5d39-8c09-0636614f6dc6")
_NAMESPACE = ID_NAMESPACE.bytes


def resource_id(resource_type: str, scope: str, identifier: dict[str, Any]) -> str:
    """uuid5 of type, scope (the sending facility), system and value: stable, a valid id.
    Computed as RFC 4122 says (SHA-1 of namespace and name, version and variant bits
    set) without a UUID object in between: a third of the time, several ids a message."""
    name = "|".join((resource_type, scope, identifier.get("system", ""), identifier["value"]))
    d = bytearray(hashlib.sha1(_NAMESPACE + name.encode()).digest()[:16])
    d[6] = (d[6] & 0x0F) | 0x50  # version 5
    d[8] = (d[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = d.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def put_entry(resource: dict[str, Any]) -> dict[str, Any]:
    """A transaction entry that creates or replaces the resource at its derived id."""
    kind, rid = resource["resourceType"], resource["id"]
    return {
        "fullUrl": f"urn:uuid:{rid}",
        "resource": resource,
        "request": {"method": "PUT", "url": f"{kind}/{rid}"},
    }


def reference(resource: dict[str, Any]) -> dict[str, str]:
    """A reference to a resource of the same transaction Bundle."""
    return {"reference": f"urn:uuid:{resource['id']}"}


def transaction(resources: list[dict[str, Any]], timestamp: str | None = None) -> dict[str, Any]:
    """A transaction Bundle that PUTs every resource; `timestamp` (an instant: when the
    source message was made) is Bundle.timestamp when given."""
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "transaction"}
    if timestamp:
        bundle["timestamp"] = timestamp
    bundle["entry"] = [put_entry(r) for r in resources]
    return bundle


def one_per_id(resources: list[dict[str, Any]], *, latest: bool = False) -> list[dict[str, Any]]:
    """Each resource once, where its id first stands: a transaction may not PUT one
    resource twice. The first of them is kept, or with `latest` the last one's content
    (a later segment about the same thing replaces an earlier one)."""
    by_id: dict[str, dict[str, Any]] = {}
    for resource in resources:
        if latest or resource["id"] not in by_id:
            by_id[resource["id"]] = resource
    return list(by_id.values())


def distinct(items: Iterable[Any]) -> list[Any]:
    """Each item once, by value, where it first stands. In linear time: a sender may
    repeat a field thousands of times, and comparing each element with all kept before
    took minutes on a 3 MB message."""
    seen: set[bytes] = set()
    kept = []
    for item in items:
        key = msgspec.json.encode(item, order="sorted")
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


def compact(resource: dict[str, Any]) -> dict[str, Any]:
    """Drop absent elements: FHIR forbids empty strings, arrays and objects."""
    return {k: v for k, v in resource.items() if v is not None and v != "" and v != [] and v != {}}
