"""RGV^O15 (v2.3's RGV^O01): pharmacy gives as the Patient, the visit, and per order
its MedicationRequest (from the RXE, else the RXO) with one MedicationRequest of intent
instance-order per RXG (see `gives`), the Medication, and the OBX after an RXG as
Observations based on that give."""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_to_fhir import gives, pharmacy, results
from engine.maplib.v2_to_fhir.frame import Build
from engine.mapping_base import Skip

EVENTS: tuple[str, ...] = ("O15", "O01")
RESOURCES: tuple[str, ...] = (
    "Patient", "RelatedPerson", "Account", "Encounter", "Location", "Practitioner",
    "PractitionerRole", "Organization",
    "Medication", "MedicationRequest", "Observation", "Device", "DocumentReference",
    "AllergyIntolerance", "MessageHeader", "Provenance",
)


def build(message: Hl7Message) -> dict | Skip:
    return pharmacy.report_message(message, "RGV", EVENTS, _order, MappingError(
        "the message holds no give that could be mapped", field="RXG"))


def _order(b: Build, order: pharmacy.PharmacyOrder) -> list[dict]:
    """The order's MedicationRequest (when it has an RXE or RXO), its gives, and the OBX
    after each give (those before any RXG: the order's)."""
    request = pharmacy.order_request(b, order)
    made: list[dict] = []
    current: dict | None = None
    obxs: list = []
    for seg in [*order.segments, None]:
        if seg is None or seg.name == "RXG":
            if obxs:
                based = current or request
                results.observations(b, obxs, based_on=[based] if based else None,
                                     context=results.Context(otherwise="exam"))
                obxs = []
            if seg is not None:
                current = gives.give(b, order, seg, request)
                made += [current] if current else []
        elif seg.name == "OBX":
            obxs.append(seg)
    return made
