"""Pharmacy segments as FHIR: an order (ORC with RXO or RXE, its RXR routes, RXC
components, TQ1 timing, CDO limits and NTE notes) as a MedicationRequest and the
Medication it names; a dispense (RXD) as a MedicationDispense. (A pharmacy
administration, RXA in a RAS, is `administrations`'s; a give, RXG, `gives`'s.)

Choices a receiver notices:
- A MedicationRequest's id is the one hl7v2-rde-to-fhir@1 gives the same order (ORC-2
  placer, else ORC-3 filler, within the sending facility), so the NW, XO, HD and DC of
  one order and every version of the mapping update one resource. An order without
  either number is keyed on RXE-15 prescription number, else on the patient, the drug
  and when it was ordered, with a warning naming ORC-2.
- The drug is a Medication resource (code RXE-2 / RXO-1 / RXD-2 with the supplementary
  codes, form, strength, RXC components as ingredients) referenced by medicationReference, as the
  reference converter does; its id comes from its content, so the same drug named by
  many orders is one resource.
- Status, doses, timing, routes and units read as `engine.maplib.v2_pharmacy` reads them;
  a code or value that cannot be read is a located warning and the order still maps.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import tolerate
from engine.maplib import v2_pharmacy as rx
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_codes import codeable_concepts, first_concept
from engine.maplib.v2_fhir import nte_text
from engine.maplib.v2_orders import keyed, placer_and_filler
from engine.maplib.v2_to_fhir import clinical, financial, people, visit
from engine.maplib.v2_to_fhir.frame import Build
from engine.maplib.v2_to_fhir.provenance import finish
from engine.mapping_base import Skip

T = TypeVar("T")

# ---- where each fact sits in RXO and RXE ------------------------------------------------


class OrderFields(NamedTuple):
    """Field numbers of one kind of order segment (RXO as placed, RXE as encoded)."""

    code: int
    dose_low: int
    dose_high: int
    dose_units: int
    form: int
    admin_instructions: int
    substitution: int
    dispense_amount: int
    dispense_units: int
    refills: int
    prescriber: int  # ordering provider's DEA number (an XCN)
    give_rate: int
    give_rate_units: int
    strength: int
    strength_units: int
    indication: int
    daily_dose: int
    strength_volume: int
    strength_volume_units: int


RXE_FIELDS = OrderFields(2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 23, 24, 25, 26, 27, 19, 33, 34)
RXO_FIELDS = OrderFields(1, 2, 3, 4, 5, 7, 9, 11, 12, 13, 14, 21, 22, 18, 19, 20, 23, 25, 26)
# A give (RXG) has no dispense amount, refills, prescriber or daily dose: field 0, which
# reads empty.
RXG_FIELDS = OrderFields(4, 5, 6, 7, 8, 13, 10, 0, 0, 0, 0, 15, 16, 17, 18, 22, 0, 23, 24)
# Segments whose following NTE are notes on the order (an OBX's NTE is about the OBX).
_ORDER_PARTS = frozenset({"ORC", "RXO", "RXE", "RXR", "RXC", "TQ1", "TQ2", "NTE"})


def fields_of(segment: Segment) -> OrderFields:
    return {"RXO": RXO_FIELDS, "RXG": RXG_FIELDS}.get(segment.name, RXE_FIELDS)


def guarded(convert: Callable[[], T]) -> T | None:
    """Run one segment's converter: a MappingError it raises drops only what it would
    have made, with a warning (strictly, it raises). The fields it names are already
    located (`b.field`: "RXD[2]-2"), so no segment context is added."""
    try:
        return convert()
    except MappingError as error:
        return tolerate(error)


# ---- order groups --------------------------------------------------------------------------

# Segments that start a part of an order group: what follows (RXR, RXC, TQ1, NTE) is theirs.
_PARTS = frozenset({"ORC", "RXO", "RXE", "RXD", "RXG", "RXA", "OBX", "FT1", "BLG", "CTI"})
# Segments that may open an order when a sender leaves out the ORC (v2.3 feeds).
_OPENERS = frozenset({"RXO", "RXE", "RXD", "RXG", "RXA"})
# ... and those an order holds once: a second one is a new order without its ORC (the
# dispenses, gives and administrations of one order may repeat).
_ONCE_PER_ORDER = frozenset({"RXO", "RXE"})


class PharmacyOrder:
    """One ORC (or, without ORC, one order segment) and the segments up to the next."""

    def __init__(self, orc: Segment | None) -> None:
        self.orc = orc
        self.segments: list[Segment] = []

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]

    def owned(self, owner: Segment | None, name: str) -> list[Segment]:
        """The `name` segments (RXR, RXC, TQ1, NTE) between `owner` and the next part."""
        if owner is None:
            return []
        found: list[Segment] = []
        started = owner is self.orc
        for seg in self.segments:
            if seg is owner:
                started = True
            elif started and seg.name in _PARTS:
                break
            elif started and seg.name == name:
                found.append(seg)
        return found

    def timings(self) -> list[Segment]:
        """TQ1 after the encoded order (RXE) win over those after ORC or RXO."""
        rxe = self.first("RXE")
        return self.owned(rxe, "TQ1") or self.all("TQ1")

    def routes(self, *owners: Segment | None) -> list[Segment]:
        """The RXR of the first owner that has some."""
        return next((r for r in (self.owned(o, "RXR") for o in owners) if r), [])

    def components(self, *owners: Segment | None) -> list[Segment]:
        return next((r for r in (self.owned(o, "RXC") for o in owners) if r), [])

    def notes(self, *owners: Segment | None) -> list[Segment]:
        """NTE after the ORC and after the owners (or their RXR/RXC/TQ1), not an OBX's."""
        mine = {id(o) for o in owners if o is not None}
        keep = self.orc is not None
        found: list[Segment] = []
        for seg in self.segments:
            if seg.name == "NTE":
                if keep:
                    found.append(seg)
            elif seg.name in _PARTS:
                keep = id(seg) in mine
        return found


def pharmacy_orders(b: Build) -> list[PharmacyOrder]:
    """The message's orders in order: each ORC with what follows it; an order segment
    before any ORC (or a second RXO or RXE) opens an order of its own."""
    orders: list[PharmacyOrder] = []
    current: PharmacyOrder | None = None
    for seg in b.message.segments:
        if seg.name == "ORC":
            current = PharmacyOrder(seg)
            orders.append(current)
            continue
        if seg.name in _OPENERS and (current is None or (
                seg.name in _ONCE_PER_ORDER and current.first(seg.name) is not None)):
            current = PharmacyOrder(None)
            orders.append(current)
        if current is not None:
            current.segments.append(seg)
    return orders


# ---- the order ----------------------------------------------------------------------------


def report_message(message: Hl7Message, kind: str, events: tuple[str, ...],
                   per_order: Callable[[Build, PharmacyOrder], list[dict]],
                   nothing: MappingError) -> dict | Skip:
    """An RDS, RGV or RAS (what happened to pharmacy orders): the Patient, the visit and
    the allergies, then what each order reports (`per_order`); a message of which no
    order gave anything is the warning `nothing`. The first of `events` is the default
    for a message whose MSH-9 names none."""
    b = Build(message, kind, default_event=events[0])
    if b.event not in events:
        return Skip(f"{kind}^{b.event or '(no event)'} is not an {kind} event this mapping "
                    "reads")
    people.patient(b)
    visit.encounter(b)
    clinical.allergies(b)
    people.mother(b)
    financial.patient_account(b)
    made = [r for order in pharmacy_orders(b) for r in per_order(b, order)]
    if not made:
        tolerate(nothing)
    return finish(b)


def medication_request(b: Build, orc: Segment | None, order_segment: Segment,
                       rxrs: list[Segment], rxcs: list[Segment], *,
                       timings: list[Segment] | None = None,
                       notes: list[Segment] | None = None,
                       intent: str = "order") -> dict | None:
    """The MedicationRequest of one pharmacy order (ORC with an RXO or an RXE), kept in
    `b` with its Medication and the practitioners it names; None (with a warning) when
    the order names no drug. TQ1 and NTE are found after the order's segments unless
    given. With another `intent` (original-order: the RXO an RXE encodes) the request is
    a second resource of the same order, keyed apart."""
    if timings is None or notes is None:
        found_timings, found_notes = _order_parts(b, orc or order_segment)
        timings = found_timings if timings is None else timings
        notes = found_notes if notes is None else notes
    return guarded(lambda: _request(b, orc, order_segment, rxrs, rxcs, timings, notes,
                                    intent))


def _order_parts(b: Build, first: Segment) -> tuple[list[Segment], list[Segment]]:
    """The TQ1 and the order's NTE from `first` up to the next ORC (or other segment)."""
    timings: list[Segment] = []
    notes: list[Segment] = []
    started = False
    for seg in b.message.segments:
        if seg is first:
            started = True
            continue
        if not started:
            continue
        if seg.name == "ORC" or seg.name not in _ORDER_PARTS:
            break
        if seg.name == "TQ1":
            timings.append(seg)
        elif seg.name == "NTE":
            notes.append(seg)
    return timings, notes


def _request(b: Build, orc: Segment | None, seg: Segment, rxrs: list[Segment],
             rxcs: list[Segment], timings: list[Segment], notes: list[Segment],
             intent: str) -> dict:
    f = fields_of(seg)
    medication = medication_resource(b, seg, f.code, f.form, rxcs,
                                     strength=(f.strength, f.strength_units,
                                               f.strength_volume, f.strength_volume_units))
    if medication is None:
        raise MappingError("is empty: the order names no medication", field=b.field(seg, f.code))
    b.add(medication)
    identifiers = order_identifiers(b, orc, seg)
    plans = schedules(b, orc, seg, timings)
    authored = _authored(b, orc, seg)
    key = identifiers[0] if identifiers else _fallback_key(b, orc, medication, authored)
    if intent != "order":
        key = keyed(key, intent)
    requester = _ordering_role(b, _first_person(b, (orc, 12), (seg, f.prescriber)),
                               _ordering_facility(b, orc))
    recorder = _first_person(b, (orc, 10), (orc, 19))
    request = {
        "resourceType": "MedicationRequest",
        "id": resource_id("MedicationRequest", b.facility, key),
        "identifier": identifiers,
        "groupIdentifier": dt.first_ei(orc, 4, b.facility) if orc is not None else None,
        "status": request_status(b, orc),
        "statusReason": first_concept(orc, 16, b.facility),
        "intent": intent,
        "priority": next((p.priority for p in plans if p.priority), None),
        "medicationReference": b.ref(medication),
        "subject": b.patient_ref(),
        "encounter": b.encounter_ref(),
        "authoredOn": authored,
        "requester": b.ref(requester) if requester else None,
        "recorder": b.ref(recorder) if recorder else None,
        "reasonCode": codeable_concepts(seg, f.indication, b.facility),
        "note": _notes(b, seg, notes),
        "dosageInstruction": dosages(b, seg, rxrs, plans),
        "dispenseRequest": _dispense_request(b, orc, seg, plans),
        "substitution": _substitution(seg, f.substitution),
        "priorPrescription": _prior(b, orc),
    }
    return b.add(compact(request))


def placed_with(b: Build, order: PharmacyOrder, rxo: Segment, encoded: dict) -> dict | None:
    """The order as placed (RXO) beside the order as the pharmacy encoded it (RXE): a
    MedicationRequest of intent original-order that the encoded one is basedOn."""
    placed = medication_request(b, order.orc, rxo, order.owned(rxo, "RXR"),
                                order.owned(rxo, "RXC"), timings=order.timings(),
                                notes=[], intent="original-order")
    if placed is not None:
        encoded["basedOn"] = [b.ref(placed)]
    return placed


def order_request(b: Build, order: PharmacyOrder) -> dict | None:
    """The MedicationRequest of an order that a dispense, give or administration reports
    on: from its RXE as encoded, else its RXO as placed (the RXO's own facts added when
    both are there); None when it has neither."""
    encoded, placed = order.first("RXE"), order.first("RXO")
    segment = encoded or placed
    if segment is None:
        return None
    owners = (segment, placed) if placed is not segment else (segment,)
    request = medication_request(
        b, order.orc, segment, order.routes(*owners), order.components(*owners),
        timings=order.timings(), notes=order.notes(*owners))
    if request is not None and placed is not None and placed is not segment:
        placed_with(b, order, placed, request)
    return request


def order_identifiers(b: Build, orc: Segment | None, seg: Segment) -> list[dict]:
    """ORC-2 placer and ORC-3 filler numbers (the released mapping's, first one keys the
    id), then RXE-15 prescription number."""
    found = placer_and_filler(orc, 2, 3, b.facility) if orc is not None else []
    if seg.name == "RXE" and dt.present(seg.value(15)):
        found.append({"type": {"text": "Prescription number"},
                      "system": people.local_system(b, "prescription"),
                      "value": dt.present(seg.value(15))})
    return found


def report_key(b: Build, order: PharmacyOrder, seg: Segment, request: dict | None,
               medication: dict, kind: str, counters: tuple[int, ...]) -> dict:
    """The id key of what a segment reports on an order (a give, an administration): the
    order (ORC-2, else ORC-3, else its MedicationRequest, else the patient and drug under
    the local `kind` system) with the segment's name and its `counters` fields, so a
    resent or changed report updates one resource and the order's next is another."""
    found = order_identifiers(b, order.orc, seg)[:1]
    order_key = found[0] if found else (
        {"system": "urn:conduit:medication-request", "value": request["id"]} if request
        else {"system": people.local_system(b, kind),
              "value": f"{b.patient['id'] if b.patient else ''}|{medication['id']}"})
    return {"system": order_key.get("system", ""),
            "value": "^".join((order_key["value"], seg.name,
                               *(dt.present(seg.value(n)) for n in counters)))}


def _fallback_key(b: Build, orc: Segment | None, medication: dict, authored: str | None
                  ) -> dict:
    """Without an order number: the patient, the drug and the order time, so the same
    message again keeps its id."""
    tolerate(MappingError("is empty and so is ORC-3: the order is keyed on its patient, "
                          "drug and time", field=b.field(orc, 2) if orc is not None else "ORC-2"))
    patient = b.patient["id"] if b.patient is not None else ""
    return {"system": "urn:conduit:medication-request-key",
            "value": "|".join((patient, medication["id"], authored or ""))}


# Order controls that report on an order (RE: observations or a dispense follow) rather
# than change it: ORC-5 says where it stands.
_REPORTS = frozenset({"RE", "PR", "SR", "UA"})


def request_status(b: Build, orc: Segment | None) -> str:
    """ORC-1 and ORC-5 as `v2_pharmacy.order_status` reads them; an order control code
    outside table 0119 is unknown, with a warning."""
    if orc is None:
        return "unknown"
    control = dt.present(orc.value(1)).upper()
    if control in _REPORTS:
        return rx.ORDER_STATUS.get(dt.present(orc.value(5)).upper(), "active")
    if not control:
        status = rx.ORDER_STATUS.get(dt.present(orc.value(5)).upper())
        return status or tolerate(MappingError("is empty and so is ORC-5; the status is "
                                               "unknown", field=b.field(orc, 1)), "unknown")
    try:
        return rx.order_status(orc, b.field(orc, 1).rsplit("-", 1)[0])
    except MappingError as error:
        return tolerate(error, "unknown")


def _authored(b: Build, orc: Segment | None, seg: Segment) -> str | None:
    """ORC-9 transaction time, else RXE-32 original order time."""
    when = None
    if orc is not None:
        when = dt.to_fhir_datetime(orc.value(9), b.field(orc, 9), b.offset)
    if when is None and seg.name == "RXE":
        when = dt.to_fhir_datetime(seg.value(32), b.field(seg, 32), b.offset)
    return when


def _first_person(b: Build, *places: tuple[Segment | None, int]) -> dict | None:
    """The Practitioner of the first of `places` that names someone; every place is read
    (each named person is kept), the first one wins."""
    chosen = None
    for segment, number in places:
        if segment is None:
            continue
        for rep in segment.repetitions(number)[:1]:
            found = people.practitioner(b, rep)
            chosen = chosen or found
    return chosen


def _ordering_facility(b: Build, orc: Segment | None) -> dict | None:
    """ORC-21 ordering facility (XON) as an Organization (ORC-22 address, ORC-23
    phone)."""
    rep = dt.first_rep(orc, 21) if orc is not None else None
    if rep is None:
        return None
    name, number = dt.present(rep.value(1)), dt.present(rep.value(10)) or dt.present(
        rep.value(3))
    identifier = {"system": people.local_system(b, "organization"), "value": number} \
        if number else None
    org = people.organization(b, name, identifier)
    if org is None:
        return None
    address = dt.first_rep(orc, 22)
    phone = dt.first_rep(orc, 23)
    extra = compact({
        "address": [a for a in (dt.xad_to_address(address),) if a] if address else None,
        "telecom": [t for t in (dt.xtn_to_contact_point(phone, "work"),) if t]
        if phone else None,
    })
    for key, value in extra.items():
        org.setdefault(key, value)
    return org


# Table 0443: the role the prescriber acts in (the reference converter's PractitionerRole).
_ORDERING_PROVIDER = {"coding": [{"system": tables.V2_0443, "code": "OP",
                                  "display": "Ordering Provider"}]}


def _ordering_role(b: Build, person: dict | None, facility: dict | None) -> dict | None:
    """The prescriber as ordering provider: a PractitionerRole (at the ordering facility
    when one is sent), kept once in `b`; None when no one is named."""
    if person is None:
        return None
    key = {"system": "urn:conduit:practitioner-role",
           "value": f"{person['id']}|{facility['id'] if facility else ''}"}
    return b.add(compact({
        "resourceType": "PractitionerRole",
        "id": resource_id("PractitionerRole", b.facility, key),
        "practitioner": b.ref(person), "organization": b.ref(facility) if facility else None,
        "code": [_ORDERING_PROVIDER]}), merge=True)


def _prior(b: Build, orc: Segment | None) -> dict | None:
    """ORC-8 parent order as a logical reference by identifier."""
    if orc is None:
        return None
    identifier = dt.ei_to_identifier(dt.first_rep(orc, 8), b.facility, tables.PLACER_IDENTIFIER)
    return {"type": "MedicationRequest", "identifier": identifier} if identifier else None


def annotations(b: Build, notes: list[Segment]) -> list[dict]:
    """One Annotation per NTE that says something: NTE-3 text, NTE-5 entered by as the
    author (a Practitioner), NTE-6 entered time (v2.6+)."""
    found = []
    for nte in notes:
        text = nte_text(nte)
        if not text:
            continue
        author = people.practitioner(b, dt.first_rep(nte, 5))
        found.append(compact({
            "authorReference": b.ref(author) if author else None,
            "time": dt.to_fhir_datetime(nte.value(6), b.field(nte, 6), b.offset),
            "text": text,
        }))
    return found


def _notes(b: Build, seg: Segment, notes: list[Segment]) -> list[dict]:
    """The order's NTE, then RXE-21 / RXO-6 pharmacy instructions as a note."""
    found = annotations(b, notes)
    field = 21 if seg.name == "RXE" else 6
    text = text_of(seg, field)
    if text:
        found.append({"text": text})
    return found


def text_of(seg: Segment, field: int) -> str:
    """A CE/ST field as words: each repetition's text (else code), joined."""
    parts = []
    for rep in seg.repetitions(field):
        text = dt.present(rep.value(2)) or dt.present(rep.value(9)) or dt.present(rep.value(1))
        if text:
            parts.append(text)
    return "; ".join(parts)


# ---- the drug -----------------------------------------------------------------------------


def medication_resource(b: Build, seg: Segment, code_field: int, form_field: int | None,
                        rxcs: list[Segment], *, strength: tuple[int, int, int, int] | None = None,
                        ) -> dict | None:
    """A Medication from a segment's drug code, its form, its strength (value, units,
    volume, volume units fields) and RXC components as ingredients; None when it names no
    drug and has no components. Its id is derived from its content, so the same drug
    named by many orders is one resource."""
    code = first_concept(seg, code_field, b.facility)
    supplementary = {"RXE": 31, "RXO": 24, "RXD": 25}.get(seg.name)
    for more in codeable_concepts(seg, supplementary, b.facility) if supplementary else []:
        if code is None:
            code = more
            continue
        known = code.setdefault("coding", [])
        known.extend(c for c in more.get("coding", []) if c not in known)
    volume = None
    if strength:
        volume = rx.quantity(dt.to_fhir_decimal(seg.value(strength[2]), b.field(seg, strength[2])),
                             dt.first_rep(seg, strength[3]))
    ingredients = [i for i in (ingredient(b, rxc, volume) for rxc in rxcs) if i]
    if code is None and ingredients:
        code = {"text": " + ".join(_words(i["itemCodeableConcept"]) for i in ingredients)}
    if code is None:
        return None
    amount = None
    if strength and not ingredients:
        ratio = _strength(b, seg, strength[0], strength[1], volume)
        if ratio:
            ingredients = [{"itemCodeableConcept": code, "strength": ratio}]
    elif volume:  # a compound: its components say the amounts, the volume its size
        amount = {"numerator": volume, "denominator": {"value": 1}}
    content = compact({
        "code": code,
        "form": first_concept(seg, form_field, b.facility) if form_field else None,
        "ingredient": ingredients,
        "amount": amount,
    })
    return {"resourceType": "Medication", "id": content_id(b, "Medication", content), **content}


def content_id(b: Build, kind: str, content: dict) -> str:
    """An id derived from what a resource says (for things with no identifier of their
    own: the same content from the same sender is the same resource)."""
    key = json.dumps(content, sort_keys=True, default=str)
    return resource_id(kind, b.facility, {"system": "content", "value": key})


def _words(concept: dict) -> str:
    if concept.get("text"):
        return concept["text"]
    first = concept["coding"][0]
    return first.get("display") or first["code"]


def _strength(b: Build, seg: Segment, value: int, units: int, per: dict | None
              ) -> dict | None:
    """The amount at `value`/`units` per `per` (a volume), else per one."""
    numerator = rx.quantity(dt.to_fhir_decimal(seg.value(value), b.field(seg, value)),
                            dt.first_rep(seg, units))
    if numerator is None:
        return None
    return {"numerator": numerator, "denominator": per or {"value": 1}}


def ingredient(b: Build, rxc: Segment, volume: dict | None = None) -> dict | None:
    """One RXC component: RXC-2 code; strength its amount in the compound (RXC-3/4) per
    the compound's volume, else its own strength (RXC-5/6) per RXC-8/9; active when an
    additive (RXC-1 A), not when the base (B)."""
    item = first_concept(rxc, 2, b.facility)
    if item is None:
        return tolerate(MappingError("is empty: the component names no substance",
                                     field=b.field(rxc, 2)))
    per = rx.quantity(dt.to_fhir_decimal(rxc.value(8), b.field(rxc, 8)), dt.first_rep(rxc, 9))
    ratio = (_strength(b, rxc, 3, 4, volume) or _strength(b, rxc, 5, 6, per))
    kind = dt.present(rxc.value(1)).upper()
    return compact({
        "itemCodeableConcept": item,
        "isActive": {"A": True, "B": False}.get(kind),
        "strength": ratio,
    })


# ---- dosage -------------------------------------------------------------------------------


def schedules(b: Build, orc: Segment | None, seg: Segment, timings: list[Segment]
               ) -> list[rx.Schedule]:
    """One Schedule per TQ1; else the v2.3 TQ of RXE-1 (RXG-3), else ORC-7."""
    if timings:
        found = [guarded(lambda t=t: rx.schedule_from_tq1(
            t, b.field(t, 1).rsplit("-", 1)[0], b.offset)) for t in timings]
        for t in timings:
            _check_time_units(b, t)
        return [_sane(b, s, b.field(t, 14), b.field(t, 3))
                for s, t in zip(found, timings, strict=True) if s is not None]
    places = [(seg, {"RXE": 1, "RXG": 3}[seg.name])] if seg.name in ("RXE", "RXG") else []
    places += [(orc, 7)] if orc is not None else []
    for segment, number in places:
        rep = dt.first_rep(segment, number)
        if rep is not None and any(dt.present(c) for c in rep.components()):
            name = b.field(segment, number)
            plan = guarded(lambda rep=rep, name=name: rx.schedule_from_tq(rep, name, b.offset))
            return [_sane(b, plan, f"{name}.3", f"{name}.2")] if plan else []
    return []


_MAX_INT = 2**31 - 1


def _sane(b: Build, plan: rx.Schedule, count_field: str, pattern_field: str
          ) -> rx.Schedule:
    """FHIR counts and frequencies are positive 32-bit integers: a total of 0 or one too
    large (TQ1-14), or a pattern giving such a frequency (TQ1-3 "0ID"), is left out with a
    warning; the pattern's text stays as Timing.code."""
    repeat = (plan.timing or {}).get("repeat")
    if not repeat:
        return plan
    count = repeat.get("count")
    if count is not None and not 1 <= count <= _MAX_INT:
        tolerate(MappingError("is not a count of one or more occurrences; left out",
                              field=count_field))
        repeat.pop("count")
    frequency = repeat.get("frequency")
    if frequency is not None and not 1 <= frequency <= _MAX_INT:
        tolerate(MappingError("gives a frequency that is not one or more a period; the "
                              "pattern is kept as text only", field=pattern_field))
        for key in ("frequency", "period", "periodUnit", "when"):
            repeat.pop(key, None)
    if not repeat:
        plan.timing.pop("repeat")
    return plan._replace(timing=plan.timing or None)


def _check_time_units(b: Build, tq1: Segment) -> None:
    """A TQ1-6/13 duration whose unit is not a unit of time is left out: say where."""
    for number in (6, 13):
        unit = dt.present(tq1.value(number, 2)).upper()
        if dt.present(tq1.value(number, 1)) and unit and unit not in tables.TIME_UNITS:
            tolerate(MappingError("has a duration unit that is not a unit of time; the "
                                  "duration is left out", field=b.field(tq1, number)))


def dosages(b: Build, seg: Segment, rxrs: list[Segment], plans: list[rx.Schedule]
            ) -> list[dict]:
    """One Dosage per schedule (at least one), sharing dose, rate, route, site, method
    and instructions; RXO/RXE-7 coded instructions, total daily dose as maxDosePerPeriod."""
    f = fields_of(seg)
    rxr = rxrs[0] if rxrs else None
    shared = {
        "additionalInstruction": [*codeable_concepts(seg, f.admin_instructions, b.facility),
                                  *(codeable_concepts(rxr, 5, b.facility) if rxr else [])],
        "route": rx.route(rxr, b.facility) if rxr else None,
        "site": site(b, rxr),
        "method": first_concept(rxr, 4, b.facility) if rxr else None,
        "doseAndRate": dose_and_rate(b, seg),
        "maxDosePerPeriod": _daily_dose(b, seg, f.daily_dose),
    }
    for cdo in _after(b, seg, "CDO"):
        shared.update({k: v for k, v in _cumulative(b, cdo).items() if k not in shared
                       or shared[k] is None})
    result = []
    for number, plan in enumerate(plans or [rx.Schedule(None)], start=1):
        dosage = {
            "sequence": number if len(plans) > 1 else None,
            "text": plan.text,
            **shared,
            "timing": plan.timing,
            "asNeededBoolean": True if plan.as_needed else None,
        }
        if plan.condition:
            dosage["additionalInstruction"] = [*shared["additionalInstruction"],
                                               {"text": plan.condition}]
        result.append(compact(dosage))
    return [d for d in result if d]


def _after(b: Build, seg: Segment, name: str) -> list[Segment]:
    """The `name` segments following `seg` before the next part of the order."""
    segments = b.message.segments
    start = next((i for i, s in enumerate(segments) if s is seg), len(segments))
    found = []
    for later in segments[start + 1:]:
        if later.name in _PARTS:
            break
        if later.name == name:
            found.append(later)
    return found


# CDO-4 time units (table 0918 style): a lifetime limit, or one per period.
_CDO_PERIODS = {"D": "d", "WK": "wk", "M": "mo", "MO": "mo", "A": "a", "Y": "a", "H": "h"}


def _cumulative(b: Build, cdo: Segment) -> dict:
    """CDO (v2.7+ cumulative dosage): CDO-3 limit over CDO-4 interval as maxDosePerPeriod,
    or maxDosePerLifetime when the interval is the patient's lifetime (PL)."""
    value = dt.to_fhir_decimal(cdo.value(3, 1), b.field(cdo, 3))
    if value is None:
        return {}
    code, text = dt.present(cdo.value(3, 2, 1)), dt.present(cdo.value(3, 2, 2))
    limit: dict = {"value": value}
    if text or code:
        limit["unit"] = text or code
    if rx.UCUM_UNITS.get(code.upper()):
        limit.update(system=tables.UCUM, code=rx.UCUM_UNITS[code.upper()])
    unit = dt.present(cdo.value(4, 2, 1)).upper()
    if unit == "PL":
        return {"maxDosePerLifetime": limit}
    period = _CDO_PERIODS.get(unit)
    if period is None:
        return tolerate(MappingError("has an interval unit this mapping does not read "
                                     "(D, WK, M, A, PL)", field=b.field(cdo, 4)), {})
    count = dt.to_fhir_decimal(cdo.value(4, 1), b.field(cdo, 4)) or 1
    return {"maxDosePerPeriod": {"numerator": limit, "denominator": {
        "value": count, "unit": period, "system": tables.UCUM, "code": period}}}


def site(b: Build, rxr: Segment | None) -> dict | None:
    """RXR-2 site; RXR-6 site modifier is kept as text beside it."""
    if rxr is None:
        return None
    site = rx.site(rxr, b.facility)
    modifier = first_concept(rxr, 6, b.facility)
    if site is not None and modifier is not None:
        words = modifier.get("text") or modifier.get("coding", [{}])[0].get("display")
        if words:
            site = {**site, "text": f"{words} {site.get('text') or ''}".strip()}
    return site


def dose_and_rate(b: Build, seg: Segment) -> list[dict]:
    """Give amount (a range when minimum and maximum differ) in give units, and give rate,
    from the fields of an RXE (3/4/5, 23/24) or an RXO (2/3/4, 21/22)."""
    f = fields_of(seg)
    units = dt.first_rep(seg, f.dose_units)
    low = dt.to_fhir_decimal(seg.value(f.dose_low), b.field(seg, f.dose_low))
    high = dt.to_fhir_decimal(seg.value(f.dose_high), b.field(seg, f.dose_high))
    entry: dict = {}
    if low is not None and high is not None and high != low:
        entry["doseRange"] = {"low": rx.quantity(low, units), "high": rx.quantity(high, units)}
    elif low is not None or high is not None:
        entry["doseQuantity"] = rx.quantity(low if low is not None else high, units)
    rate = dt.to_fhir_decimal(seg.value(f.give_rate), b.field(seg, f.give_rate))
    if rate is not None:
        entry["rateQuantity"] = rx.quantity(rate, dt.first_rep(seg, f.give_rate_units))
    return [entry] if entry else []


def _daily_dose(b: Build, seg: Segment, number: int) -> dict | None:
    """A CQ total daily dose (value ^ units as subcomponents) per 1 day."""
    value = dt.to_fhir_decimal(seg.value(number, 1), b.field(seg, number))
    if value is None:
        return None
    code, text = dt.present(seg.value(number, 2, 1)), dt.present(seg.value(number, 2, 2))
    quantity: dict = {"value": value}
    ucum = rx.UCUM_UNITS.get(code.upper())
    if text or code:
        quantity["unit"] = text or code
    if ucum:
        quantity.update(system=tables.UCUM, code=ucum)
    day = {"value": 1, "unit": "d", "system": tables.UCUM, "code": "d"}
    return {"numerator": quantity, "denominator": day}


# ---- dispense request and substitution ----------------------------------------------------


def _dispense_request(b: Build, orc: Segment | None, seg: Segment, plans: list[rx.Schedule]
                      ) -> dict | None:
    """Dispense amount and units, refills, initial fill (RXE-39), dispensing pharmacy
    (RXE-40), dispense interval (RXO-28 days) and the period the order is valid for (ORC-15
    order effective time, else the timing start, to the timing end)."""
    f = fields_of(seg)
    start = (dt.to_fhir_datetime(orc.value(15), b.field(orc, 15), b.offset)
             if orc is not None else None)
    start = start or next((p.start for p in plans if p.start), None)
    end = next((p.end for p in plans if p.end), None)
    units = dt.first_rep(seg, f.dispense_units)
    request = {
        "quantity": rx.quantity(dt.to_fhir_decimal(seg.value(f.dispense_amount),
                                                   b.field(seg, f.dispense_amount)), units),
        "numberOfRepeatsAllowed": _count(b, seg, f.refills),
        "validityPeriod": compact({"start": start, "end": end}),
    }
    if seg.name == "RXE":
        initial = rx.quantity(dt.to_fhir_decimal(seg.value(39), b.field(seg, 39)), units)
        request["initialFill"] = {"quantity": initial} if initial else None
        request["performer"] = _pharmacy(b, seg, 40)
    else:
        days = dt.to_fhir_decimal(seg.value(28), b.field(seg, 28))
        request["dispenseInterval"] = ({"value": days, "unit": "days", "system": tables.UCUM,
                                        "code": "d"} if days is not None else None)
        request["performer"] = _pharmacy(b, seg, 32)
    return compact(request) or None


def _count(b: Build, seg: Segment, number: int) -> int | None:
    """A count (refills): a whole number of zero or more that FHIR can hold, else a
    warning and none."""
    try:
        count = rx.whole_number(seg.value(number), b.field(seg, number))
    except MappingError as error:
        return tolerate(error)
    if count is not None and count > _MAX_INT:
        return tolerate(MappingError("is too large to be a count; left out",
                                     field=b.field(seg, number)))
    return count


def _pharmacy(b: Build, seg: Segment, number: int) -> dict | None:
    """A CWE naming a pharmacy as an Organization reference."""
    rep = dt.first_rep(seg, number)
    if rep is None:
        return None
    code, name = dt.present(rep.value(1)), dt.present(rep.value(2))
    identifier = ({"system": people.local_system(b, "pharmacy"), "value": code}
                  if code else None)
    org = people.organization(b, name or code, identifier)
    return b.ref(org) if org else None


def _substitution(seg: Segment, number: int) -> dict | None:
    """RXE-9 / RXO-9 (table 0167) as `v2_pharmacy.substitution` reads RXE-9."""
    code = dt.present(seg.value(number)).upper()
    if code not in rx.SUBSTITUTION:
        return None
    v3_code, v3_display, v2_display = rx.SUBSTITUTION[code]
    return {"allowedCodeableConcept": {"coding": [
        {"system": rx.V3_SUBSTITUTION, "code": v3_code, "display": v3_display},
        {"system": tables.V2_0167, "code": code, "display": v2_display},
    ]}}


# ---- dispense (RXD) -----------------------------------------------------------------------

# Table 0038 order status -> MedicationDispense.status; an RDS without one says what was
# dispensed, so it is completed.
DISPENSE_STATUS: dict[str, str] = {
    "CM": "completed", "IP": "in-progress", "SC": "preparation", "A": "in-progress",
    "CA": "cancelled", "DC": "stopped", "HD": "on-hold", "ER": "entered-in-error",
    "RP": "stopped",
}
# Table 0167 substitution status -> whether the drug dispensed was a substitute, and
# the v3 code of what was dispensed.
WAS_SUBSTITUTED: dict[str, bool] = {"N": False, "0": False, "1": False, "G": True, "T": True}
_DISPENSED_SUBSTITUTION: dict[str, tuple[str, str, str]] = {
    **{k: v for k, v in rx.SUBSTITUTION.items() if k in WAS_SUBSTITUTED},
    "0": ("N", "none", "No product selection indicated"),
}
DISPENSE_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0484"
DISPENSE_TYPES: dict[str, str] = {
    "B": "Trial Quantity Balance", "C": "Compassionate Fill", "N": "New/Renew - Full Fill",
    "P": "New/Renew - Part Fill", "Q": "Refill - Part Fill", "R": "Refill - Full Fill",
    "S": "Manufacturer Sample", "T": "Trial Quantity", "Z": "Non-Prescription Fill",
}


def dispense(b: Build, order: PharmacyOrder, rxd: Segment,
             request: dict | None) -> dict | None:
    """The MedicationDispense of one RXD (guarded: one that names no drug is a warning),
    authorized by `request` (the order's MedicationRequest) when there is one."""
    return guarded(lambda: _dispense(b, order, rxd, request))


def _dispense(b: Build, order: PharmacyOrder, rxd: Segment, request: dict | None) -> dict:
    medication = medication_resource(b, rxd, 2, 6, order.owned(rxd, "RXC"),
                                     strength=(16, 17, 28, 29))
    if medication is None:
        raise MappingError("is empty: the dispense names no medication", field=b.field(rxd, 2))
    batch(b, rxd, medication)
    b.add(medication)
    orc = order.orc
    order_key = (order_identifiers(b, orc, rxd)[:1] or [None])[0]
    prescription = dt.present(rxd.value(7))
    handed = dt.to_fhir_datetime(rxd.value(3), b.field(rxd, 3), b.offset)
    if order_key is None and request is not None:
        order_key = {"system": "urn:conduit:medication-request", "value": request["id"]}
    if order_key is None:
        order_key = {"system": people.local_system(b, "prescription"),
                     "value": prescription or f"{b.patient['id'] if b.patient else ''}|"
                     f"{medication['id']}"}
    key = {"system": order_key.get("system", ""),
           "value": "^".join((order_key["value"], "RXD", dt.present(rxd.value(1)),
                              dt.present(rxd.value(3))))}
    performers = [p for p in (people.practitioner(b, rep) for rep in rxd.repetitions(10)) if p]
    resource = {
        "resourceType": "MedicationDispense",
        "id": resource_id("MedicationDispense", b.facility, key),
        "identifier": _dispense_identifiers(b, orc, prescription),
        "status": _dispense_status(orc),
        "medicationReference": b.ref(medication),
        "subject": b.patient_ref(),
        "context": b.encounter_ref(),
        "performer": [{"actor": b.ref(p)} for p in performers],
        "location": _pharmacy_location(b, rxd),
        "authorizingPrescription": _authorizing(b, request, prescription),
        "type": _dispense_type(rxd),
        "quantity": rx.quantity(dt.to_fhir_decimal(rxd.value(4), b.field(rxd, 4)),
                                dt.first_rep(rxd, 5)),
        "whenHandedOver": handed,
        "destination": _destination(b, rxd),
        "note": [*[{"text": t} for t in (text_of(rxd, 9), text_of(rxd, 15)) if t],
                 *annotations(b, order.notes(rxd))],
        "dosageInstruction": _dispense_dosage(b, order, rxd),
        "substitution": _dispense_substitution(b, rxd),
    }
    return b.add(compact(resource))


def _dispense_identifiers(b: Build, orc: Segment | None, prescription: str) -> list[dict]:
    """ORC-3 filler number (the pharmacy's) of the dispense's order."""
    if orc is None:
        return []
    filler = dt.first_ei(orc, 3, b.facility, tables.FILLER_IDENTIFIER)
    return [filler] if filler else []


def _dispense_status(orc: Segment | None) -> str:
    code = dt.present(orc.value(5)).upper() if orc is not None else ""
    control = dt.present(orc.value(1)).upper() if orc is not None else ""
    if control in ("CA", "OC", "CR"):
        return "cancelled"
    return DISPENSE_STATUS.get(code, "completed")


def _authorizing(b: Build, request: dict | None, prescription: str) -> list[dict]:
    """The order's MedicationRequest, else RXD-7 prescription number as a logical one."""
    if request is not None:
        return [b.ref(request)]
    if prescription:
        return [{"type": "MedicationRequest", "identifier": {
            "type": {"text": "Prescription number"},
            "system": people.local_system(b, "prescription"), "value": prescription}}]
    return []


def batch(b: Build, seg: Segment, medication: dict, fields: tuple[int, int, int] = (18, 19, 20)
          ) -> None:
    """The lot, expiry and manufacturer `fields` (RXD-18/19/20, RXA-15/16/17) describe
    the package dispensed or given: Medication.batch and manufacturer (a new content, so
    a new id)."""
    lot_field, expiry_field, maker_field = fields
    lot = dt.present(seg.value(lot_field, 1))
    expires = dt.to_fhir_datetime(seg.value(expiry_field), b.field(seg, expiry_field), b.offset)
    maker = dt.first_rep(seg, maker_field)
    org = None
    if maker is not None:
        code, name = dt.present(maker.value(1)), dt.present(maker.value(2))
        system = dt.present(maker.value(3))
        identifier = ({"system": tables.MVX if system.upper() == "MVX" else
                       people.local_system(b, "manufacturer"), "value": code} if code else None)
        org = people.organization(b, name or code, identifier)
    extra = compact({"manufacturer": b.ref(org) if org else None,
                     "batch": compact({"lotNumber": lot or None, "expirationDate": expires})})
    if extra:
        medication.update(extra)
        content = {k: v for k, v in medication.items() if k not in ("id", "resourceType")}
        medication["id"] = content_id(b, "Medication", content)


def _pharmacy_location(b: Build, rxd: Segment) -> dict | None:
    """RXD-30 dispensing pharmacy (a CWE) as the Location dispensed from."""
    rep = dt.first_rep(rxd, 30)
    if rep is None:
        return None
    name = dt.present(rep.value(2)) or dt.present(rep.value(1))
    if not name:
        return None
    key = {"system": f"urn:conduit:location:{b.facility}",
           "value": f"pharmacy:{dt.present(rep.value(1)) or name}".upper()}
    place = b.add(compact({"resourceType": "Location",
                           "id": resource_id("Location", b.facility, key),
                           "name": name, "mode": "instance"}), merge=True)
    return b.ref(place) if place else None


def _destination(b: Build, rxd: Segment) -> dict | None:
    """RXD-13 dispense-to location (LA2: point of care, room, bed, facility)."""
    rep = dt.first_rep(rxd, 13)
    if rep is None:
        return None
    parts = [dt.present(rep.value(i)) for i in (1, 2, 3)]
    facility = dt.present(rep.value(4, 1))
    name = " / ".join(p for p in parts if p) or facility
    if not name:
        return None
    key = {"system": f"urn:conduit:location:{facility or b.facility}", "value": name.upper()}
    place = b.add(compact({"resourceType": "Location",
                           "id": resource_id("Location", b.facility, key),
                           "name": name, "mode": "instance"}), merge=True)
    return b.ref(place) if place else None


def _dispense_type(rxd: Segment) -> dict | None:
    """RXD-33 (table 0484)."""
    code = dt.present(rxd.value(33, 1)).upper()
    if not code:
        return None
    display = DISPENSE_TYPES.get(code)
    if display is None:
        text = dt.present(rxd.value(33, 2)) or code
        return {"text": text}
    return {"coding": [{"system": DISPENSE_TYPE, "code": code, "display": display}]}


def _dispense_dosage(b: Build, order: PharmacyOrder, rxd: Segment) -> list[dict]:
    """The route, site and method of the RXD's RXR (else the order's), the order's timing,
    and RXD-12 total daily dose."""
    rxr = next(iter(order.routes(rxd, order.first("RXE"), order.first("RXO"))), None)
    plans = schedules(b, order.orc, order.first("RXE") or rxd, order.timings()) \
        if order.timings() else []
    shared = compact({
        "route": rx.route(rxr, b.facility) if rxr else None,
        "site": site(b, rxr),
        "method": first_concept(rxr, 4, b.facility) if rxr else None,
        "additionalInstruction": codeable_concepts(rxr, 5, b.facility) if rxr else None,
        "maxDosePerPeriod": _daily_dose(b, rxd, 12),
    })
    found = []
    for plan in plans or [rx.Schedule(None)]:
        dosage = compact({**shared, "text": plan.text, "timing": plan.timing,
                          "asNeededBoolean": True if plan.as_needed else None})
        if dosage:
            found.append(dosage)
    return found


def _dispense_substitution(b: Build, rxd: Segment) -> dict | None:
    """RXD-11 (table 0167): whether a substitute was dispensed, and which kind."""
    code = dt.present(rxd.value(11)).upper()
    if not code:
        return None
    if code not in WAS_SUBSTITUTED:
        return tolerate(MappingError("is not a substitution status this mapping reads "
                                     "(table 0167: N, G, T, 0, 1)", field=b.field(rxd, 11)))
    v3_code, v3_display, v2_display = _DISPENSED_SUBSTITUTION[code]
    return {"wasSubstituted": WAS_SUBSTITUTED[code], "type": {"coding": [
        {"system": rx.V3_SUBSTITUTION, "code": v3_code, "display": v3_display},
        {"system": tables.V2_0167, "code": code, "display": v2_display}]}}
