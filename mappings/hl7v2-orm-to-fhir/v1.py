"""hl7v2-orm-to-fhir@1: an ORM^O01 or OML^O21 order message as a FHIR R4 transaction
Bundle (Patient, one ServiceRequest per ORC/OBR group, Specimens from SPM or OBR-15).

Versions 2.3 to 2.8. Any other message type fails naming MSH-9 (ORM without a trigger
event is read as O01); a message without ORC or OBR fails naming ORC; a second PID fails
naming PID. Orders for drugs, diets or supplies (RXO, RXE, ODS, ODT, RQD, RQ1 without an
OBR) are not ServiceRequests: they are left out, and a message of only those is skipped.

Choices a receiver will notice:
- The Patient is `v2_fhir.patient_of`'s: the same id the ADT and ORU feeds give the PID.
- ServiceRequest ids are uuid5 of the sending facility and the placer order number
  (ORC-2, else OBR-2), else the filler number (ORC-3/OBR-3): the placer owns the order
  and its number is known from the first NW, so NW, XO, HD, CA and DC for one order all
  update the same resource. Two groups with the same number fail naming ORC-2.
- Identifiers: placer (type PLAC), filler (type FILL); ORC-4 is requisition (type PGN).
  A number without an assigning authority gets the sender's system for the placer number
  (the sender of an order is its placer) and the receiver's (MSH-6, else MSH-5) for the
  filler number, so the ORU feed's DiagnosticReport.basedOn finds this order.
- status: ORC-5 (table 0038) when valued, else ORC-1 (table 0119) per the IG, except that
  a placer's cancel (CA) is revoked and its hold (HD) on-hold at once: the placer owns the
  order, and the IG's "active until the filler confirms" would keep a cancelled test
  actionable. SC without ORC-5, and codes outside the tables, are "unknown".
- intent is always "order": ORM/OML carry orders, not proposals or plans.
- priority: TQ1-9, else ORC-7.6, else OBR-27.6, else OBR-5; S stat, A asap, R routine.
- authoredOn is ORC-9 only for a new or replacement order (NW, RO): on other order
  controls ORC-9 is the time of that change, not of the order. occurrenceDateTime is the
  requested start (TQ1-7, else ORC-7.4, else OBR-27.4).
- Each message replaces the whole ServiceRequest (PUT). A cancel that carries only ORC
  therefore leaves no code; Epic-, Cerner- and Meditech-style feeds send the OBR too.
- requester: ORC-12, else OBR-16, by display. reasonCode: OBR-31 and the group's DG1-3.
  note: the NTEs right after ORC or OBR. category only when OBR-24 is sent (v2-0074).
- Codes as in every v2 mapping (`engine.maplib.v2_codes`: LN -> loinc.org, I10 -> ICD-10,
  local codes urn:conduit:code:<facility>:<name or local>). Dates follow
  `datatypes.to_fhir_datetime` (the sender's zone from MSH-7).
- Bundle.timestamp is MSH-7 when it has a time of day and a zone (`v2_fhir.bundle`).
"""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib.fhir import compact, one_per_id, resource_id
from engine.maplib.v2_codes import codeable_concepts, first_concept
from engine.maplib.v2_fhir import annotations, bundle
from engine.maplib.v2_orders import (
    OrderGroup,
    Sender,
    SpecimenContext,
    leading_notes,
    order_groups,
    order_numbers,
    order_priority,
    order_status,
    section_categories,
    sender_of,
    sole_patient,
    specimen_from_obr15,
    specimen_from_spm,
)
from engine.mapping import Skip, mapping

ACCEPTED = {"ORM": ("O01", ""), "OML": ("O21",)}
NON_SERVICE_DETAIL = frozenset({"RXO", "RXE", "ODS", "ODT", "RQD", "RQ1"})
NEW_ORDER = frozenset({"NW", "RO"})


@mapping("hl7v2-orm-to-fhir@1", accepts="hl7v2", emits="application/fhir+json")
def orm_to_fhir(message: Hl7Message) -> dict | Skip:
    """Map one ORM^O01 or OML^O21 to a transaction Bundle of ServiceRequests."""
    kind = _require_order_message(message)
    groups = order_groups(message)
    if not groups:
        raise MappingError("the message has no ORC or OBR segment, so there is no order",
                           field="ORC")
    services = [g for g in groups if not _is_other_order(g)]
    if not services:
        return Skip(f"{kind} holds only pharmacy, diet or supply orders, not mapped by this "
                    "version")
    person = sole_patient(message)
    sender = sender_of(message, person)
    resources: list[dict] = [person]
    orders: set[str] = set()
    for group in services:
        request, specimens = _service_request(group, sender)
        if request["id"] in orders:
            raise MappingError("two orders in the message carry the same order number",
                               field="ORC-2")
        orders.add(request["id"])
        resources += [request, *specimens]
    return bundle(message, one_per_id(resources))  # a tube of several orders once


def _require_order_message(message: Hl7Message) -> str:
    """"ORM^O01" or "OML^O21"; anything else fails naming MSH-9."""
    msh = message.segments[0]
    code, event = dt.present(msh.value(9, 1)).upper(), dt.present(msh.value(9, 2)).upper()
    if event not in ACCEPTED.get(code, ()):
        raise MappingError(
            "message type is not ORM^O01 or OML^O21; this mapping reads those only",
            field="MSH-9",
        )
    return f"{code}^{event or 'O01'}"


def _is_other_order(group: OrderGroup) -> bool:
    """A group whose detail segment is a drug, diet or supply order rather than an OBR."""
    return group.obr is None and any(s.name in NON_SERVICE_DETAIL for s in group.body)


def _service_request(group: OrderGroup, sender: Sender) -> tuple[dict, list[dict]]:
    """The ServiceRequest of one ORC/OBR group and the Specimens it refers to."""
    orc, obr = group.orc, group.obr
    numbers = order_numbers(
        orc, obr,
        placer_authority=sender.facility,
        filler_authority=sender.receiver or sender.facility,
    )
    key = numbers.placer or numbers.filler
    if key is None:
        raise MappingError(
            "has no placer or filler order number (nor ORC-3, OBR-2, OBR-3), so the order "
            "cannot be identified", field="ORC-2",
        )
    specimens = _specimens(group, SpecimenContext(
        sender.facility, sender.patient_id, sender.offset, key
    ))
    tq1 = next((s for s in group.body if s.name == "TQ1"), None)
    request = {
        "resourceType": "ServiceRequest",
        "id": resource_id("ServiceRequest", sender.facility, key),
        "identifier": numbers.identifiers(),
        "requisition": dt.ei_to_identifier(
            dt.first_rep(orc, 4), sender.facility, tables.PLACER_GROUP_NUMBER
        ),
        "status": order_status(orc),
        "intent": "order",
        "category": section_categories(obr.value(24)) if _sent(obr, 24) else [],
        "priority": order_priority(tq1, orc, obr),
        "code": first_concept(obr, 4, sender.facility),
        "subject": {"reference": f"urn:uuid:{sender.patient_id}"},
        "occurrenceDateTime": _requested_start(tq1, orc, obr, sender.offset),
        "authoredOn": _authored_on(orc, sender.offset),
        "requester": dt.xcn_reference(dt.first_rep(orc, 12))
        or dt.xcn_reference(dt.first_rep(obr, 16)),
        "reasonCode": _reasons(group, sender.facility),
        "specimen": [{"reference": f"urn:uuid:{s['id']}"} for s in specimens],
        "note": annotations(leading_notes(group.body, frozenset({"ORC", "OBR", ""}))),
    }
    return compact(request), specimens


def _sent(segment: Segment | None, field: int) -> bool:
    return segment is not None and bool(dt.present(segment.value(field)))


def _specimens(group: OrderGroup, ctx: SpecimenContext) -> list[dict]:
    """SPMs of the group (OML), else OBR-15 (ORM)."""
    spms = [s for s in group.body if s.name == "SPM"]
    if spms:
        return [specimen_from_spm(spm, ctx) for spm in spms]
    specimen = specimen_from_obr15(group.obr, ctx) if group.obr is not None else None
    return [specimen] if specimen else []


def _requested_start(
    tq1: Segment | None, orc: Segment | None, obr: Segment | None, offset: str | None
) -> str | None:
    """TQ1-7 start date/time, else the TQ start of ORC-7.4 or OBR-27.4."""
    if tq1 is not None and dt.present(tq1.value(7)):
        return dt.to_fhir_datetime(tq1.value(7), "TQ1-7", offset)
    for segment, field in ((orc, "ORC-7"), (obr, "OBR-27")):
        if segment is not None and dt.present(segment.value(int(field[4:]), 4)):
            return dt.to_fhir_datetime(segment.value(int(field[4:]), 4), field, offset)
    return None


def _authored_on(orc: Segment | None, offset: str | None) -> str | None:
    """ORC-9 when this message places the order (NW, RO); see the module docstring."""
    if orc is None or dt.present(orc.value(1)).upper() not in NEW_ORDER:
        return None
    return dt.to_fhir_datetime(orc.value(9), "ORC-9", offset)


def _reasons(group: OrderGroup, facility: str) -> list[dict]:
    """OBR-31 reasons for study, then the group's DG1-3 diagnoses, without repeats."""
    found = codeable_concepts(group.obr, 31, facility)
    for dg1 in (s for s in group.body if s.name == "DG1"):
        found += codeable_concepts(dg1, 3, facility)
    unique: list[dict] = []
    for concept in found:
        if concept not in unique:
            unique.append(concept)
    return unique
