"""DFT: detailed financial transactions (post P03, detail P11) as ChargeItems on the
patient's Account, with the orders, procedures, diagnoses, guarantors and coverages the
message carries.

Each FT1 is a ChargeItem (its FT1-25 procedure a Procedure it names as its service); an
ORC/OBR common order is the ServiceRequest the orders module makes; OBX outside an order
are Observations. In a P11 every FT1 group may carry its own PR1, DG1, GT1 and IN1: all
are mapped, each once.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message, Segment
from engine.maplib.v2_orders import OrderGroup, order_groups
from engine.maplib.v2_to_fhir import clinical, financial, orders, people, results, visit
from engine.maplib.v2_to_fhir.frame import Build
from engine.maplib.v2_to_fhir.provenance import finish
from engine.mapping_base import Skip

EVENTS: tuple[str, ...] = ("P03", "P11")
RESOURCES: tuple[str, ...] = (
    "Patient", "Encounter", "EpisodeOfCare",
    "Location", "Practitioner", "PractitionerRole", "Organization", "RelatedPerson",
    "Account", "ChargeItem", "Procedure", "Condition", "Coverage", "ServiceRequest",
    "Specimen", "Observation", "Device", "DocumentReference", "Provenance", "MessageHeader",
)
# What an order group of a DFT holds; the first other segment ends it.
_ORDER_PARTS = frozenset({"ORC", "OBR", "TQ1", "TQ2", "NTE", "OBX", "SPM", "CTI"})


def build(message: Hl7Message) -> dict | Skip:
    b = Build(message, "DFT")
    if b.event not in EVENTS:
        return Skip(f"DFT^{b.event or '(no event)'} is not a financial event this mapping reads")
    people.patient(b)
    visit.encounter(b)
    people.assigners(b)
    people.mother(b)
    clinical.conditions(b)
    clinical.procedures(b)
    financial.coverages(b)
    financial.guarantors(b)
    financial.account(b)
    ordered: set[int] = set()
    for group in common_orders(message):
        orders.service_order(b, group)
        ordered.update(id(s) for s in group.body if s.name == "OBX")
    results.observations(b, [s for s in message.all("OBX") if id(s) not in ordered],
                         context=results.Context(otherwise="survey"))
    financial.charges(b)
    visit.episode_of_care(b)
    return finish(b)


def common_orders(message: Hl7Message) -> list[OrderGroup]:
    """The message's ORC/OBR groups, each cut at the first segment that is not part of an
    order (the FT1, DG1 or IN1 that follows it is the transaction's, not the order's)."""
    found = []
    for orc, obr, body in order_groups(message):
        kept: list[Segment] = []
        for segment in body:
            if segment.name not in _ORDER_PARTS:
                break
            kept.append(segment)
        found.append(OrderGroup(orc, obr, kept))
    return found
