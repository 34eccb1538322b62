"""Structural validation of FHIR resources with fhir.resources (R4B models, the ones that
read R4 content), plus a channel's own "must have" elements, as Problems with FHIRPath.

Only channels with `validation: lenient|strict` come here: a pydantic model walk costs
about 3 ms for a 20-entry Bundle (DESIGN.md), a hundred times msgspec's decoding, so it
stays off the default path; the models are imported on first use for the same reason.

Each Problem carries a FHIR issue-type code (`structure`, `required`, `value`,
`invalid`) in `code` and the FHIRPath expression of the element in `segment` (the field
HL7v2 uses for its segment name); texts are pydantic's messages without the input value,
so nothing of the patient reaches a reply, a log line or an audit row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from engine.formats import fhir_json_rules
from engine.message import Problem

MAX_ISSUES = 50  # a broken 10 MiB Bundle must not answer with a million issues

# FHIR issue types (http://hl7.org/fhir/issue-type) our problems use.
STRUCTURE = "structure"  # not readable as the resource: unknown element, wrong JSON type
REQUIRED = "required"  # a required element (by the base spec or a must-have) is missing
VALUE = "value"  # an element's value breaks its type's rules (a date that is no date)
INVALID = "invalid"  # anything else the model refuses
ISSUE_TYPES = frozenset({STRUCTURE, REQUIRED, VALUE, INVALID})

_REQUIRED_TYPES = {"missing", "model_field_validation.missing"}
_VALUE_TYPES = {"value_error", "string_pattern_mismatch", "literal_error", "enum",
                "string_too_long", "string_too_short", "too_long", "too_short",
                "greater_than", "greater_than_equal", "less_than", "less_than_equal"}
_MAX_TEXT = 200
_MUST_HAVE = "is required by this channel"


def validate_resource(resource: Any, level: str,
                      must_have: Mapping[str, Sequence[str]] | None = None) -> list[Problem]:
    """Problems of one resource (a Bundle with its entries), as errors under `strict`
    and as warnings under `lenient` (the channel accepts those and reports them)."""
    if level == "off" or not isinstance(resource, dict):
        return []
    severity = "E" if level == "strict" else "W"
    kind = resource.get("resourceType")
    problems = list(_model_problems(resource, str(kind), severity))
    problems += fhir_json_rules.problems(resource, severity)  # what the models let through
    if must_have:
        problems += _must_have_problems(resource, must_have, severity)
    return problems[:MAX_ISSUES]


def _model_problems(resource: dict[str, Any], kind: str, severity: str) -> Iterator[Problem]:
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    try:
        model = get_fhir_model_class(kind)
    except (KeyError, ValueError):
        yield Problem(f"{kind[:64]} is not a FHIR R4 resource type", code=STRUCTURE,
                      segment="resourceType", severity=severity)
        return
    unknown = list(_unknown_nested(resource, kind, get_fhir_model_class))
    if unknown:  # the models fail with a KeyError on these, naming no element
        yield from (Problem(f"{name} is not a FHIR R4 resource type", code=STRUCTURE,
                            segment=where, severity=severity) for where, name in unknown)
        return
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        for err in errors[:MAX_ISSUES]:
            yield Problem(str(err.get("msg", "invalid"))[:_MAX_TEXT], code=issue_type(err["type"]),
                          segment=fhirpath(kind, err["loc"]), severity=severity)
    except RecursionError:
        yield Problem("the resource is nested too deeply to validate", code=STRUCTURE,
                      segment=kind, severity=severity)
    except (KeyError, TypeError, ValueError) as exc:  # the models' own gaps: no crash
        yield Problem(f"the resource cannot be read as FHIR R4 ({type(exc).__name__})",
                      code=STRUCTURE, segment=kind, severity=severity)


def _unknown_nested(resource: dict[str, Any], path: str, known: Any
                    ) -> Iterator[tuple[str, str]]:
    """(FHIRPath, type) of resources inside this one (contained, Bundle entries,
    Parameters) whose resourceType no R4 model knows."""
    inner: list[tuple[str, Any]] = []
    for key, sub in (("contained", None), ("entry", "resource"), ("parameter", "resource")):
        items = resource.get(key)
        if not isinstance(items, list):
            continue
        for i, item in enumerate(items):
            value = item.get(sub) if sub and isinstance(item, dict) else item
            where = f"{path}.{key}[{i}]" + (f".{sub}" if sub else "")
            if isinstance(value, dict):
                inner.append((where, value))
    for where, value in inner:
        name = value.get("resourceType")
        try:
            known(str(name))
        except (KeyError, ValueError):
            yield f"{where}.resourceType", str(name)[:64]
            continue
        yield from _unknown_nested(value, where, known)


def issue_type(error_type: str) -> str:
    """The FHIR issue type for a pydantic error type."""
    if error_type in _REQUIRED_TYPES:
        return REQUIRED
    if error_type in _VALUE_TYPES or error_type.endswith("_parsing"):
        return VALUE
    if (error_type == "extra_forbidden" or error_type.endswith("_type")
            or error_type in ("model_validation_format", "fhir-validation-wrong-resource-type")):
        return STRUCTURE
    return INVALID


def fhirpath(kind: str, loc: Sequence[str | int]) -> str:
    """`Patient.name[0].given` from pydantic's ("name", 0, "given"); the `__ext` sibling of
    a primitive (its `_birthDate`) becomes `birthDate.extension`, as FHIRPath sees it."""
    out = kind
    for step in loc:
        if isinstance(step, int):
            out += f"[{step}]"
        elif step.endswith("__ext"):
            out += f".{step[:-5]}.extension"
        elif step.startswith("_") and step[1:].isalnum():  # `_birthDate`: its extension
            out += f".{step[1:]}"
        elif step.replace("_", "").isalnum():  # skip pydantic's own steps ("function-after[..]")
            out += f".{step}"
    return out


def _must_have_problems(resource: dict[str, Any], must_have: Mapping[str, Sequence[str]],
                        severity: str) -> Iterator[Problem]:
    """The channel's required elements: for the resource itself and, in a Bundle, for each
    entry's resource (`Bundle.entry[2].resource.birthDate`)."""
    targets: list[tuple[str, Any]] = [(str(resource.get("resourceType")), resource)]
    if resource.get("resourceType") == "Bundle" and isinstance(resource.get("entry"), list):
        targets += [(f"Bundle.entry[{i}].resource", e.get("resource"))
                    for i, e in enumerate(resource["entry"]) if isinstance(e, dict)]
    for prefix, target in targets:
        if not isinstance(target, dict):
            continue
        kind = target.get("resourceType")
        for path in must_have.get(str(kind), ()):
            if not present(target, path):
                where = f"{prefix}.{path}"
                yield Problem(f"{kind}.{path} {_MUST_HAVE}", code=REQUIRED,
                              segment=where, severity=severity)


def is_must_have(problem: Problem) -> bool:
    """True for a problem of the channel's own must-have elements (a profile rule: HTTP
    422), as opposed to the base specification's structure (HTTP 400)."""
    return problem.code == REQUIRED and problem.text.endswith(_MUST_HAVE)


def present(resource: dict[str, Any], path: str) -> bool:
    """True when the dotted `path` (name.family) reaches a non-empty value in any repeat."""
    values: list[Any] = [resource]
    for step in path.split("."):
        found: list[Any] = []
        for value in values:
            item = value.get(step) if isinstance(value, dict) else None
            found.extend(item if isinstance(item, list) else [item])
        values = [v for v in found if v not in (None, "", [], {})]
        if not values:
            return False
    return True
