"""A pharmacy administration (RXA in a RAS, with the RXR that follows it) as a
MedicationAdministration: what was given, when, by whom, how, and whether it was given
at all, under the order's MedicationRequest.

Reads RXA as HL7's pharmacy chapter defines it (table 0322 completion status, 0323
action code), not as the immunization guides do: RXA-5 is any drug code, and "999" is an
amount like any other.
"""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import tolerate
from engine.maplib import v2_pharmacy as rx
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_codes import codeable_concepts, first_concept
from engine.maplib.v2_to_fhir import people
from engine.maplib.v2_to_fhir.frame import Build
from engine.maplib.v2_to_fhir.pharmacy import (
    PharmacyOrder,
    annotations,
    batch,
    guarded,
    medication_resource,
    report_key,
    site,
    text_of,
)

# Table 0322 completion status -> MedicationAdministration.status: refused and not
# administered are not-done; a partial administration was stopped before it was all given.
COMPLETION_STATUS: dict[str, str] = {
    "CP": "completed", "RE": "not-done", "NA": "not-done", "PA": "stopped",
}
PERFORM_FUNCTION = "http://terminology.hl7.org/CodeSystem/med-admin-perform-function"


def administration(b: Build, order: PharmacyOrder, rxa: Segment,
                   request: dict | None) -> dict | None:
    """The MedicationAdministration of one RXA (guarded: one that names no drug or no
    time is a warning and the others map), given under `request` when there is one."""
    return guarded(lambda: _administration(b, order, rxa, request))


def _administration(b: Build, order: PharmacyOrder, rxa: Segment,
                    request: dict | None) -> dict:
    medication = medication_resource(b, rxa, 5, 8, order.owned(rxa, "RXC"),
                                     strength=(13, 14, 23, 24))
    if medication is None:
        raise MappingError("is empty: the administration names no medication",
                           field=b.field(rxa, 5))
    effective = _effective(b, rxa)
    batch(b, rxa, medication, (15, 16, 17))
    b.add(medication)
    status = _status(b, rxa)
    performers = [p for p in (people.practitioner(b, rep) for rep in rxa.repetitions(10)) if p]
    resource = {
        "resourceType": "MedicationAdministration",
        # RXA-1 give and RXA-2 administration counters and RXA-3: a resend or an update
        # (RXA-21 U) changes one resource, the next dose is a new one.
        "id": resource_id("MedicationAdministration", b.facility, report_key(
            b, order, rxa, request, medication, "administration", (1, 2, 3))),
        "status": status,
        "statusReason": codeable_concepts(rxa, 18, b.facility) if status == "not-done"
        else None,
        "medicationReference": b.ref(medication),
        "subject": b.patient_ref(),
        "context": b.encounter_ref(),
        **effective,
        "performer": [{"function": {"coding": [{"system": PERFORM_FUNCTION,
                                                "code": "performer", "display": "Performer"}]},
                       "actor": b.ref(p)} for p in performers],
        "reasonCode": codeable_concepts(rxa, 19, b.facility),
        "request": b.ref(request) if request else None,
        "note": [*([{"text": t}] if (t := text_of(rxa, 9)) else []),
                 *annotations(b, order.notes(rxa))],
        "dosage": _dosage(b, order, rxa),
    }
    return b.add(compact(resource))


def _status(b: Build, rxa: Segment) -> str:
    """RXA-21 D (table 0323) is entered-in-error; else RXA-20 through table 0322, an
    empty one completed (an RXA reports a dose given), another code unknown with a
    warning."""
    action = dt.present(rxa.value(21)).upper()
    if action and action not in ("A", "U", "D"):
        tolerate(MappingError("is not a code from HL7 table 0323 (A, U, D); read as A",
                              field=b.field(rxa, 21)))
    if action == "D":
        return "entered-in-error"
    code = dt.present(rxa.value(20)).upper()
    if not code:
        return "completed"
    found = COMPLETION_STATUS.get(code)
    if found is None:
        tolerate(MappingError("is not a code from HL7 table 0322 (CP, RE, NA, PA); the "
                              "status is unknown", field=b.field(rxa, 20)))
    return found or "unknown"


def _effective(b: Build, rxa: Segment) -> dict:
    """RXA-3 start, with RXA-4 end as a period when it differs; R4 requires a time, so
    an administration without a readable one is dropped with a warning."""
    start = dt.to_fhir_datetime(rxa.value(3), b.field(rxa, 3), b.offset)
    end = dt.to_fhir_datetime(rxa.value(4), b.field(rxa, 4), b.offset)
    if start and end and end != start:
        return {"effectivePeriod": {"start": start, "end": end}}
    if start or end:
        return {"effectiveDateTime": start or end}
    raise MappingError("has no readable time (nor has RXA-4): the administration is left "
                       "out", field=b.field(rxa, 3))


def _dosage(b: Build, order: PharmacyOrder, rxa: Segment) -> dict | None:
    """RXA-6 amount in RXA-7 units: the dose, or with RXA-12 (a time unit, H1) the rate
    per that time; route, site and method from the RXA's RXR (else the order's)."""
    rxr = next(iter(order.owned(rxa, "RXR") or _following_route(order, rxa)
                    or order.routes(order.first("RXE"), order.first("RXO"))), None)
    amount = rx.quantity(dt.to_fhir_decimal(rxa.value(6), b.field(rxa, 6)),
                         dt.first_rep(rxa, 7))
    sent = dt.present(rxa.value(12))
    per = dt.tq_duration(sent) if sent else None
    if sent and (per is None or per[0] == "X"):
        per = tolerate(MappingError("is not a time unit (S, M, H, D, W or L with a number): "
                                    "the amount is read as the dose", field=b.field(rxa, 12)))
    rate = None
    if amount is not None and per is not None:
        unit, count = per
        rate = {"numerator": amount, "denominator": {
            "value": count, "unit": unit, "system": tables.UCUM, "code": unit}}
    return compact({
        "route": rx.route(rxr, b.facility) if rxr else None,
        "site": site(b, rxr),
        "method": first_concept(rxr, 4, b.facility) if rxr else None,
        "dose": amount if rate is None else None,
        "rateRatio": rate,
    }) or None


def _following_route(order: PharmacyOrder, rxa: Segment) -> list[Segment]:
    """The RXR after a run of RXA (RAS sends {RXA} then one RXR for the lot)."""
    after = False
    for seg in order.segments:
        if seg is rxa:
            after = True
        elif after and seg.name == "RXR":
            return [seg]
        elif after and seg.name not in ("RXA", "RXC", "NTE"):
            return []
    return []
