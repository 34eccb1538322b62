"""OMG^O19: general clinical orders (referrals, consults, imaging, therapy) as
ServiceRequests, with the order's OBX, DG1 reasons and any specimens; the patient group
as in every order message. See `orders.service_order`."""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_to_fhir import orders
from engine.mapping_base import Skip

EVENTS: tuple[str, ...] = ("O19",)
RESOURCES: tuple[str, ...] = (
    "Patient", "Encounter", "ServiceRequest", "Specimen", "Observation", "Condition",
    "AllergyIntolerance", "Coverage", "Account", "ChargeItem", "Practitioner",
    "PractitionerRole", "Device", "DocumentReference",
    "Organization", "Location", "RelatedPerson", "MessageHeader", "Provenance",
)


def build(message: Hl7Message) -> dict | Skip:
    return orders.order_message(message, "OMG", EVENTS)
