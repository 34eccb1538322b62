"""RDE: a pharmacy encoded order (O11, v2.3's O01) or a refill authorization request
(O25) as the Patient, the visit, one MedicationRequest per order with its Medication,
the practitioners and pharmacy it names, and the order's OBX as Observations."""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message
from engine.leniency import tolerate
from engine.maplib.v2_to_fhir import clinical, financial, people, pharmacy, results, visit
from engine.maplib.v2_to_fhir.frame import Build
from engine.maplib.v2_to_fhir.provenance import finish
from engine.mapping_base import Skip

EVENTS: tuple[str, ...] = ("O11", "O25", "O01")
RESOURCES: tuple[str, ...] = (
    "Patient", "Encounter", "Location", "Practitioner", "PractitionerRole", "Organization",
    "RelatedPerson", "Account", "Medication", "MedicationRequest", "Observation", "Device",
    "DocumentReference", "AllergyIntolerance", "Coverage", "MessageHeader", "Provenance",
)


def build(message: Hl7Message) -> dict | Skip:
    b = Build(message, "RDE", default_event="O11")
    if b.event not in EVENTS:
        return Skip(f"RDE^{b.event or '(no event)'} is not an RDE event this mapping reads")
    people.patient(b)
    visit.encounter(b)
    clinical.allergies(b)
    financial.coverages(b)
    financial.guarantors(b)
    people.mother(b)
    financial.patient_account(b)
    orders(b, "RXE", "RXO")
    return finish(b)


def orders(b: Build, *kinds: str) -> list[dict]:
    """One MedicationRequest per order group, from its first segment of `kinds` (RXE, else
    the RXO as placed), with the group's OBX as Observations based on it."""
    made: list[dict] = []
    for order in pharmacy.pharmacy_orders(b):
        segment = next((s for s in map(order.first, kinds) if s is not None), None)
        if segment is None:
            where = b.field(order.orc, 2).rsplit("-", 1)[0] if order.orc is not None else "ORC"
            tolerate(MappingError(f"has no {' or '.join(kinds)}: the order names no drug",
                                  field=where))
            continue
        placed = order.first("RXO")
        owners = (segment, placed) if placed is not segment else (segment,)
        request = pharmacy.medication_request(
            b, order.orc, segment, order.routes(*owners), order.components(*owners),
            timings=order.timings(), notes=order.notes(*owners))
        if request is None:
            continue
        made.append(request)
        if placed is not None and placed is not segment:
            pharmacy.placed_with(b, order, placed, request)
        results.observations(b, order.all("OBX"), based_on=[request],
                             context=results.Context(otherwise="survey"))
    if not made:
        tolerate(MappingError("the message holds no pharmacy order that could be mapped",
                              field=kinds[0]))
    return made
