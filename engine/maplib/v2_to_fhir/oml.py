"""OML^O21: laboratory orders with their specimens (SPM, SAC), timing (TQ1) and the
answers given at order entry (OBX), as ServiceRequest, Specimen and Observation; the
patient group as in every order message. See `orders.service_order`. O33 and O35 send
the specimen (and its containers) first, then the orders done on it
(`orders.under_specimens`)."""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_to_fhir import orders
from engine.mapping_base import Skip

EVENTS: tuple[str, ...] = ("O21", "O33", "O35")
RESOURCES: tuple[str, ...] = (
    "Patient", "Encounter", "ServiceRequest", "Specimen", "Observation", "Condition",
    "AllergyIntolerance", "Coverage", "Account", "ChargeItem", "Practitioner",
    "PractitionerRole", "Device", "DocumentReference",
    "Organization", "Location", "RelatedPerson", "MessageHeader", "Provenance",
)


def build(message: Hl7Message) -> dict | Skip:
    return orders.order_message(message, "OML", EVENTS)
