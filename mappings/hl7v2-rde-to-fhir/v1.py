"""hl7v2-rde-to-fhir@1: a pharmacy encoded order (RDE) as a FHIR R4 transaction Bundle
with the Patient and one MedicationRequest per ORC/RXE order group.

Events O11 (v2.4 and later) and O01 (v2.3) are mapped; any other RDE event (O25 refill
authorization, ...) is skipped with a reason, and a message that is not RDE fails
naming MSH-9.

Choices a receiver will notice:
- The Patient is `v2_fhir.patient_of`'s, so its id is the one hl7v2-adt-to-fhir gives
  the same PID from the same facility. A MedicationRequest's id is uuid5 of (facility
  MSH-4, else MSH-3, and ORC-2 placer order number, else ORC-3 filler): the NW, the XO,
  the HD and the DC of one order update one resource. Two groups with one order number
  fail naming ORC-2. Entries are PUT, so redelivery never duplicates.
- identifier holds ORC-2 (type PLAC) and ORC-3 (type FILL); groupIdentifier is ORC-4.
  An EI without an authority is scoped to the facility.
- status from ORC-1 and ORC-5 (see `v2_pharmacy.order_status`): NW/XO/RP/RL active,
  CA cancelled, DC stopped, HD on-hold, ORC-5 CM completed, ER entered-in-error.
  intent is always order (an RDE is an order; the narrower filler-order would hide it
  from receivers that query intent=order). statusReason is ORC-16, which explains the
  order control (why it was stopped or held), so it is not a reasonCode; reasonCode is
  RXE-27 give indication.
- medicationCodeableConcept is RXE-2 with its coding system: NDC and RXNORM get their
  standard URIs, a local code the sender's own system (see `engine.maplib.v2_codes`).
- dosageInstruction: one Dosage per TQ1 (or the v2.3 RXE-1/ORC-7 timing), with dose from
  RXE-3/4/5, rate from RXE-23/24, route/site/method from the first RXR, RXE-7 as
  additional instructions; see `v2_pharmacy` for units, patterns and PRN. priority is the
  first TQ1-9 (or TQ priority) of S stat, A asap, R routine.
- dispenseRequest: quantity RXE-10/11, numberOfRepeatsAllowed RXE-12, validityPeriod from
  ORC-15 order effective time (else the timing start) to the timing end.
- substitution from RXE-9 (table 0167) as a v3 substitution code beside the v2 code.
- authoredOn ORC-9; requester ORC-12 as a display name only; note one per NTE of the
  group; encounter is a literal reference to the Encounter hl7v2-adt-to-fhir made for
  PV1-19 (`v2_fhir.encounter_reference`), with the visit number as identifier.
- Bundle.timestamp is MSH-7 when it has a time of day and a zone (`v2_fhir.bundle`).
"""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib import v2_fhir
from engine.maplib.fhir import compact, reference, resource_id
from engine.maplib.v2_codes import codeable_concepts, first_concept
from engine.maplib.v2_orders import placer_and_filler
from engine.maplib.v2_pharmacy import (
    OrderGroup,
    Schedule,
    dose_and_rate,
    order_groups,
    order_status,
    quantity_of,
    route,
    schedules,
    site,
    substitution,
    whole_number,
)
from engine.mapping import Skip, mapping

MAPPED_EVENTS = frozenset({"O11", "O01"})


@mapping("hl7v2-rde-to-fhir@1", accepts="hl7v2", emits="application/fhir+json")
def rde_to_fhir(message: Hl7Message) -> dict | Skip:
    """Map one RDE message to a transaction Bundle, or skip an event this version omits."""
    event = v2_fhir.trigger_event(message, "RDE")
    if event not in MAPPED_EVENTS:
        return Skip(f"RDE^{event} is not mapped by this version")
    person = v2_fhir.patient_of(message)
    context = _Context(message, person)
    requests = [_medication_request(group, context) for group in order_groups(message)]
    _check_unique(requests)
    return v2_fhir.bundle(message, [person, *requests])


class _Context:
    """What every order of one message shares: sender, zone, patient and visit."""

    def __init__(self, message: Hl7Message, person: dict) -> None:
        self.facility = v2_fhir.sending_facility(message)
        self.offset = v2_fhir.sender_offset(message)
        self.subject = reference(person)
        self.encounter = v2_fhir.encounter_reference(message, self.facility)


def _medication_request(group: OrderGroup, ctx: _Context) -> dict:
    """The MedicationRequest of one ORC/RXE group."""
    orc, rxe = group.orc, group.rxe
    identifiers = _order_identifiers(group, ctx.facility)
    plans = schedules(group, ctx.offset)
    request = {
        "resourceType": "MedicationRequest",
        "id": resource_id("MedicationRequest", ctx.facility, identifiers[0]),
        "identifier": identifiers,
        "groupIdentifier": dt.first_ei(orc, 4, ctx.facility),
        "status": order_status(orc, group.orc_name),
        "statusReason": first_concept(orc, 16, ctx.facility),
        "intent": "order",
        "priority": next((p.priority for p in plans if p.priority), None),
        "medicationCodeableConcept": _medication(group, ctx.facility),
        "subject": ctx.subject,
        "encounter": ctx.encounter,
        "authoredOn": dt.to_fhir_datetime(orc.value(9), f"{group.orc_name}-9", ctx.offset),
        "requester": dt.xcn_reference(dt.first_rep(orc, 12)),
        "reasonCode": codeable_concepts(rxe, 27, ctx.facility),
        "note": v2_fhir.annotations(group.notes),
        "dosageInstruction": _dosages(group, plans, ctx.facility),
        "dispenseRequest": _dispense_request(group, plans, ctx.offset),
        "substitution": substitution(rxe),
    }
    return compact(request)


def _order_identifiers(group: OrderGroup, facility: str) -> list[dict]:
    """ORC-2 placer and ORC-3 filler order numbers; fails naming ORC-2 without either."""
    found = placer_and_filler(group.orc, 2, 3, facility)
    if not found:
        raise MappingError(
            "is empty and so is ORC-3: the order has no number to identify it by",
            field=f"{group.orc_name}-2",
        )
    return found


def _check_unique(requests: list[dict]) -> None:
    """Two orders with one number would be two PUTs to one id: fail instead."""
    ids = [r["id"] for r in requests]
    if len(set(ids)) != len(ids):
        raise MappingError(
            "repeats an order number within one message; each order needs its own",
            field="ORC-2",
        )


def _medication(group: OrderGroup, facility: str) -> dict:
    """RXE-2 give code; fails naming it when empty (a MedicationRequest needs a drug)."""
    concept = first_concept(group.rxe, 2, facility)
    if concept is None:
        raise MappingError("is empty: the order names no medication", field=f"{group.rxe_name}-2")
    return concept


def _dosages(group: OrderGroup, plans: list[Schedule], facility: str) -> list[dict]:
    """One Dosage per schedule (at least one), sharing dose, route and instructions."""
    rxr = group.routes[0] if group.routes else None
    shared = {
        "additionalInstruction": codeable_concepts(group.rxe, 7, facility),
        "route": route(rxr, facility) if rxr else None,
        "site": site(rxr, facility) if rxr else None,
        "method": first_concept(rxr, 4, facility) if rxr else None,
        "doseAndRate": dose_and_rate(group.rxe, group.rxe_name),
    }
    dosages = []
    for number, plan in enumerate(plans or [Schedule(None)], start=1):
        dosage = {
            "sequence": number if len(plans) > 1 else None,
            "text": plan.text,
            **shared,
            "timing": plan.timing,
            "asNeededBoolean": True if plan.as_needed else None,
        }
        if plan.condition:
            extra = [{"text": plan.condition}]
            dosage["additionalInstruction"] = [*shared["additionalInstruction"], *extra]
        dosages.append(compact(dosage))
    return [d for d in dosages if d]


def _dispense_request(group: OrderGroup, plans: list[Schedule], offset: str | None) -> dict:
    """RXE-10/11 quantity, RXE-12 refills, and the period the order is valid for."""
    rxe, name = group.rxe, group.rxe_name
    start = dt.to_fhir_datetime(group.orc.value(15), f"{group.orc_name}-15", offset)
    start = start or next((p.start for p in plans if p.start), None)
    end = next((p.end for p in plans if p.end), None)
    return compact(
        {
            "quantity": quantity_of(rxe, 10, 11, name),
            "numberOfRepeatsAllowed": whole_number(rxe.value(12), f"{name}-12"),
            "validityPeriod": compact({"start": start, "end": end}),
        }
    )
