"""RDS^O13: a pharmacy dispense as the Patient, the visit, and per order the
MedicationDispense of each RXD, authorized by the order's MedicationRequest (from its
RXE, else its RXO) when the message carries it, with the Medication, the dispensing
practitioners and places, and the order's OBX as Observations."""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_to_fhir import pharmacy, results
from engine.maplib.v2_to_fhir.frame import Build
from engine.mapping_base import Skip

EVENTS: tuple[str, ...] = ("O13", "O01")
RESOURCES: tuple[str, ...] = (
    "Patient", "RelatedPerson", "Account", "Encounter", "Location", "Practitioner",
    "PractitionerRole", "Organization",
    "Medication", "MedicationRequest", "MedicationDispense", "Observation", "Device",
    "DocumentReference", "AllergyIntolerance", "MessageHeader", "Provenance",
)


def build(message: Hl7Message) -> dict | Skip:
    return pharmacy.report_message(message, "RDS", EVENTS, _order, MappingError(
        "the message holds no dispense that could be mapped", field="RXD"))


def _order(b: Build, order: pharmacy.PharmacyOrder) -> list[dict]:
    """The order's MedicationRequest (when it has an RXE or RXO), its dispenses and OBX."""
    request = pharmacy.order_request(b, order)
    dispenses = [d for d in (pharmacy.dispense(b, order, rxd, request)
                             for rxd in order.all("RXD")) if d]
    based = dispenses[:1] or ([request] if request else [])
    observations = results.observations(b, order.all("OBX"),
                                        based_on=[request] if request else None,
                                        context=results.Context(otherwise="survey"))
    for observation in observations:
        if dispenses:
            observation.setdefault("partOf", []).append(b.ref(based[0]))
    return dispenses
