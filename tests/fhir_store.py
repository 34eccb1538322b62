"""A FHIR server in a dict, for tests that follow several messages' Bundles as a
receiving server applies them: what a user sees is the resources left at the end (the
status of the real order after NewRx then CancelRx, what a CancelRx left of the
NewRx's dosage).

It applies a transaction's entries as R4 says, in the ways our mappings write them:
PUT `Type/id` replaces; PATCH `Type/id` (a JSON Patch, RFC 6902, in a Binary: the
form HAPI, Azure and Google take) changes the resource in place and fails when it is
absent (404), as servers do; PATCH `Type?identifier=system|value&...` (a conditional
patch) patches the one match and fails on none or several. A failing entry fails the
whole transaction, which leaves the store as it was.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any
from urllib.parse import parse_qsl


class Refused(Exception):
    """What a server would answer with a 4xx: `status` and why."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(f"{status} {why}")
        self.status = status


class FhirServer:
    """Referential integrity is enforced, as HAPI does by default: a literal reference
    in a written resource must name a resource the server holds."""

    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Any]] = {}  # "Type/id" -> resource

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r for key, r in self.resources.items() if key.startswith(kind + "/")]

    def get(self, key: str) -> dict[str, Any]:
        return self.resources[key]

    def transaction(self, bundle: dict[str, Any]) -> None:
        """Apply every entry, or none (a failing entry raises Refused)."""
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
        work = copy.deepcopy(self.resources)
        urls = {e["fullUrl"]: e["request"]["url"] for e in bundle["entry"]
                if e["request"]["method"] == "PUT" and "fullUrl" in e}
        for entry in bundle["entry"]:
            self._entry(work, entry, urls)
        for key, resource in work.items():
            if resource is not self.resources.get(key):
                for ref in _references(resource):
                    if ref not in work:
                        raise Refused(422, f"{key} refers to {ref}, which does not exist")
        self.resources = work

    def _entry(self, work: dict[str, dict[str, Any]], entry: dict[str, Any],
               urls: dict[str, str]) -> None:
        method, url = entry["request"]["method"], entry["request"]["url"]
        if method == "PUT":
            work[url] = _resolved(entry["resource"], urls)
        elif method == "PATCH":
            key = self._match(work, url) if "?" in url else url
            if key not in work:
                raise Refused(404, f"{url} does not exist")
            work[key] = _patched(work[key], _json_patch(entry["resource"]))
        else:
            raise Refused(405, f"{method} is not supported by this test server")

    @staticmethod
    def _match(work: dict[str, dict[str, Any]], url: str) -> str:
        kind, _, query = url.partition("?")
        params = parse_qsl(query)
        found = [key for key, r in work.items() if key.startswith(kind + "/")
                 and all(_matches(r, name, value) for name, value in params)]
        if len(found) != 1:
            raise Refused(404 if not found else 412, f"{url} matches {len(found)}")
        return found[0]


def _references(node: Any) -> list[str]:
    """Literal references (`Type/id`) anywhere in a resource."""
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


def _matches(resource: dict[str, Any], name: str, value: str) -> bool:
    if name == "identifier":
        system, _, wanted = value.rpartition("|")
        return any(i.get("system") == system and i.get("value") == wanted
                   for i in resource.get("identifier", []))
    ref = resource.get(name, {})
    return isinstance(ref, dict) and ref.get("reference") == value


def _resolved(resource: dict[str, Any], urls: dict[str, str]) -> dict[str, Any]:
    """References to the Bundle's own entries (urn:uuid) as the server stores them:
    `Type/id` of what the entry PUT."""
    text = json.dumps(resource)
    for full_url, url in urls.items():
        text = text.replace(f'"{full_url}"', f'"{url}"')
    return json.loads(text)


def _json_patch(resource: dict[str, Any]) -> list[dict[str, Any]]:
    assert resource["resourceType"] == "Binary", "PATCH needs a JSON Patch in a Binary"
    assert resource["contentType"] == "application/json-patch+json"
    return json.loads(base64.b64decode(resource["data"]))


def _patched(resource: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    for op in operations:
        parts = op["path"].lstrip("/").split("/")
        parent = out
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        if op["op"] == "test":
            if parent.get(last) != op["value"]:
                raise Refused(422, f"test failed at {op['path']}")
        elif op["op"] == "replace" and last not in parent:
            raise Refused(422, f"nothing to replace at {op['path']}")
        elif op["op"] in ("add", "replace"):
            parent[last] = op["value"]
        elif op["op"] == "remove":
            parent.pop(last, None)
        else:
            raise Refused(422, f"op {op['op']} is not supported by this test server")
    return out
