"""The order round trip both FHIR-to-v2 order mappings keep: v2 -> FHIR -> v2 -> FHIR
holds each order's numbers, code, status, priority, time, reasons, answers at order
entry, requisition and ordering facility, and the patient (`check_round_trip`)."""

from __future__ import annotations

import pytest

from engine.errors import MappingError
from engine.mapping import Mapping
from tests.mapping_checks import bundle_of, of_type, run


def codes(concept: dict | None) -> list[tuple[str, str]]:
    return [(c.get("code", ""), c.get("display", "")) for c in (concept or {}).get("coding", [])]


def _reasons(bundle: dict, request: dict) -> set[str]:
    conditions = {f"urn:uuid:{c['id']}": c for c in of_type(bundle, "Condition")}
    found = [*request.get("reasonCode", []),
             *(conditions[r["reference"]]["code"] for r in request.get("reasonReference", [])
               if r.get("reference") in conditions)]
    return {str(codes(c) or c.get("text")) for c in found}


def _answers(bundle: dict, request: dict) -> list[tuple]:
    """The Observations answered at order entry: code and value."""
    found = {f"urn:uuid:{o['id']}": o for o in of_type(bundle, "Observation")}
    answers = [found[r["reference"]] for r in request.get("supportingInfo", [])
               if r.get("reference") in found]
    return sorted((str(codes(o.get("code"))), str({k: v for k, v in o.items()
                                                    if k.startswith("value")}))
                  for o in answers)


def _facility(bundle: dict, request: dict) -> tuple | None:
    """The ordering facility: the requester PractitionerRole's Organization."""
    found = {f"urn:uuid:{r['id']}": r for r in (e["resource"] for e in bundle["entry"])}
    role = found.get(request.get("requester", {}).get("reference", ""), {})
    org = found.get(role.get("organization", {}).get("reference", ""))
    if org is None:
        return None
    return (org.get("name"), [i["value"] for i in org.get("identifier", [])],
            org.get("address"), org.get("telecom"))


def order_facts(bundle: dict) -> dict:
    """What must survive a round trip: per order its placer and filler numbers, code,
    status, priority, time and reasons; the patient's identifiers and name."""
    facts: dict = {"patient": [(sorted((i.get("system"), i["value"]) for i in p["identifier"]),
                                p.get("name"), p.get("birthDate"))
                               for p in of_type(bundle, "Patient")]}
    for n, request in enumerate(of_type(bundle, "ServiceRequest")):
        numbers = {}
        for i in request.get("identifier", []):
            kind = i.get("type", {}).get("coding", [{}])[0].get("code", "")
            numbers.setdefault(kind, i["value"])
        facts[n] = {"numbers": {k: v for k, v in numbers.items() if k in ("PLAC", "FILL")},
                    "code": codes(request.get("code")), "status": request["status"],
                    "priority": request.get("priority"),
                    "when": request.get("occurrenceDateTime"),
                    "reasons": _reasons(bundle, request),
                    "answers": _answers(bundle, request),
                    "requisition": request.get("requisition", {}).get("value"),
                    "facility": _facility(bundle, request)}
    return facts


def check_round_trip(forward: Mapping, back: Mapping, raw: bytes) -> None:
    """raw -> FHIR -> v2 -> FHIR keeps `order_facts`; a Bundle without a time (MSH-7
    without a zone) or without a ServiceRequest (a drug, diet or supply order: an order
    of another kind) cannot go back and fails naming why."""
    first = bundle_of(forward, raw)
    if not of_type(first, "ServiceRequest"):
        with pytest.raises(MappingError, match="holds no ServiceRequest"):
            run(back, first)
        return
    try:
        sent = run(back, first)
    except MappingError as error:
        assert "timestamp" not in first and "meta.lastUpdated: is missing" in str(error)
        return
    again = bundle_of(forward, sent)
    want, got = order_facts(first), order_facts(again)
    for key, facts in want.items():
        if key != "patient" and not facts["numbers"]:  # none sent: the id stands in
            facts["numbers"] = got[key]["numbers"]
    assert got == want
