"""Rules of FHIR JSON (R4 json.html) and required code bindings that the fhir.resources
models do not check, as Problems located by FHIRPath, for `validation: lenient|strict`.

The models take `"birthDate": null` and `"name": []` as absent, never see a key sent
twice (JSON decoding keeps the last), accept a resource id of any length, and check no
code against its value set. FHIR forbids all of these: nulls (outside the arrays of a
primitive paired with its `_element` array), empty arrays, an object's key twice, ids
over 64 characters, and codes outside a required binding. Only what the engine's own
mappings read is bound here (ContactPoint.system and use, administrative gender); a
full terminology check is a profile validator's job.

Texts name the element and the rule, never a value: they reach replies, logs and the
audit trail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from engine.message import Problem

STRUCTURE = "structure"
VALUE = "value"
MAX_ID = 64
_NAME = re.compile(r"_?[A-Za-z][A-Za-z0-9_]{0,63}\Z")  # an element name fit to quote back
# Required bindings (R4 valuesets contact-point-system, contact-point-use,
# administrative-gender).
_TELECOM = {"system": frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"}),
            "use": frozenset({"home", "work", "temp", "old", "mobile"})}
_GENDER = frozenset({"male", "female", "other", "unknown"})
_GENDERED = frozenset({"Patient", "Practitioner", "RelatedPerson", "Person"})
_BOM = b"\xef\xbb\xbf"

Loc = tuple[str | int, ...]


def path(kind: str, loc: Loc) -> str:
    """FHIRPath of `loc` under a resource of type `kind`: Patient.name[0].family; an
    element name unfit to quote (it could carry anything) reads as `element`."""
    out = kind
    for step in loc:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += "." + (step if _NAME.match(step) else "element")
    return out


class _Pairs(dict):  # type: ignore[type-arg]
    """A decoded object that remembers the keys it was sent twice."""

    twice: list[str]


def _pairs(items: list[tuple[str, Any]]) -> _Pairs:
    out = _Pairs(items)
    out.twice = [k for i, (k, _) in enumerate(items) if any(k == j for j, _ in items[:i])] \
        if len(out) < len(items) else []
    return out


def duplicate_keys(raw: bytes) -> list[str]:
    """The FHIRPath of every key sent twice in one object of the JSON `raw` (RFC 8259
    leaves them undefined; FHIR JSON has each element once), an object's before those of
    the objects inside it; [] for JSON that Python cannot read (msgspec's reading is the
    one that counts)."""
    try:
        body = json.loads(raw[3:] if raw[:3] == _BOM else raw, object_pairs_hook=_pairs,
                          parse_float=str, parse_int=str, parse_constant=str)
    except (ValueError, RecursionError):
        return []
    kind = body.get("resourceType") if isinstance(body, dict) else None
    kind = kind if isinstance(kind, str) and kind.isalpha() else "Resource"
    found: list[str] = []
    stack: list[tuple[Any, Loc]] = [(body, ())]
    while stack:
        node, loc = stack.pop()
        if isinstance(node, _Pairs):
            found += [path(kind, (*loc, key)) for key in node.twice]
            stack += [(v, (*loc, k)) for k, v in reversed(node.items())]
        elif isinstance(node, list):
            stack += [(v, (*loc, i)) for i, v in reversed(list(enumerate(node)))]
    return found


# ele-1: every element has a value or children; `{}` has neither
_EMPTY_OBJECT = "an empty object is not allowed in FHIR JSON (ele-1); leave the element out"


def problems(resource: dict[str, Any], severity: str) -> list[Problem]:
    """Nulls, empty arrays, over-long ids and codes outside their required binding in
    `resource` (a Bundle with its entries, contained resources)."""
    kind = str(resource.get("resourceType"))
    return list(_walk(resource, kind, (), severity, None))


def _walk(node: Any, kind: str, loc: Loc, severity: str, owner: str | None
          ) -> Iterator[Problem]:
    """`owner`: the resourceType of the resource `node` is the root of, else None."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _walk(item, kind, (*loc, i), severity, None)
        return
    if not isinstance(node, dict):
        return
    if owner is None and isinstance(node.get("resourceType"), str):
        owner = node["resourceType"]
    if owner is not None:
        yield from _resource_rules(node, kind, loc, severity, owner)
    for key, value in node.items():
        here = (*loc, key)
        if value is None:
            yield Problem("null is not allowed in FHIR JSON; leave the element out",
                          code=STRUCTURE, segment=path(kind, here), severity=severity)
        elif value == {}:
            yield Problem(_EMPTY_OBJECT, code=STRUCTURE, segment=path(kind, here),
                          severity=severity)
        elif isinstance(value, list):
            if not value:
                yield Problem("an empty array is not allowed in FHIR JSON; leave the "
                              "element out", code=STRUCTURE, segment=path(kind, here),
                              severity=severity)
            elif None in value and not _paired(node, key):
                yield Problem("null is allowed in an array only beside its _element "
                              "array", code=STRUCTURE, segment=path(kind, here),
                              severity=severity)
            for i in (i for i, item in enumerate(value) if item == {}):
                yield Problem(_EMPTY_OBJECT, code=STRUCTURE, segment=path(kind, (*here, i)),
                              severity=severity)
            if key == "telecom":
                yield from _telecom(value, kind, here, severity)
        yield from _walk(value, kind, here, severity, None)


def _paired(node: dict[str, Any], key: str) -> bool:
    """Whether the array `key` has its primitive partner (`given` and `_given`)."""
    partner = key[1:] if key.startswith("_") else f"_{key}"
    return isinstance(node.get(partner), list)


def _resource_rules(resource: dict[str, Any], kind: str, loc: Loc, severity: str,
                    owner: str) -> Iterator[Problem]:
    rid = resource.get("id")
    if isinstance(rid, str) and len(rid) > MAX_ID:
        yield Problem(f"a resource id is at most {MAX_ID} characters", code=VALUE,
                      segment=path(kind, (*loc, "id")), severity=severity)
    if owner in _GENDERED:
        yield from _code(resource, "gender", _GENDER, "administrative-gender", kind, loc,
                         severity)
        for i, contact in enumerate(resource.get("contact") or []):
            if owner == "Patient" and isinstance(contact, dict):
                yield from _code(contact, "gender", _GENDER, "administrative-gender", kind,
                                 (*loc, "contact", i), severity)


def _telecom(points: list[Any], kind: str, loc: Loc, severity: str) -> Iterator[Problem]:
    for i, point in enumerate(points):
        if isinstance(point, dict):
            for element, codes in _TELECOM.items():
                yield from _code(point, element, codes, f"contact-point-{element}", kind,
                                 (*loc, i), severity)


def _code(holder: dict[str, Any], element: str, codes: frozenset[str], value_set: str,
          kind: str, loc: Loc, severity: str) -> Iterator[Problem]:
    value = holder.get(element)
    if isinstance(value, str) and value not in codes:
        yield Problem(f"is not a code of the required value set {value_set}", code=VALUE,
                      segment=path(kind, (*loc, element)), severity=severity)
