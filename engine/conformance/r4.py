"""FHIR R4 validity of one resource or Bundle, as located reasons that hold no values.

The fhir.resources R4B models check structure, cardinality and primitive formats, but
not the codes of required bindings (an Observation.status of "done" passes them) nor
FHIR's rule against empty elements; both are checked here too. Pydantic's own messages
can quote the input, so every reason is written from the error's type and location
only: `Bundle.entry[2].resource(Observation).effectiveDateTime: is not a valid
dateTime`, never the value that was there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

# Required bindings the models do not enforce: element -> the codes R4 allows, per type.
_ADMIN_GENDER = frozenset({"male", "female", "other", "unknown"})
REQUIRED_CODES: dict[str, dict[str, frozenset[str]]] = {
    "Bundle": {"type": frozenset({
        "document", "message", "transaction", "transaction-response", "batch",
        "batch-response", "history", "searchset", "collection"})},
    "Patient": {"gender": _ADMIN_GENDER},
    "Practitioner": {"gender": _ADMIN_GENDER},
    "RelatedPerson": {"gender": _ADMIN_GENDER},
    "Observation": {"status": frozenset({
        "registered", "preliminary", "final", "amended", "corrected", "cancelled",
        "entered-in-error", "unknown"})},
    "DiagnosticReport": {"status": frozenset({
        "registered", "partial", "preliminary", "final", "amended", "corrected",
        "appended", "cancelled", "entered-in-error", "unknown"})},
    "Encounter": {"status": frozenset({
        "planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled",
        "entered-in-error", "unknown"})},
    "AllergyIntolerance": {
        "type": frozenset({"allergy", "intolerance"}),
        "criticality": frozenset({"low", "high", "unable-to-assess"})},
    "Immunization": {"status": frozenset({"completed", "entered-in-error", "not-done"})},
    "MedicationRequest": {
        "status": frozenset({"active", "on-hold", "cancelled", "completed",
                             "entered-in-error", "stopped", "draft", "unknown"}),
        "intent": frozenset({"proposal", "plan", "order", "original-order", "reflex-order",
                             "filler-order", "instance-order", "option"})},
    "MedicationDispense": {"status": frozenset({
        "preparation", "in-progress", "cancelled", "on-hold", "completed",
        "entered-in-error", "stopped", "declined", "unknown"})},
    "MedicationAdministration": {"status": frozenset({
        "in-progress", "not-done", "on-hold", "completed", "entered-in-error", "stopped",
        "unknown"})},
    "Medication": {"status": frozenset({"active", "inactive", "entered-in-error"})},
    "DocumentReference": {
        "status": frozenset({"current", "superseded", "entered-in-error"}),
        "docStatus": frozenset({"preliminary", "final", "amended", "entered-in-error"})},
    "Procedure": {"status": frozenset({
        "preparation", "in-progress", "not-done", "on-hold", "stopped", "completed",
        "entered-in-error", "unknown"})},
    "ServiceRequest": {
        "status": frozenset({"draft", "active", "on-hold", "revoked", "completed",
                             "entered-in-error", "unknown"}),
        "intent": frozenset({"proposal", "plan", "directive", "order", "original-order",
                             "reflex-order", "filler-order", "instance-order", "option"}),
        "priority": frozenset({"routine", "urgent", "asap", "stat"})},
    "Coverage": {"status": frozenset({"active", "cancelled", "draft", "entered-in-error"})},
    "Specimen": {"status": frozenset({
        "available", "unavailable", "unsatisfactory", "entered-in-error"})},
    "Location": {"status": frozenset({"active", "suspended", "inactive"}),
                 "mode": frozenset({"instance", "kind"})},
    "Appointment": {"status": frozenset({
        "proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow",
        "entered-in-error", "checked-in", "waitlist"})},
    "ChargeItem": {"status": frozenset({
        "planned", "billable", "not-billable", "aborted", "billed", "entered-in-error",
        "unknown"})},
    "Account": {"status": frozenset({
        "active", "inactive", "entered-in-error", "on-hold", "unknown"})},
}
# Required bindings inside data types, by the element names that hold those types
# (Patient.name is a HumanName list, Reference.identifier an Identifier, ...); a string
# under such a name (Organization.name) is no data type and is passed over.
_DATATYPE_CODES: dict[str, dict[str, frozenset[str]]] = {
    "identifier": {"use": frozenset({"usual", "official", "temp", "secondary", "old"})},
    "name": {"use": frozenset({"usual", "official", "temp", "nickname", "anonymous", "old",
                               "maiden"})},
    "telecom": {"system": frozenset({"phone", "fax", "email", "pager", "url", "sms",
                                     "other"}),
                "use": frozenset({"home", "work", "temp", "old", "mobile"})},
    "address": {"use": frozenset({"home", "work", "temp", "old", "billing"}),
                "type": frozenset({"postal", "physical", "both"})},
    "valueQuantity": {"comparator": frozenset({"<", "<=", ">=", ">"})},
}
_NARRATIVE = frozenset({"generated", "extensions", "additional", "empty"})
_ELEMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"})

# What a pydantic error type means, in words that quote nothing.
_TEXTS = {
    "missing": "is required",
    "model_field_validation.missing": "is required",
    "extra_forbidden": "is not an element of FHIR R4 here",
    "string_type": "must be a string",
    "string_pattern_mismatch": "is not a valid FHIR string (empty, or only spaces)",
    "string_too_short": "is too short",
    "string_too_long": "is too long",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "decimal_type": "must be a decimal",
    "decimal_parsing": "must be a decimal",
    "list_type": "must be a list (the element repeats)",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "literal_error": "is not one of the values allowed here",
    "enum": "is not one of the values allowed here",
    "greater_than_equal": "is below the smallest allowed value",
    "less_than_equal": "is above the largest allowed value",
}


def path(loc: tuple[Any, ...] | list[Any]) -> str:
    """`("name", 0, "family")` -> `name[0].family`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{element(part)}" if out else element(part)
    return out


def element(key: Any) -> str:
    """A JSON key as a reason may name it: an element's name, else `?` (an output that
    passes a sender's JSON through could have anything as a key)."""
    text = str(key)
    return text if _ELEMENT.match(text) else "?"


def at(where: str, loc: str) -> str:
    return f"{where}.{loc}" if loc else where


def resource_reasons(resource: Any, where: str) -> list[str]:
    """Why `resource` is not a valid R4 resource, each reason located under `where`
    (e.g. `Bundle.entry[2].resource(Observation)`); empty when it is valid."""
    if not isinstance(resource, dict):
        return [f"{where}: must be a resource (a JSON object)"]
    kind = resource.get("resourceType")
    if not isinstance(kind, str) or not kind:
        return [f"{where}: has no resourceType"]
    from fhir.resources.R4B import get_fhir_model_class  # loads the models on first use

    try:
        model = get_fhir_model_class(kind)
    except (KeyError, ValueError, AttributeError, ImportError):
        return [f"{where}.resourceType: is not an R4 resource type"]
    reasons = [f"{at(where, loc)}: is empty (FHIR forbids empty elements)"
               for loc in empty_elements(resource)]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        reasons += [f"{at(where, path(e['loc']))}: {_text(e)}" for e in exc.errors()]
    except Exception as exc:  # the models raise others on odd shapes (a nested unknown type)
        reasons.append(f"{where}: could not be read as {kind} ({type(exc).__name__})")
    reasons += [f"{at(where, name)}: is not a code R4 allows for {kind}.{name}"
                for name, codes in REQUIRED_CODES.get(kind, {}).items()
                if name in resource and resource[name] not in codes]
    text = resource.get("text")
    if isinstance(text, dict) and "status" in text and text["status"] not in _NARRATIVE:
        reasons.append(f"{where}.text.status: is not a code R4 allows for Narrative.status")
    reasons += [f"{at(where, loc)}: is not a code R4 allows for {kind_of}"
                for loc, kind_of in datatype_codes(resource)]
    return list(dict.fromkeys(reasons))


_TYPE_NAMES = {"identifier": "Identifier", "name": "HumanName", "telecom": "ContactPoint",
               "address": "Address", "valueQuantity": "Quantity"}


def datatype_codes(value: Any, loc: str = "") -> Iterator[tuple[str, str]]:
    """(location, `Type.element`) of each data type code outside its required binding:
    an Identifier.use, HumanName.use, ContactPoint.system/use, Address.use/type or
    Quantity.comparator that R4 does not define."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from datatype_codes(item, f"{loc}[{i}]")
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        sub = f"{loc}.{element(key)}" if loc else element(key)
        rules = _DATATYPE_CODES.get(key)
        if rules is not None:
            places = ([(f"{sub}[{i}]", one) for i, one in enumerate(item)]
                      if isinstance(item, list) else [(sub, item)])
            for place, one in places:
                if not isinstance(one, dict):
                    continue
                for field, codes in rules.items():
                    if field in one and one[field] not in codes:
                        yield f"{place}.{field}", f"{_TYPE_NAMES[key]}.{field}"
        yield from datatype_codes(item, sub)


def bundle_shell_reasons(bundle: dict[str, Any]) -> list[str]:
    """What is wrong with a Bundle apart from its entries' resources (checked one by
    one, so each reason can name the entry's resource type)."""
    entries = bundle.get("entry", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return ["Bundle.entry: must be a list of entries"]
    shell = {**bundle, "entry": [{k: v for k, v in e.items() if k != "resource"}
                                 for e in entries]}
    if not entries:
        shell.pop("entry")
    reasons = resource_reasons(shell, "Bundle")
    for i, entry in enumerate(entries):
        request = entry.get("request")
        if isinstance(request, dict) and "method" in request \
                and request["method"] not in _METHODS:
            reasons.append(f"Bundle.entry[{i}].request.method: is not an HTTP verb R4 allows")
    return reasons


def empty_elements(value: Any, loc: str = "") -> Iterator[str]:
    """Every element that is present but holds nothing ("", {}, [] or null)."""
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{loc}.{element(key)}" if loc else element(key)
            if item is None or item == "" or item == {} or item == []:
                yield sub
            else:
                yield from empty_elements(item, sub)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            sub = f"{loc}[{i}]"
            if item == "" or item == {} or item == []:
                yield sub
            elif item is not None:  # a null in a primitive list lines up its extension
                yield from empty_elements(item, sub)


def _text(error: Any) -> str:
    kind = str(error.get("type", ""))
    if kind in _TEXTS:
        return _TEXTS[kind]
    message = str(error.get("msg", ""))
    if "does not match spec regex" in message:
        for name in ("DateTime", "Date", "Instant", "Time", "Decimal", "Uri", "Url", "Id",
                     "Code", "Base64Binary", "Canonical", "Oid", "Uuid", "Markdown"):
            if message.startswith(f"Value error, {name} value"):
                return f"is not a valid FHIR {name[0].lower()}{name[1:]}"
        return "is not in the FHIR format of its type"
    if "but got multiple" in message:
        return "holds more than one type of a choice element ([x]); only one is allowed"
    if "Expect any of field value" in message:
        return "lacks a required choice element ([x])"
    if "expects resource type" in message or kind == "resource_type":
        return "holds another resource type than this element allows"
    return f"is not valid ({kind or 'unknown error'})"
