"""ORM^O01: general orders as FHIR, each order as what it asks for.

An ORC with an OBR (or an ORC alone: a cancel or hold that repeats no detail) is a
ServiceRequest (`orders.service_order`); with an RXO and its RXR/RXC a MedicationRequest
(`pharmacy.medication_request`); with ODS/ODT a NutritionOrder; with RQD/RQ1 a
SupplyRequest. The patient group maps as in every order message (`orders.patient_group`).
"""

from __future__ import annotations

from typing import NamedTuple

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import guard, tolerate
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_codes import codeable_concepts, cwe_to_codeable_concept, first_concept
from engine.maplib.v2_fhir import annotations
from engine.maplib.v2_orders import OrderGroup, leading_notes, order_numbers
from engine.maplib.v2_to_fhir import orders, people, pharmacy, results
from engine.maplib.v2_to_fhir.frame import Build
from engine.maplib.v2_to_fhir.provenance import finish
from engine.mapping_base import Skip

EVENTS: tuple[str, ...] = ("O01",)
RESOURCES: tuple[str, ...] = (
    "Patient", "Encounter", "ServiceRequest", "Specimen", "Observation",
    "MedicationRequest", "Medication", "NutritionOrder", "SupplyRequest", "Condition",
    "AllergyIntolerance", "Coverage", "Account", "ChargeItem", "Practitioner",
    "PractitionerRole", "Device", "DocumentReference",
    "Organization", "Location", "RelatedPerson", "MessageHeader", "Provenance",
)

# The segment that says what an order is, by kind; a later one of the same kind opens a
# new order (an ORC may be left out before it), the others in CONTINUES do not.
DETAIL_KIND = {"OBR": "service", "RXO": "pharmacy", "ODS": "diet", "ODT": "diet",
               "RQD": "supply", "RQ1": "supply"}
CONTINUES = {"diet": frozenset({"ODS", "ODT"}), "supply": frozenset({"RQ1"})}


class Order(NamedTuple):
    """One ORC (or None) with its detail segments and what follows them."""

    orc: Segment | None
    kind: str  # service, pharmacy, diet, supply; "" for an ORC alone
    body: list[Segment]


def build(message: Hl7Message) -> dict | Skip:
    b = Build(message, "ORM", default_event="O01")
    if b.event not in EVENTS:
        return Skip(f"ORM^{b.event or '(no event)'} is not an event this mapping reads")
    b.message = orders.first_patient(b)
    found = orders_of(b.message)
    orders.patient_group(b)
    if not found:  # its patient is still news (as an ADT would say it); fails without PID
        tolerate(MappingError("the message has no ORC or order detail segment: it carries "
                              "no order, only its patient is mapped", field="ORC"))
    for order in found:
        anchor = order.orc or order.body[0]
        guard(anchor.name, b.occurrence(anchor), lambda o=order: place(b, o))
    return finish(b)


def orders_of(message: Hl7Message) -> list[Order]:
    """Split the message into orders: an ORC opens one; a detail segment joins the open
    order unless that already has a detail (diet segments and an RQ1 after its RQD
    continue theirs)."""
    found: list[Order] = []
    for seg in message.segments:
        if seg.name == "ORC":
            found.append(Order(seg, "", []))
            continue
        kind = DETAIL_KIND.get(seg.name)
        if kind is not None:
            last = found[-1] if found else None
            if last is not None and not last.kind:
                found[-1] = last = Order(last.orc, kind, last.body)
            elif last is None or not (last.kind == kind
                                      and seg.name in CONTINUES.get(kind, ())):
                found.append(Order(None, kind, []))
        if found:
            found[-1].body.append(seg)
    return found


def place(b: Build, order: Order) -> dict | None:
    """The resource of one order, by its kind."""
    if order.kind in ("service", ""):
        obr = next((s for s in order.body if s.name == "OBR"), None)
        return orders.service_order(b, OrderGroup(order.orc, obr, order.body))
    if order.kind == "pharmacy":
        return _medication(b, order)
    if order.kind == "diet":
        return nutrition_order(b, order.orc, order.body)
    return supply_request(b, order.orc, order.body)


# ---- pharmacy ------------------------------------------------------------------------------


def _medication(b: Build, order: Order) -> dict | None:
    """RXO with its RXR routes and RXC components; the order's OBX as supporting info."""
    rxo = next(s for s in order.body if s.name == "RXO")
    request = pharmacy.medication_request(
        b, order.orc, rxo, [s for s in order.body if s.name == "RXR"],
        [s for s in order.body if s.name == "RXC"])
    if request is None:
        return None
    obxs = [s for s in order.body if s.name == "OBX"]
    if obxs:
        key = {"system": "MedicationRequest", "value": request["id"]}
        made = results.observations(b, obxs, based_on=[request],
                                    context=results.Context(key=key, otherwise="survey"))
        if made:
            request["supportingInformation"] = [b.ref(o) for o in made]
    dg1s = [s for s in order.body if s.name == "DG1"]
    conditions = orders.order_conditions(b, dg1s)
    if conditions:
        request["reasonReference"] = [b.ref(c) for c in conditions]
    return request


# ---- diet ----------------------------------------------------------------------------------

# ODS-1 diet, supplement or preference (table 0159).
DIET, SUPPLEMENT, PREFERENCE = "D", "S", "P"
# ODS-2 / ODT-2 service period -> Timing.repeat.when (meal times).
SERVICE_PERIOD = {"B": "CM", "BREAKFAST": "CM", "L": "CD", "LUNCH": "CD", "D": "CV",
                  "DINNER": "CV", "SUPPER": "CV"}
# Words that make a diet code a texture or a fluid consistency rather than a diet type.
TEXTURE_WORDS = ("PUREE", "MINCE", "MECH", "GROUND", "CHOPPED", "SOFT", "BLEND", "MASH")
FLUID_WORDS = ("THICK", "NECTAR", "HONEY", "PUDDING")


def nutrition_order(b: Build, orc: Segment | None, body: list[Segment]) -> dict:
    """ODS diets (oralDiet: type, texture, fluid consistency, instruction, schedule),
    supplements and preferences, with the ODT trays as notes; status from ORC-5/ORC-1,
    dateTime ORC-15, else ORC-9, else MSH-7; orderer ORC-12; the patient's allergies."""
    if orc is None:
        raise MappingError("diet order without an ORC has no order number", field="ORC-2")
    ods = [s for s in body if s.name == "ODS"]
    odt = [s for s in body if s.name == "ODT"]
    schedule = _diet_schedule(b, orc, body)
    diet: dict = {"type": [], "texture": [], "fluidConsistencyType": [], "instruction": []}
    supplements: list[dict] = []
    preferences: list[dict] = []
    for segment in ods:
        kind = dt.present(segment.value(1)).upper() or DIET
        codes = codeable_concepts(segment, 3, b.facility)
        text = "; ".join(t for t in (dt.present(r.value(1)) for r in segment.repetitions(4))
                         if t)
        when = _meal_times(segment, 2)
        if kind == SUPPLEMENT:
            supplements += [compact({"type": c, "instruction": text or None,
                                     "schedule": _with_meals(schedule, when)})
                            for c in codes or [None] if c or text]
        elif kind == PREFERENCE:
            preferences += [c if "text" in c or not text else {**c, "text": text}
                            for c in codes] or ([{"text": text}] if text else [])
        else:
            if kind != DIET:
                tolerate(MappingError("is not a diet type of table 0159 (D, S, P); read as "
                                      "a diet", field=b.field(segment, 1)))
            for code in codes:
                _sort_diet_code(diet, code)
            diet["instruction"].append(text)
            diet.setdefault("when", []).extend(when)
    trays = [_tray(b, s) for s in odt]
    oral = compact({
        "type": diet["type"],
        "schedule": _with_meals(schedule, diet.get("when", [])),
        "texture": [{"modifier": c} for c in diet["texture"]],
        "fluidConsistencyType": diet["fluidConsistencyType"],
        "instruction": "; ".join(t for t in diet["instruction"] if t) or None,
    })
    request_id = resource_id("NutritionOrder", orders.placer_facility(b),
                             orders.order_key(b, orc, None))
    ordered = people.practitioner(b, dt.first_rep(orc, 12))
    allergies = b.resources("AllergyIntolerance")
    when = (dt.to_fhir_datetime(orc.value(15), b.field(orc, 15), b.offset)
            or dt.to_fhir_datetime(orc.value(9), b.field(orc, 9), b.offset)
            or dt.to_fhir_datetime(b.sent, "MSH-7", b.offset))
    if when is None:
        raise MappingError("has no time the diet was ordered (nor ORC-15, MSH-7)",
                           field=b.field(orc, 9))
    return b.add(compact({
        "resourceType": "NutritionOrder",
        "id": request_id,
        "identifier": _order_identifiers(b, orc),
        "status": orders.request_status(b, orc, None),
        "intent": "order",
        "patient": b.patient_ref(),
        "encounter": b.encounter_ref(),
        "dateTime": when,
        "orderer": b.ref(ordered) if ordered is not None else None,
        "allergyIntolerance": [b.ref(a) for a in allergies],
        "foodPreferenceModifier": preferences,
        "oralDiet": oral or None,
        "supplement": supplements,
        "note": annotations(leading_notes(body, frozenset({"", "ODS", "ODT"})))
        + [{"text": t} for t in trays if t],
    }))


def _sort_diet_code(diet: dict, code: dict) -> None:
    """A diet code that names a texture or a fluid consistency goes there, others are
    the diet's type."""
    words = " ".join([code.get("text", "")] + [
        f"{c.get('code', '')} {c.get('display', '')}" for c in code.get("coding", [])]).upper()
    if any(w in words for w in FLUID_WORDS):
        diet["fluidConsistencyType"].append(code)
    elif any(w in words for w in TEXTURE_WORDS):
        diet["texture"].append(code)
    else:
        diet["type"].append(code)


def _meal_times(segment: Segment, field: int) -> list[str]:
    found = []
    for rep in segment.repetitions(field):
        when = SERVICE_PERIOD.get(dt.present(rep.value(1)).upper()) or SERVICE_PERIOD.get(
            dt.present(rep.value(2)).upper())
        if when and when not in found:
            found.append(when)
    return found


def _diet_schedule(b: Build, orc: Segment, body: list[Segment]) -> dict | None:
    """When the diet starts and ends: TQ1-7/8, else ORC-7.4/7.5 (the TQ of older senders)."""
    tq1 = next((s for s in body if s.name == "TQ1"), None)
    if tq1 is not None:
        start = dt.to_fhir_datetime(tq1.value(7), b.field(tq1, 7), b.offset)
        end = dt.to_fhir_datetime(tq1.value(8), b.field(tq1, 8), b.offset)
    else:
        place = b.field(orc, 7)
        start = dt.to_fhir_datetime(orc.value(7, 4), place + ".4", b.offset)
        end = dt.to_fhir_datetime(orc.value(7, 5), place + ".5", b.offset)
    bounds = compact({"start": start, "end": end})
    return {"repeat": {"boundsPeriod": bounds}} if bounds else None


def _with_meals(schedule: dict | None, when: list[str]) -> list[dict]:
    repeat = dict((schedule or {}).get("repeat", {}))
    if when:
        repeat["when"] = when
    return [{"repeat": repeat}] if repeat else []


def _tray(b: Build, odt: Segment) -> str:
    """An ODT (tray type, service periods, instruction) as a sentence for a note."""
    kind = cwe_to_codeable_concept(dt.first_rep(odt, 1), b.facility)
    label = (kind or {}).get("text") or next(
        (c.get("display") or c.get("code") for c in (kind or {}).get("coding", [])), "")
    periods = ", ".join(dt.present(r.value(2)) or dt.present(r.value(1))
                        for r in odt.repetitions(2))
    instruction = dt.present(odt.value(3))
    head = " ".join(p for p in (f"Tray: {label}" if label else "Tray",
                                f"({periods})" if periods else "") if p)
    return f"{head}: {instruction}" if instruction else (head if label or periods else "")


# ---- supply ----------------------------------------------------------------------------------

SUPPLY_STATUS = {"revoked": "cancelled", "on-hold": "suspended", "active": "active",
                 "completed": "completed", "entered-in-error": "entered-in-error",
                 "draft": "draft"}


def supply_request(b: Build, orc: Segment | None, body: list[Segment]) -> dict:
    """RQD (and RQ1) as a SupplyRequest: item RQD-4 hospital code with RQD-2 internal and
    RQD-3 external codes, quantity RQD-5 (1 when empty) in RQD-6 units, deliverTo RQD-9,
    occurrence TQ1/ORC-7 else RQD-10 date needed; RQ1-2 manufacturer deliverFrom, RQ1-4
    vendor supplier, RQ1-7 substitution; status ORC-5/ORC-1; requester ORC-12 else
    ORC-21."""
    rqd = next((s for s in body if s.name == "RQD"), None)
    rq1 = next((s for s in body if s.name == "RQ1"), None)
    if orc is None or rqd is None:
        raise MappingError("supply order without an ORC and RQD has no order number or item",
                           field="RQD-2")
    codings = [c for f in (4, 2, 3) for c in (first_concept(rqd, f, b.facility) or {}).get(
        "coding", [])]
    item = compact({"coding": [c for i, c in enumerate(codings) if c not in codings[:i]]})
    if not item:
        text = next((dt.present(rqd.value(f, 2)) for f in (4, 2, 3)
                     if dt.present(rqd.value(f, 2))), "")
        if not text:
            raise MappingError("names no item (RQD-2, RQD-3 and RQD-4 are empty)",
                               field=b.field(rqd, 2))
        item = {"text": text}
    number = (dt.to_fhir_decimal(rqd.value(5), b.field(rqd, 5))
              if dt.present(rqd.value(5)) else None)
    unit = first_concept(rqd, 6, b.facility)
    unit_coding = (unit or {}).get("coding", [{}])[0]
    quantity = compact({"value": number if number is not None else 1,
                        "unit": unit_coding.get("display") or unit_coding.get("code")
                        or (unit or {}).get("text")})
    tq1 = next((s for s in body if s.name == "TQ1"), None)
    occurrence = orders.occurrence(b, tq1, orc, None)
    if not occurrence and dt.present(rqd.value(10)):
        occurrence = {"occurrenceDateTime": dt.to_fhir_datetime(rqd.value(10),
                                                                b.field(rqd, 10), b.offset)}
    requester = people.practitioner(b, dt.first_rep(orc, 12)) or orders.ordering_facility(
        b, orc)
    status = SUPPLY_STATUS.get(orders.request_status(b, orc, None), "unknown")
    return b.add(compact({
        "resourceType": "SupplyRequest",
        "id": resource_id("SupplyRequest", orders.placer_facility(b),
                          orders.order_key(b, orc, None)),
        "identifier": _order_identifiers(b, orc),
        "status": status,
        "priority": orders.priority(b, tq1, orc, None),
        "itemCodeableConcept": item,
        "quantity": quantity,
        "parameter": _substitution(rq1),
        **compact(occurrence),
        "authoredOn": orders.authored_on(b, orc),
        "requester": b.ref(requester) if requester is not None else None,
        "supplier": [b.ref(o) for o in (orders.coded_organization(b, rq1, 4),) if o],
        "deliverFrom": _ref(b, orders.coded_organization(b, rq1, 2)),
        "deliverTo": _ref(b, orders.coded_organization(b, rqd, 9)),
    }))


def _ref(b: Build, resource: dict | None) -> dict | None:
    return b.ref(resource) if resource is not None else None


def _substitution(rq1: Segment | None) -> list[dict]:
    flag = dt.present(rq1.value(7)).upper() if rq1 is not None else ""
    if flag not in ("Y", "N"):
        return []
    return [{"code": {"text": "substitute allowed"}, "valueBoolean": flag == "Y"}]


def _order_identifiers(b: Build, orc: Segment) -> list[dict]:
    """ORC-2 placer (PLAC), ORC-3 filler (FILL) and ORC-4 placer group (PGN) numbers."""
    numbers = order_numbers(orc, None, placer_authority=orders.placer_facility(b),
                                   filler_authority=orders.filler_facility(b))
    group = dt.ei_to_identifier(dt.first_rep(orc, 4), orders.placer_facility(b),
                                tables.PLACER_GROUP_NUMBER)
    return numbers.identifiers() + ([group] if group else [])
