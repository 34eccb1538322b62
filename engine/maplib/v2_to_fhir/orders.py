"""ORC/OBR (or ORC alone) as a ServiceRequest, the same order however it reaches us.

The id follows `engine.maplib.v2_orders`' key rules, as `hl7v2-orm-to-fhir@1` does: uuid5
of the placer's facility and the placer order number (ORC-2, else OBR-2), else the filler
number (ORC-3, else OBR-3). In an order message (ORM, OML, OMG) the sender is the placer;
in a result message (ORU, OUL) the receiver (MSH-6, else MSH-5) is, so a result's
ServiceRequest is the very order the order feed made.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import guard, tolerate
from engine.maplib import v2_clinical
from engine.maplib.fhir import compact, distinct, resource_id
from engine.maplib.v2_codes import codeable_concepts, first_concept, subcomponent_concept
from engine.maplib.v2_fhir import annotations
from engine.maplib.v2_orders import (
    ORDER_CONTROL_STATUS,
    ORDER_STATUS,
    OrderGroup,
    keyed,
    leading_notes,
    order_groups,
    order_numbers,
    section_categories,
)
from engine.maplib.v2_to_fhir import clinical, financial, people, results, specimens, visit
from engine.maplib.v2_to_fhir.frame import Build
from engine.maplib.v2_to_fhir.order_keys import (
    RESULT_TYPES,
    filler_facility,
    group_of,
    order_key,
    placer_facility,
    request_id,
)
from engine.maplib.v2_to_fhir.provenance import finish
from engine.mapping_base import Skip

__all__ = ["RESULT_TYPES", "filler_facility", "group_of", "order_key", "placer_facility",
           "request_id", "service_request"]

# ORC-1 codes that change an order already placed: their ORC-9 is when the change was
# made, not when the order was written, so it is not authoredOn.
CHANGE_CONTROLS = frozenset({"CA", "CR", "DC", "DR", "OC", "OD", "DF", "HD", "HR", "OH", "SC",
                             "RL", "RR", "XO", "XR", "XX", "UA", "UC", "UD", "UH", "UM",
                             "UN", "UX", "OE", "OF", "OR"})
# OBR-25 result status, for a result message whose ORC says nothing of the order.
RESULT_ORDER_STATUS = {"F": "completed", "C": "completed", "X": "revoked", "P": "active",
                       "R": "active", "I": "active", "S": "active", "A": "active"}
# Priorities senders use outside table 0485 that FHIR's request-priority names.
SENDER_PRIORITY = {"URGENT": "urgent", "URG": "urgent", "U": "urgent"}
# ORC-29 order type (table 0482): inpatient or outpatient order.
ORDER_TYPE = {"I": "Inpatient Order", "O": "Outpatient Order"}
V2_0482 = tables.V2_SYSTEM + "0482"


# ---- the ServiceRequest -----------------------------------------------------------------


def service_request(
    b: Build, orc: Segment | None, obr: Segment | None, *,
    tq1: Segment | None = None, specimens: Iterable[dict] = (),
    notes: Iterable[Segment] = (), reasons: Iterable[Segment] = (),
    supporting: Iterable[dict] = (), conditions: Iterable[dict] = (),
) -> dict | None:
    """The ServiceRequest of an ORC/OBR pair (either may be None), kept in `b`; None
    when both are. `tq1` is the order's timing (else the first TQ1 of its group),
    `specimens`, `notes` (NTE), `reasons` (DG1, as reason codes), `conditions` (the
    Conditions of those DG1, as reason references) and `supporting` (Observations)
    what the caller found around it. Needs `b.patient`."""
    if orc is None and obr is None:
        return None
    if b.patient is None:
        raise MappingError("the message has no patient for the order", field="PID-3")
    if tq1 is None:
        group = group_of(b, orc or obr)
        tq1 = next((s for s in group.body if s.name == "TQ1"), None) if group else None
    numbers = order_numbers(orc, obr, placer_authority=placer_facility(b),
                            filler_authority=filler_facility(b))
    request = {
        "resourceType": "ServiceRequest",
        "id": request_id(b, orc, obr),
        "identifier": _identifiers(b, numbers.identifiers(), obr),
        "requisition": dt.ei_to_identifier(dt.first_rep(orc, 4), placer_facility(b),
                                           tables.PLACER_GROUP_NUMBER),
        "basedOn": _parent(b, obr),
        "status": request_status(b, orc, obr),
        "intent": _intent(orc, obr),
        "category": _category(b, obr),
        "priority": priority(b, tq1, orc, obr),
        "code": first_concept(obr, 4, b.facility) or _code_not_sent(),
        "orderDetail": codeable_concepts(obr, 46, b.facility)
        + codeable_concepts(obr, 47, b.facility),
        "quantityQuantity": _quantity(b, tq1, orc),
        "subject": b.patient_ref(),
        "encounter": b.encounter_ref(),
        **occurrence(b, tq1, orc, obr),
        "authoredOn": authored_on(b, orc),
        "requester": _requester(b, orc, obr),
        "locationCode": _location_code(orc),
        "locationReference": _locations(b, orc),
        "reasonCode": _reasons(b, obr, reasons),
        "reasonReference": [b.ref(c) for c in conditions],
        "supportingInfo": [b.ref(r) for r in supporting],
        "specimen": [b.ref(s) for s in specimens],
        "bodySite": _body_site(b, obr),
        "note": annotations(notes) + _clinical_information(obr),
    }
    return b.add(compact(request))


LAB_TYPES = frozenset({"OML", "OUL", "ORU"})


def _category(b: Build, obr: Segment | None) -> list[dict]:
    """OBR-24 (v2-0074; LAB beside a laboratory section); a laboratory message's order
    without one is LAB, another message's has none (not every order is a lab test)."""
    if obr is None:
        return []
    if _value(obr, 24) or b.type in LAB_TYPES:
        return section_categories(obr.value(24))
    return []


def _section(b: Build, obr: Segment | None) -> str | None:
    """The order's diagnostic service section (OBR-24), "" for a laboratory message's
    order without one, else None: what `results.category` needs to tell whether the
    order's own OBX are a lab order's."""
    if obr is None:
        return None
    return _value(obr, 24) or ("" if b.type in LAB_TYPES else None)


def _clinical_information(obr: Segment | None) -> list[dict]:
    """OBR-13 relevant clinical information, kept as a note (free text in most feeds)."""
    text = _value(obr, 13)
    return [{"text": f"Relevant clinical information: {text}"}] if text else []


def request_status(b: Build, orc: Segment | None, obr: Segment | None) -> str:
    """ORC-5 (table 0038) when valued and known, else ORC-1 (table 0119), else OBR-25 (a
    final result completes the order, as a status change SC often says only there);
    else unknown (the element is required)."""
    status = ORDER_STATUS.get(_value(orc, 5).upper())
    if status:
        return status
    control = _value(orc, 1).upper()
    if control in ORDER_CONTROL_STATUS:
        return ORDER_CONTROL_STATUS[control]
    return RESULT_ORDER_STATUS.get(_value(obr, 25).upper(), "unknown")


# ---- elements ---------------------------------------------------------------------------


def _reps(segment: Segment | None, field: int) -> list:
    return segment.repetitions(field) if segment is not None else []


def _value(segment: Segment | None, field: int, component: int = 1) -> str:
    return dt.present(segment.value(field, component)) if segment is not None else ""


_DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"


def _code_not_sent() -> dict:
    """What is ordered, when the message does not say (an ORC alone, an empty OBR-4):
    US Core requires ServiceRequest.code, and a data-absent-reason is how it is said."""
    return {"extension": [{"url": _DATA_ABSENT, "valueCode": "unknown"}]}


def _parent(b: Build, obr: Segment | None) -> list[dict]:
    """OBR-29 parent order (EIP: placer's^filler's number) as a logical reference by the
    parent's placer (else filler) number: the parent is not in this message."""
    if obr is None or not obr.repetitions(29):
        return []
    parts = [([obr.value(29, 1, s) for s in (1, 2, 3, 4)], tables.PLACER_IDENTIFIER,
              placer_facility(b)),
             ([obr.value(29, 2, s) for s in (1, 2, 3, 4)], tables.FILLER_IDENTIFIER,
              filler_facility(b))]
    for values, kind, authority in parts:
        identifier = dt.ei_parts_to_identifier(values, authority, kind)
        if identifier is not None:
            return [{"type": "ServiceRequest", "identifier": identifier}]
    return []


def _intent(orc: Segment | None, obr: Segment | None) -> str:
    """reflex-order for OBR-11 G (an order the lab generated from a result), filler-order
    for ORC-1 SN (the filler placed it and asks for a placer number), else order."""
    if _value(obr, 11).upper() == "G":
        return "reflex-order"
    return "filler-order" if _value(orc, 1).upper() == "SN" else "order"


def _identifiers(b: Build, numbers: list[dict], obr: Segment | None) -> list[dict]:
    """Placer (PLAC) and filler (FILL) numbers (ORC's, else OBR's), then OBR-2/OBR-3 when
    they differ from ORC's and OBR-53 alternate placer numbers, without repeats."""
    found = list(numbers)
    if obr is None:
        return found
    extra = [(rep, tables.PLACER_IDENTIFIER, placer_facility(b))
             for rep in obr.repetitions(2)[:1] + obr.repetitions(53)]
    extra += [(rep, tables.FILLER_IDENTIFIER, filler_facility(b))
              for rep in obr.repetitions(3)[:1]]
    for rep, kind, authority in extra:
        more = dt.ei_to_identifier(rep, authority, kind)
        if more and all((more["system"], more["value"]) != (i["system"], i["value"])
                        for i in found):
            found.append(more)
    return found


def priority(b: Build, tq1: Segment | None, orc: Segment | None,
              obr: Segment | None) -> str | None:
    """TQ1-9, else ORC-7.6, else OBR-27.6, else OBR-5; S stat, A asap, R routine. A code
    outside those is a warning, not a guess."""
    for segment, field, component in ((tq1, 9, 1), (orc, 7, 6), (obr, 27, 6), (obr, 5, 1)):
        code = _value(segment, field, component).upper()
        if code:
            found = tables.PRIORITY.get(code) or SENDER_PRIORITY.get(code)
            if found is None and code not in ("P", "C", "T", "PRN"):
                assert segment is not None
                place = b.field(segment, field) + ("" if component == 1 else f".{component}")
                return tolerate(MappingError("is not a priority code (S, A, R) this mapping "
                                             "knows", field=place))
            return found
    return None


def _quantity(b: Build, tq1: Segment | None, orc: Segment | None) -> dict | None:
    """TQ1-2 (CQ), else ORC-7.1: how many of the service are asked for."""
    if tq1 is not None and _value(tq1, 2):
        number = dt.to_fhir_decimal(tq1.value(2, 1), b.field(tq1, 2))
        unit = dt.present(tq1.value(2, 2))
        return compact({"value": number, "unit": unit}) if number is not None else None
    if orc is not None and _value(orc, 7):
        number = dt.to_fhir_decimal(orc.value(7, 1), b.field(orc, 7) + ".1")
        return {"value": number} if number is not None else None
    return None


def occurrence(b: Build, tq1: Segment | None, orc: Segment | None,
                obr: Segment | None) -> dict:
    """When the service is wanted: TQ1 as a Timing (`_tq1_timing`) or, when it says only
    when to start, a dateTime; else ORC-7.4/7.5, OBR-27.4/5, ORC-15 order effective
    time, OBR-6 requested time, OBR-7/8 observation time."""
    if tq1 is not None:
        found = _tq1_timing(b, tq1)
        if found:
            return found
    for segment, field in ((orc, 7), (obr, 27)):
        if segment is not None and (dt.present(segment.value(field, 4))
                                    or dt.present(segment.value(field, 2))):
            place = b.field(segment, field)
            start = dt.to_fhir_datetime(segment.value(field, 4), place + ".4", b.offset)
            end = dt.to_fhir_datetime(segment.value(field, 5), place + ".5", b.offset)
            interval = dt.present(segment.value(field, 2))
            if interval:  # the TQ's repeat pattern (QD, Q4H, BID...): a Timing
                bounds = compact({"start": start, "end": end})
                return {"occurrenceTiming": compact({
                    "repeat": {"boundsPeriod": bounds} if bounds else None,
                    "code": {"text": interval}})}
            if start and end and start != end:
                return {"occurrencePeriod": {"start": start, "end": end}}
            if start:
                return {"occurrenceDateTime": start}
    for segment, field, end_field in ((orc, 15, 0), (obr, 6, 0), (obr, 7, 8)):
        if segment is not None and _value(segment, field):
            start = dt.to_fhir_datetime(segment.value(field), b.field(segment, field), b.offset)
            end = (dt.to_fhir_datetime(segment.value(end_field), b.field(segment, end_field),
                                       b.offset) if end_field else None)
            if start and end and start != end:
                return {"occurrencePeriod": {"start": start, "end": end}}
            if start:
                return {"occurrenceDateTime": start}
    return {}


# CQ units of time (TQ1-6, TQ1-13) -> UCUM units FHIR's Timing accepts.
TIME_UNITS = {"S": "s", "SEC": "s", "MIN": "min", "H": "h", "HR": "h", "HOUR": "h",
              "D": "d", "DAY": "d", "WK": "wk", "W": "wk", "WEEK": "wk", "MO": "mo",
              "MONTH": "mo", "A": "a", "Y": "a", "YR": "a", "YEAR": "a"}


def _tq1_timing(b: Build, tq1: Segment) -> dict:
    """TQ1-7/8 start and end as boundsPeriod (else TQ1-6 service duration as
    boundsDuration), TQ1-14 total occurrences as count, TQ1-13 occurrence duration,
    TQ1-3 repeat pattern as the Timing's code; only a start: occurrenceDateTime."""
    start = dt.to_fhir_datetime(tq1.value(7), b.field(tq1, 7), b.offset)
    end = dt.to_fhir_datetime(tq1.value(8), b.field(tq1, 8), b.offset)
    bounds = _time_quantity(b, tq1, 6)
    each = _time_quantity(b, tq1, 13)
    pattern = first_concept(tq1, 3, b.facility)
    repeat = compact({
        "boundsPeriod": compact({"start": start, "end": end}) if end or not bounds else None,
        "boundsDuration": bounds if not end else None,
        "count": _count(b, tq1),
        "duration": each["value"] if each else None,
        "durationUnit": each["code"] if each else None,
    })
    if set(repeat) <= {"boundsPeriod"} and not end and not pattern:
        return {"occurrenceDateTime": start} if start else {}
    return {"occurrenceTiming": compact({"repeat": repeat, "code": pattern})}


def _time_quantity(b: Build, tq1: Segment, field: int) -> dict | None:
    """A CQ of time (6^wk) as a Duration; a unit that is not one of time is a warning."""
    if not _value(tq1, field):
        return None
    number = dt.to_fhir_decimal(tq1.value(field, 1), b.field(tq1, field))
    unit = TIME_UNITS.get(dt.present(tq1.value(field, 2)).upper())
    if number is None:
        return None
    if unit is None:
        return tolerate(MappingError("has no unit of time this mapping knows (s, min, h, "
                                     "d, wk, mo, a)", field=b.field(tq1, field)))
    return {"value": number, "unit": unit, "system": tables.UCUM, "code": unit}


def _count(b: Build, tq1: Segment) -> int | None:
    text = _value(tq1, 14)
    if not text:
        return None
    if text.isdecimal() and int(text) > 0:
        return int(text)
    return tolerate(MappingError("is not a positive whole number of occurrences",
                                 field=b.field(tq1, 14)))


def authored_on(b: Build, orc: Segment | None) -> str | None:
    """ORC-9, unless this ORC changes an order already placed (see CHANGE_CONTROLS)."""
    if orc is None or _value(orc, 1).upper() in CHANGE_CONTROLS:
        return None
    return dt.to_fhir_datetime(orc.value(9), b.field(orc, 9), b.offset)


def _requester(b: Build, orc: Segment | None, obr: Segment | None) -> dict | None:
    """ORC-12 ordering provider, else OBR-16, as a Practitioner in the role of ordering
    provider (a PractitionerRole, at the ORC-21 ordering facility when one is sent); the
    facility alone when no person is named."""
    ordering = people.practitioner(b, dt.first_rep(orc, 12))
    also = people.practitioner(b, dt.first_rep(obr, 16))
    person = ordering or also
    if person is not None:
        _contact_details(person, orc, obr)
    facility = ordering_facility(b, orc)
    if person is not None:
        return b.ref(practitioner_role(b, person, facility, ORDERING_PROVIDER))
    return b.ref(facility) if facility is not None else None


def coded_organization(b: Build, segment: Segment | None, field: int) -> dict | None:
    """An Organization a CE/CWE names by code and text (ORC-17 entering organization,
    RQ1-2 manufacturer, RQ1-4 vendor, RQD-9 deliver-to), kept once in `b`."""
    if segment is None:
        return None
    code, text = dt.present(segment.value(field, 1)), dt.present(segment.value(field, 2))
    if not code and not text:
        return None
    identifier = ({"system": people.local_system(b, "organization"), "value": code}
                  if code else None)
    return people.organization(b, text, identifier)


def _contact_details(person: dict, orc: Segment | None, obr: Segment | None) -> None:
    """ORC-24 ordering provider address and ORC-14 call back phone (else OBR-17, the
    order callback phone), on the ordering Practitioner when it has none."""
    address = [a for a in (dt.xad_to_address(r) for r in _reps(orc, 24)) if a]
    phones = [t for t in (dt.xtn_to_contact_point(r, "work")
                          for r in _reps(orc, 14) or _reps(obr, 17)) if t]
    if address:
        person.setdefault("address", address)
    if phones:
        person.setdefault("telecom", phones)


# Table 0443: the role in which ORC-12 (RXE-13, RXO-14) acts, as the reference converter
# and the v2-to-FHIR IG's ROL mapping code a PractitionerRole.
ORDERING_PROVIDER = {"coding": [{"system": tables.V2_0443, "code": "OP",
                                 "display": "Ordering Provider"}]}


def practitioner_role(b: Build, person: dict, organization: dict | None,
                      code: dict | None = None) -> dict:
    """One PractitionerRole per person and organization (or none), kept once in `b`;
    `code` the role it acts in (table 0443)."""
    key = {"system": f"Practitioner/{person['id']}",
           "value": organization["id"] if organization else "no-organization"}
    role = b.add(compact({
        "resourceType": "PractitionerRole",
        "id": resource_id("PractitionerRole", b.facility, key),
        "practitioner": b.ref(person),
        "organization": b.ref(organization) if organization else None,
        "code": [code] if code else None,
    }), merge=True)
    assert role is not None
    return role


def ordering_facility(b: Build, orc: Segment | None) -> dict | None:
    """ORC-21 (XON) as an Organization, with ORC-22 address and ORC-23 phone."""
    org = people.xon_organization(b, dt.first_rep(orc, 21))
    if orc is not None and org is not None:
        address = [a for a in (dt.xad_to_address(r) for r in orc.repetitions(22)) if a]
        phones = [t for t in (dt.xtn_to_contact_point(r, "work")
                              for r in orc.repetitions(23)) if t]
        if address:
            org.setdefault("address", address)
        if phones:
            org.setdefault("telecom", phones)
    return org


def _location_code(orc: Segment | None) -> list[dict]:
    code = _value(orc, 29).upper()
    if code in ORDER_TYPE:
        return [{"coding": [{"system": V2_0482, "code": code, "display": ORDER_TYPE[code]}]}]
    return [{"text": code}] if code else []


def _locations(b: Build, orc: Segment | None) -> list[dict]:
    """ORC-13 enterer's location, where the order was placed, as a Location."""
    where = visit.location(b, dt.first_rep(orc, 13))
    return [b.ref(where)] if where is not None else []


def _reasons(b: Build, obr: Segment | None, dg1s: Iterable[Segment]) -> list[dict]:
    """OBR-31 reasons for study, then DG1-3 diagnoses, without repeats."""
    found = codeable_concepts(obr, 31, b.facility)
    for dg1 in dg1s:
        found += codeable_concepts(dg1, 3, b.facility)
    return distinct(found)


def _body_site(b: Build, obr: Segment | None) -> list[dict]:
    """OBR-15.4, the body site of an old (v2.3-2.4) specimen source."""
    site = subcomponent_concept(obr, 15, 4, b.facility) if _value(obr, 15, 4) else None
    return [site] if site else []


def keyed_on_order(b: Build, orc: Segment | None, obr: Segment | None, *parts: str) -> dict:
    """A key derived from the order's (for what hangs off it: a specimen without an id)."""
    return keyed(order_key(b, orc, obr), *parts)


# ---- a whole order group ----------------------------------------------------------------

ORDER_NOTE_ANCHORS = frozenset({"", "OBR", "TQ1", "TQ2"})


def service_order(b: Build, group: OrderGroup) -> dict | None:
    """An ORC/OBR group of an order message (ORM, OML, OMG) as its ServiceRequest with
    what the group holds: Specimens (SPM with SAC, else OBR-15), Conditions (DG1, as
    reasons), the order's own OBX (ask-at-order-entry answers, as supportingInfo) and the
    OBX of each specimen, the NTE after ORC/OBR as notes and its PRT participants; plus
    a Provenance naming who entered (ORC-10, PRT EP) and verified (ORC-11, PRT VP) it."""
    orc, obr, body = group
    key = order_key(b, orc, obr)
    spms = [s for s in body if s.name == "SPM"]
    pairs = b.each("SPM", lambda spm, n: (spm, specimens.specimen(b, spm, key=key)), spms)
    made = {id(spm): specimen for spm, specimen in pairs if specimen is not None}
    found = list(made.values())
    if not spms and obr is not None:
        old = specimens.from_obr15(b, obr, key=key)
        found = [old] if old is not None else []
    elif obr is not None:
        _collected_by(b, obr, found)
    dg1s = [s for s in body if s.name == "DG1"]
    request = service_request(
        b, orc, obr, tq1=next((s for s in body if s.name == "TQ1"), None),
        specimens=found, notes=leading_notes(body, ORDER_NOTE_ANCHORS), reasons=(),
        conditions=order_conditions(b, dg1s))
    if request is None:
        return None
    if dg1s and "reasonReference" not in request:  # a DG1 that made no Condition
        request["reasonCode"] = _reasons(b, obr, dg1s)
    asked, by_specimen = _order_observations(body)
    context = results.Context(key=keyed(key, "AOE"), section=_section(b, obr), ordered=True,
                              otherwise="survey")
    supporting = results.observations(b, asked, based_on=[request], context=context)
    for n, (spm, obxs) in enumerate(by_specimen, start=1):  # OBX-1 restarts per specimen
        about = context._replace(key=keyed(key, "AOE", f"SPM{n}"))
        supporting += results.observations(b, obxs, based_on=[request],
                                           specimen=made.get(id(spm)), context=about)
    if supporting:
        request["supportingInfo"] = [b.ref(o) for o in supporting]
    prts = _participations(body)
    _participants(b, request, prts)
    order_provenance(b, orc, request, prts)
    return request


# ---- PRT participations (v2.7+) -------------------------------------------------------------

# PRT-4 (table 0912) codes an order's PRT is read for.
ORDERING, REFERRED_TO, PERFORMING_ORG = "OP", "RT", "PO"
ENTERING, VERIFYING = "EP", "VP"


def _participations(body: list[Segment]) -> list[Segment]:
    """The PRT of the order itself (those before its first specimen or observation),
    but for one whose PRT-2 action is DE: that participant was removed."""
    found = []
    for seg in body:
        if seg.name in ("SPM", "OBX"):
            break
        if seg.name == "PRT" and _value(seg, 2).upper() != "DE":
            found.append(seg)
    return found


def _role(prt: Segment) -> str:
    return _value(prt, 4).upper()


def _participants(b: Build, request: dict, prts: list[Segment]) -> None:
    """PRT-4 RT referred-to provider (PRT-5) and PO performing organization (PRT-8) as
    performers; OP ordering provider as requester when ORC-12 and OBR-16 name none."""
    performers: list[dict] = []
    for prt in prts:
        role = _role(prt)
        if role == REFERRED_TO:
            who = people.practitioner(b, dt.first_rep(prt, 5))
        elif role == PERFORMING_ORG:
            who = _prt_organization(b, prt)
        elif role == ORDERING and "requester" not in request:
            who = people.practitioner(b, dt.first_rep(prt, 5))
            if who is not None:
                request["requester"] = b.ref(who)
            continue
        else:
            continue
        if who is not None and b.ref(who) not in performers:
            performers.append(b.ref(who))
    if performers:
        request["performer"] = performers


def _prt_organization(b: Build, prt: Segment) -> dict | None:
    """PRT-8 participating organization (XON)."""
    return people.xon_organization(b, dt.first_rep(prt, 8))


def _collected_by(b: Build, obr: Segment, made: list[dict]) -> None:
    """OBR-10 collector (and OBR-7 collection time, when SPM-17 says none) on the SPM
    Specimens of the order: SPM has no field for who drew the sample."""
    collector = people.practitioner(b, dt.first_rep(obr, 10))
    when = (dt.to_fhir_datetime(obr.value(7), b.field(obr, 7), b.offset)
            if _value(obr, 7) else None)
    for specimen in made:
        collection = specimen.setdefault("collection", {})
        if collector is not None:
            collection.setdefault("collector", b.ref(collector))
        if when and "collectedPeriod" not in collection:
            collection.setdefault("collectedDateTime", when)
        if not collection:
            del specimen["collection"]


def order_conditions(b: Build, dg1s: list[Segment]) -> list[dict]:
    """The Conditions `clinical.conditions` made of these DG1 (called once per message),
    found by the id the released DG1 converter derives."""
    if not dg1s or b.patient is None:
        return []
    if not b.resources("Condition"):
        clinical.conditions(b)
    visit_id = b.encounter["id"] if b.encounter is not None else None
    found = []
    for dg1 in dg1s:
        try:
            rid = v2_clinical.condition(dg1, b.facility, b.patient["id"], visit_id,
                                        b.offset)["id"]
        except MappingError:
            continue  # already a warning from clinical.conditions
        kept = next((c for c in b.resources("Condition") if c["id"] == rid), None)
        if kept is not None and kept not in found:
            found.append(kept)
    return found


def _order_observations(body: list[Segment]) -> tuple[list[Segment], list[tuple[Segment, list]]]:
    """The OBX of the order itself (before any SPM) and those of each SPM (after it,
    its SAC containers' included)."""
    asked: list[Segment] = []
    by_specimen: list[tuple[Segment, list]] = []
    current: list | None = None
    for seg in body:
        if seg.name == "SPM":
            current = []
            by_specimen.append((seg, current))
        elif seg.name == "OBX":
            (asked if current is None else current).append(seg)
    return asked, [(s, o) for s, o in by_specimen if o]


_AGENT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
_V2_0119 = tables.V2_SYSTEM + "0119"


def order_provenance(b: Build, orc: Segment | None, request: dict,
                     prts: Iterable[Segment] = ()) -> dict | None:
    """ORC-10 entered by, ORC-11 verified by and ORC-19 action by (on behalf of the
    ORC-17 entering organization, else the sending facility MSH-4), whom FHIR's
    ServiceRequest has no element for, as a Provenance of the order: recorded at ORC-9
    (else MSH-7), activity ORC-1, reason ORC-16 (R4's ServiceRequest has no
    statusReason), occurred at ORC-15 (when the order or its change takes effect). An
    order control that changes a placed order (CA, DC, HD, XO, ...) gets one too, so
    when the order was cancelled or changed is kept."""
    if orc is None:
        return None
    agents = []
    for field, code, display in ((10, "enterer", "Enterer"), (11, "verifier", "Verifier"),
                                 (19, "performer", "Performer")):
        who = people.practitioner(b, dt.first_rep(orc, field))
        if who is not None:
            agents.append({"type": {"coding": [{"system": _AGENT_TYPE, "code": code,
                                                "display": display}]},
                           "who": b.ref(who)})
    for prt in prts:  # v2.7+ PRT EP entering and VP verifying providers
        kind = {ENTERING: ("enterer", "Enterer"), VERIFYING: ("verifier", "Verifier")}.get(
            _role(prt))
        who = people.practitioner(b, dt.first_rep(prt, 5)) if kind else None
        if kind and who is not None:
            agents.append({"type": {"coding": [{"system": _AGENT_TYPE, "code": kind[0],
                                                "display": kind[1]}]},
                           "who": b.ref(who)})
    # US Core asks whom a person acted for: the entering organization, else the sender
    entering = coded_organization(b, orc, 17) or (
        people.hd_organization(b, b.message.segments[0], 4) if agents else None)
    if entering is not None:
        for agent in agents:
            agent["onBehalfOf"] = b.ref(entering)
    control = _value(orc, 1).upper()
    reason = first_concept(orc, 16, b.facility)
    changed = control in CHANGE_CONTROLS and bool(_value(orc, 9))
    effective = dt.to_fhir_datetime(orc.value(15), b.field(orc, 15), b.offset)
    if not agents and not changed and reason is None and effective is None:
        return None
    recorded = (dt.to_fhir_instant(orc.value(9), b.field(orc, 9), b.offset)
                or dt.to_fhir_instant(b.sent, "MSH-7", b.offset))
    if recorded is None:
        return None
    if not agents:  # who changed the order is not said: the system that sent it
        msh = b.message.segments[0]
        sender = " ".join(p for p in (dt.present(msh.value(3, 1)), b.facility) if p)
        agents.append({"type": {"coding": [{"system": _AGENT_TYPE, "code": "author",
                                            "display": "Author"}]},
                       "who": {"display": sender or "sending system"}})
    return b.add(compact({
        "resourceType": "Provenance",
        "id": resource_id("Provenance", b.facility,
                          keyed({"system": "ServiceRequest", "value": request["id"]},
                                control, recorded)),
        "target": [b.ref(request)],
        "occurredDateTime": effective,
        "recorded": recorded,
        "reason": [reason] if reason else None,
        "activity": {"coding": [{"system": _V2_0119, "code": control}]} if control else None,
        "agent": agents,
    }))


# ---- what every order message holds besides its orders -----------------------------------


def patient_group(b: Build) -> None:
    """PID (fails without one), PV1, NK1 (else PID-21's mother), AL1/IAM, DG1, IN1, GT1
    and FT1 of an order message, each as every builder maps it, and the PID-18 account."""
    people.patient(b)
    visit.encounter(b)
    people.related_persons(b)
    people.mother(b)
    clinical.allergies(b)
    clinical.conditions(b)
    financial.coverages(b)
    financial.guarantors(b)
    financial.charges(b)
    financial.patient_account(b)  # PID-18, as the ADT feed makes it


def first_patient(b: Build) -> Hl7Message:
    """The message up to a second PID, for the builder to read instead of the whole. An
    order message carries one patient; what follows another PID (a batch glued together)
    would be filed in the first patient's chart, so it is left out with a warning naming
    PID[2] (and reported as left behind)."""
    segments = b.message.segments
    pids = [i for i, s in enumerate(segments) if s.name == "PID"]
    if len(pids) < 2:
        return b.message
    tolerate(MappingError("is a second patient in an order message: its orders are left "
                          "out; split the batch upstream", field="PID[2]"))
    return Hl7Message(segments[:pids[1]], b.message.delimiters)


def without_prior_results(message: Hl7Message) -> Hl7Message:
    """The message before its PRIOR_RESULT groups (OML, OMG: a PV1 after the orders opens
    them). Those are earlier results sent for context, not orders: read as orders they
    would be new active ServiceRequests, so they are left behind (and reported so)."""
    segments = message.segments
    first_order = next((i for i, s in enumerate(segments) if s.name in ("ORC", "OBR")), None)
    if first_order is None:
        return message
    prior = next((i for i in range(first_order, len(segments))
                  if segments[i].name == "PV1"), None)
    if prior is None:
        return message
    return Hl7Message(segments[:prior], message.delimiters)


# OML events whose specimen (SPM, its OBX and SAC containers) heads the orders done on it:
# O33 specimen-oriented, O35 specimen- and container-oriented.
SPECIMEN_FIRST = frozenset({"O33", "O35"})


def under_specimens(message: Hl7Message) -> list[OrderGroup]:
    """The order groups of a specimen-first OML (O33, O35), each with the SPM block it
    sits under moved after its own segments, so every order reads its specimen as an
    O21 order does (`service_order`: the SPM, then the OBX about it; those OBX with the
    specimen's first order only, so they are mapped once)."""
    groups: list[tuple[OrderGroup, list[Segment]]] = []
    block: list[Segment] = []
    heading = False  # inside an SPM block, before its first order
    for seg in message.segments:
        if seg.name == "SPM":
            block, heading = [seg], True
        elif seg.name in ("ORC", "OBR"):
            heading = False
            last = groups[-1][0] if groups else None
            if seg.name == "OBR" and last is not None and last.orc is not None \
                    and last.obr is None:
                groups[-1] = (OrderGroup(last.orc, seg, [*last.body, seg]), groups[-1][1])
            else:
                groups.append((OrderGroup(seg if seg.name == "ORC" else None,
                                          seg if seg.name == "OBR" else None, [seg]), block))
        elif heading:
            block.append(seg)
        elif groups:
            groups[-1][0].body.append(seg)
    found: list[OrderGroup] = []
    for n, (group, spm) in enumerate(groups):
        first = n == 0 or groups[n - 1][1] is not spm  # its OBX once, with the first order
        block = spm if first else [s for s in spm if s.name != "OBX"]
        found.append(OrderGroup(group.orc, group.obr, [*group.body, *block]))
    return found


def order_message(message: Hl7Message, kind: str, events: tuple[str, ...]) -> dict | Skip:
    """An OML or OMG (ORC/OBR order groups only) as a Bundle: the patient group, then
    one `service_order` per group, each guarded (a group that cannot be mapped costs
    only that order). A message without any order maps its patient, with a warning."""
    b = Build(message, kind, default_event=events[0])
    if b.event not in events:
        return Skip(f"{kind}^{b.event or '(no event)'} is not an event this mapping reads")
    b.message = without_prior_results(first_patient(b))
    groups = (under_specimens(b.message) if b.event in SPECIMEN_FIRST
              else order_groups(b.message))
    patient_group(b)
    if not groups:  # its patient is still news (as an ADT would say it); fails without PID
        tolerate(MappingError("the message has no ORC or OBR segment: it carries no order, "
                              "only its patient is mapped", field="ORC"))
    for group in groups:
        anchor = group.orc if group.orc is not None else group.obr
        assert anchor is not None
        guard(anchor.name, b.occurrence(anchor), lambda g=group: service_order(b, g))
    return finish(b)
