"""Scheduling segments (SCH, TQ1, RGS, AIS, AIG, AIL, AIP, NTE) as a FHIR R4 Appointment
and what it names: the ordered service (ServiceRequest), the people (Practitioner), the
places (Location) and the equipment (Device) it books.

Leniently: the strict rules of `engine.maplib.v2_scheduling` (hl7v2-siu-to-fhir@1) are
reused, but a timing field that cannot be read costs that field, never the appointment.
R4 still holds (app-2: start and end together; app-3: only proposed, cancelled and
waitlisted appointments may lack them), so an appointment whose end cannot be worked out
keeps its start in requestedPeriod and is sent as proposed (or cancelled, when the event
says it will not happen), and the warning says so.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import tolerate
from engine.maplib import v2_scheduling as sched
from engine.maplib.fhir import compact, distinct, resource_id
from engine.maplib.v2_codes import codeable_concepts, first_concept
from engine.maplib.v2_fhir import nte_text
from engine.maplib.v2_to_fhir import people, visit
from engine.maplib.v2_to_fhir.frame import Build

T = TypeVar("T")

# Trigger event -> Appointment.status. S16 (discontinued: an appointment in progress, or
# the rest of a series, will not go on) has no R4 status of its own; cancelled is what a
# receiver must do with it.
EVENT_STATUS: dict[str, str] = {**sched.EVENT_STATUS, "S16": "cancelled"}
STATUS_EVENTS = sched.STATUS_EVENTS | {"S16"}
# Statuses that say the appointment will not take place.
NOT_HAPPENING = frozenset({"cancelled", "noshow", "entered-in-error"})

# Table 0278 filler status of one resource (AIS-10, AIG-14, AIL-12, AIP-12) ->
# Appointment.participant.status.
PARTICIPANT_STATUS: dict[str, str] = {
    "PENDING": "tentative", "WAITLIST": "tentative", "BOOKED": "accepted",
    "STARTED": "accepted", "COMPLETE": "accepted", "OVERBOOK": "accepted",
    "BLOCKED": "accepted", "CANCELLED": "declined", "DELETED": "declined",
    "NOSHOW": "declined", "DC": "declined", "DISCONTINUED": "declined",
}
# TQ1-9 / SCH-11.6 priority (table 0485) -> Appointment.priority (1 the most urgent).
PRIORITY: dict[str, int] = {
    "S": 1, "STAT": 1, "A": 2, "ASAP": 2, "R": 3, "ROUTINE": 3, "P": 4, "PREOP": 4,
    "C": 5, "CALLBACK": 5, "T": 6, "TIMING CRITICAL": 6, "PRN": 7, "AS NEEDED": 7,
}
# Appointment.status -> the ServiceRequest status of the service an AIS books.
SERVICE_STATUS: dict[str, str] = {
    "proposed": "draft", "pending": "active", "booked": "active", "arrived": "active",
    "checked-in": "active", "waitlist": "on-hold", "fulfilled": "completed",
    "cancelled": "revoked", "noshow": "revoked", "entered-in-error": "entered-in-error",
}
# SCH fields naming the placer's, filler's and entering person, and their locations.
CONTACT_PEOPLE = (12, 16, 20)
CONTACT_PLACES = (15, 19, 22)


# ---- status and identity ------------------------------------------------------------------


# S18-S24 add, modify, cancel, discontinue or delete one service or resource of an
# appointment that stays: a modification (S14) of it, each resource's own action code
# (AIS-2 ... AIP-2) and filler status saying what became of that resource.
RESOURCE_EVENTS = frozenset({"S18", "S19", "S20", "S21", "S22", "S23", "S24"})


def status(b: Build, sch: Segment) -> str:
    """The event's status; for S12-S14 (and S18-S24) a SCH-25 filler status refines it."""
    if b.event in STATUS_EVENTS:
        sch.value(25)  # read: the event states the status whatever SCH-25 says
        return EVENT_STATUS[b.event]
    return sched.appointment_status("S14" if b.event in RESOURCE_EVENTS else b.event, sch)


def identifiers(b: Build, sch: Segment) -> list[dict]:
    """SCH-2 filler and SCH-1 placer appointment ids, then SCH-4 placer group number;
    none is a warning (a later S14/S15 cannot find such an appointment)."""
    try:
        found = sched.appointment_identifiers(sch, b.facility)
    except MappingError as error:
        found = tolerate(MappingError(
            f"{error.message}; the appointment is keyed on its patient and start instead, "
            "so a later update cannot find it", field=error.field), [])
    group = dt.ei_to_identifier(dt.first_rep(sch, 4), b.facility, tables.PLACER_GROUP_NUMBER)
    return [*found, group] if group else found


def appointment_id(b: Build, sch: Segment, found: list[dict]) -> str:
    """The v1 id (filler, else placer id in the facility), so v2 updates what v1 made;
    without either, the patient and the raw SCH-11 / first AIS keys it."""
    if found and found[0].get("type", {}).get("coding", [{}])[0].get("code") != "PGN":
        return sched.appointment_id(found, b.facility)
    patient = b.patient["id"] if b.patient else ""
    when = sch.value(11, 4) or next((s.value(4) for s in b.message.all("AIS")), "")
    return resource_id("Appointment", b.facility,
                       {"system": "patient-start", "value": f"{patient}|{when}"})


# ---- timing -------------------------------------------------------------------------------


def _lenient(read: Callable[..., T], *args: Any) -> T | None:
    """`read(*args)`, or None with a warning when a field cannot be read."""
    try:
        return read(*args)
    except MappingError as error:
        return tolerate(error)


def _instant(value: str, field: str, offset: str | None) -> str | None:
    """A DTM as an instant; a date that does not exist is one warning (not two)."""
    if dt.parse_dtm(value, field) is None:
        return None
    return _lenient(sched.instant, value, field, offset)


def _starts(sch: Segment, tq1: Segment | None, kept: list) -> list[tuple[str, str]]:
    """Where the start may be, in order: SCH-11.4, TQ1-7, each kept resource's start."""
    found = [("SCH-11", sch.value(11, 4))]
    if tq1 is not None:
        found.append(("TQ1-7", tq1.value(7)))
    for path, seg in kept:
        number = sched.RESOURCE_SEGMENTS[seg.name].start
        found.append((f"{path}-{number}", seg.value(number)))
    return found


def _first_instant(b: Build, candidates: list[tuple[str, str]]) -> tuple[str | None, str]:
    """The first candidate that reads as an instant; one that cannot is a warning."""
    for field, value in candidates:
        when = _instant(value, field, b.offset)
        if when is not None:
            return when, field
    return None, candidates[0][0] if candidates else "SCH-11"


def _duration(sch: Segment, tq1: Segment | None, kept: list) -> timedelta | None:
    """SCH-11.3, SCH-9/10, TQ1-6, then each kept resource's: the first that reads. All
    are read (one that cannot be is a warning), so none is reported as left behind."""
    readers = [
        lambda: sched._tq_duration(sch),
        lambda: sched.duration(sch.value(9), sched._unit(sch, 10), "SCH-9", "SCH-10"),
    ]
    if tq1 is not None:
        unit = dt.present(tq1.value(6, 2, 1)) or dt.present(tq1.value(6, 2, 2))
        readers.append(lambda: sched.duration(tq1.value(6, 1), unit, "TQ1-6", "TQ1-6"))
    for path, seg in kept:
        spot = sched.RESOURCE_SEGMENTS[seg.name]
        readers.append(lambda seg=seg, path=path, spot=spot: sched.duration(
            seg.value(spot.duration), sched._unit(seg, spot.units),
            f"{path}-{spot.duration}", f"{path}-{spot.units}"))
    found = [_lenient(read) for read in readers]
    return next((d for d in found if d is not None), None)


def kept_resources(message: Hl7Message) -> list[tuple[str, Segment]]:
    """(path, segment) of every AIS/AIG/AIL/AIP whose action code (field 2, table 0206)
    is not D, nor that of the RGS resource group it is in: an S14 lists what it removes."""
    found: list[tuple[str, Segment]] = []
    counts: dict[str, int] = {}
    group_removed = False
    for seg in message:
        if seg.name == "RGS":
            group_removed = dt.present(seg.value(2)).upper() == "D"
            continue
        if seg.name not in sched.RESOURCE_SEGMENTS:
            continue
        counts[seg.name] = n = counts.get(seg.name, 0) + 1
        if not group_removed and dt.present(seg.value(2)).upper() != "D":
            found.append((seg.name if n == 1 else f"{seg.name}[{n}]", seg))
    return found


def service_types(b: Build) -> list[dict]:
    """AIS-3, the service each kept AIS books."""
    found = (first_concept(seg, 3, b.facility) for _p, seg in kept_resources(b.message)
             if seg.name == "AIS")
    return [c for c in found if c]


def timing(b: Build, sch: Segment, status: str) -> tuple[dict, str]:
    """(start, end, minutesDuration or requestedPeriod elements, status): as v1 where the
    times read; otherwise what is valid, and a status R4 allows without times."""
    tq1 = b.message.segment("TQ1")
    kept = kept_resources(b.message)
    start, start_field = _first_instant(b, _starts(sch, tq1, kept))
    ends = [("SCH-11", sch.value(11, 5))] + ([("TQ1-8", tq1.value(8))] if tq1 else [])
    end, end_field = _first_instant(b, ends)
    length = _duration(sch, tq1, kept)
    minutes = sched._whole_minutes(length) if length is not None else None
    if start is not None and end is None and length is not None:
        end = sched._format_instant(datetime.fromisoformat(start) + length)
    if start is not None and end is not None:
        span = datetime.fromisoformat(end) - datetime.fromisoformat(start)
        if span >= timedelta(0):
            return compact({"start": start, "end": end, "minutesDuration":
                            minutes if minutes is not None else sched._whole_minutes(span)}
                           ), status
        backwards = True
        end = None
    else:
        backwards = False
    requested = compact({"start": start, "end": end})
    elements = compact({"minutesDuration": minutes,
                        "requestedPeriod": [requested] if requested else None})
    if status in sched.UNTIMED_STATUSES:
        return elements, status
    untimed = "cancelled" if status in NOT_HAPPENING else "proposed"
    why, field = (
        ("ends before the appointment starts", end_field) if backwards else
        ("gives a start but no end or duration that can be read", start_field) if start else
        ("gives no start time that can be read (nor do TQ1-7, AIS-4, AIG-8, AIL-6 or AIP-6)",
         "SCH-11"))
    tolerate(MappingError(
        f"{why}: R4 allows a {status} appointment only with start and end, so it is sent "
        f"as {untimed} without them" + (", its times in requestedPeriod" if requested else ""),
        field=field))
    return elements, untimed


def priority(b: Build, sch: Segment) -> int | None:
    """TQ1-9, else SCH-11.6 (table 0485) as a number, 1 the most urgent."""
    tq1 = b.message.segment("TQ1")
    code = dt.present(tq1.value(9, 1)) if tq1 is not None else ""
    code = code or dt.present(sch.value(11, 6))
    return PRIORITY.get(code.upper()) if code else None


# ---- participants -------------------------------------------------------------------------


def participant_status(segment: Segment, field: int) -> str:
    filler = dt.present(segment.value(field, 1)) or dt.present(segment.value(field, 2))
    return PARTICIPANT_STATUS.get(filler.upper().replace(" ", ""), "accepted")


# Where each resource segment gives its start as an offset from the appointment's start
# (amount, units; no units is minutes), used when it gives no start of its own.
OFFSETS: dict[str, tuple[int, int]] = {"AIS": (5, 6), "AIG": (9, 10), "AIL": (7, 8),
                                       "AIP": (7, 8)}


def _period(b: Build, seg: Segment, path: str, base: str | None) -> dict | None:
    """A resource segment's own start (else the appointment's start `base` plus its
    offset) and duration, as the participant's period."""
    spot = sched.RESOURCE_SEGMENTS[seg.name]
    start = _instant(seg.value(spot.start), f"{path}-{spot.start}", b.offset)
    amount_at, units_at = OFFSETS[seg.name]
    offset = _lenient(sched.duration, seg.value(amount_at), sched._unit(seg, units_at),
                      f"{path}-{amount_at}", f"{path}-{units_at}")
    if start is None and base is not None and offset is not None:
        start = sched._format_instant(datetime.fromisoformat(base) + offset)
    if start is None:
        return None
    length = _lenient(sched.duration, seg.value(spot.duration), sched._unit(seg, spot.units),
                      f"{path}-{spot.duration}", f"{path}-{spot.units}")
    end = (sched._format_instant(datetime.fromisoformat(start) + length)
           if length is not None else None)
    return compact({"start": start, "end": end})


def participants(b: Build, appointment: dict, start: str | None
                 ) -> tuple[list[dict], list[dict]]:
    """(participants, services): the Patient, then each kept AIP (Practitioner), AIL
    (Location) and AIG (Device); each kept AIS a ServiceRequest. A segment with action
    code D is a resource taken off the appointment and is left out. `start` is the
    appointment's, which resource offsets count from."""
    found: list[dict] = []
    if b.patient is not None:
        found.append({"actor": b.ref(b.patient), "status": "accepted"})
    services: list[dict] = []
    for path, seg in kept_resources(b.message):
        if seg.name == "AIS":
            services += b.each("AIS", lambda s, _n, p=path: service_request(
                b, s, p, appointment, start), [seg])
        else:
            found += b.each(seg.name, lambda s, _n, p=path: _participant(b, s, p, start),
                            [seg])
    return found, services


def _participant(b: Build, seg: Segment, path: str, base: str | None) -> dict | None:
    actor, kind, status_field = {
        "AIP": _person, "AIL": _place, "AIG": _thing}[seg.name](b, seg)
    if actor is None and kind is None:
        return None
    return compact({
        "type": [kind] if kind else None,
        "actor": actor,
        "status": participant_status(seg, status_field),
        "period": _period(b, seg, path, base),
    })


def _person(b: Build, seg: Segment) -> tuple[dict | None, dict | None, int]:
    """AIP-3 the person (a Practitioner), AIP-4 the role they play; AIP-12 status."""
    person = people.practitioner(b, dt.first_rep(seg, 3))
    return (b.ref(person) if person else None), first_concept(seg, 4, b.facility), 12


def _place(b: Build, seg: Segment) -> tuple[dict | None, dict | None, int]:
    """AIL-3 the place (a Location, AIL-4 its type, PL.9 its description); a PL with
    only a description is named by display. AIL-12 status."""
    rep = dt.first_rep(seg, 3)
    place = visit.location(b, rep)
    if place is None:
        label = sched.location_display(rep)
        return ({"display": label} if label else None), None, 12
    kind = first_concept(seg, 4, b.facility)
    if kind is not None and "type" not in place:
        place["type"] = [kind]
    description = dt.present(rep.value(9)) if rep is not None else ""
    if description and "description" not in place:
        place["description"] = description
    return b.ref(place), None, 12


def _thing(b: Build, seg: Segment) -> tuple[dict | None, dict | None, int]:
    """AIG-3 the resource (a Device named and coded by it), AIG-4 its type; AIG-14
    status."""
    code = first_concept(seg, 3, b.facility)
    kind = first_concept(seg, 4, b.facility)
    if code is None:
        return None, kind, 14
    coding = (code.get("coding") or [{}])[0]
    name = coding.get("display") or code.get("text") or coding.get("code")
    key = ({"system": coding["system"], "value": coding["code"]} if coding.get("code")
           else {"system": "name", "value": name.upper()})
    device = b.add(compact({
        "resourceType": "Device",
        "id": resource_id("Device", b.facility, key),
        "identifier": [dict(key)] if coding.get("code") else None,
        "deviceName": [{"name": name, "type": "user-friendly-name"}],
        "type": kind,
        "patient": None,
    }), merge=True)
    return b.ref(device), kind, 14


def service_request(b: Build, ais: Segment, path: str, appointment: dict,
                    base: str | None) -> dict | None:
    """The service an AIS books (AIS-3) as a ServiceRequest of the patient, at AIS-4,
    with the placer's and filler's supplemental information (AIS-11/12, such as "bring
    films") as orderDetail; an AIS without a service (or a message without a patient)
    makes none."""
    code = first_concept(ais, 3, b.facility)
    if code is None or b.patient is None:
        return None
    set_id = dt.present(ais.value(1)) or str(b.occurrence(ais))
    key = {"system": appointment["id"], "value": f"AIS|{set_id}"}
    when = _period(b, ais, path, base) or {}
    return b.add(compact({
        "resourceType": "ServiceRequest",
        "id": resource_id("ServiceRequest", b.facility, key),
        "status": SERVICE_STATUS.get(_service_status(ais, appointment["status"]), "active"),
        "intent": "order",
        "code": code,
        "subject": b.patient_ref(),
        "encounter": b.encounter_ref(),
        "occurrenceDateTime": when.get("start") if "end" not in when else None,
        "occurrencePeriod": when if "end" in when else None,
        "orderDetail": [*codeable_concepts(ais, 11, b.facility),
                        *codeable_concepts(ais, 12, b.facility)] or None,
    }))


def _service_status(ais: Segment, status: str) -> str:
    """AIS-10, this service's own filler status (table 0278), else the appointment's."""
    filler = dt.present(ais.value(10, 1)) or dt.present(ais.value(10, 2))
    return sched.FILLER_STATUS.get(filler.upper().replace(" ", ""), status)


def note_elements(b: Build) -> dict:
    """The appointment's NTEs by comment type, as v1 (`v2_scheduling.note_elements`),
    leaving out those that follow an OBX: they are that result's notes."""
    found: dict[str, list[str]] = {"comment": [], "description": [], "patientInstruction": []}
    owner = ""
    for seg in b.message:
        if seg.name != "NTE":
            owner = seg.name
            continue
        if owner == "OBX":
            continue
        text = nte_text(seg)
        kind = dt.present(seg.value(4, 1)).upper()
        if not text:
            continue
        if kind in sched.PATIENT_INSTRUCTION_NOTES:
            found["patientInstruction"].append(text)
        elif kind in sched.REASON_NOTES:
            found["description"].append(text)
        else:
            found["comment"].append(text)
    return {k: "\n".join(v) for k, v in found.items() if v}


# ---- contacts -----------------------------------------------------------------------------


def contacts(b: Build, sch: Segment) -> list[dict]:
    """SCH-12/16/20 (placer, filler and entering contact) each as a PractitionerRole of
    its Practitioner, with the phone (SCH-13/17/21) and place (SCH-15/19/22) that go with
    it; a place without a person is a Location alone. Supporting information, as the
    reference converter puts them."""
    found: list[dict] = []
    for person_at in CONTACT_PEOPLE:
        place_at = CONTACT_PLACES[CONTACT_PEOPLE.index(person_at)]
        person = people.practitioner(b, dt.first_rep(sch, person_at))
        place = visit.location(b, dt.first_rep(sch, place_at))
        phones = [p for p in (dt.xtn_to_contact_point(rep, "work")
                              for rep in sch.repetitions(person_at + 1)) if p]
        if person is None:
            if place is not None:
                found.append(b.ref(place))
            continue
        role = b.add(compact({
            "resourceType": "PractitionerRole",
            "id": resource_id("PractitionerRole", b.facility,
                              {"system": person["id"], "value": f"SCH-{person_at}"}),
            "practitioner": b.ref(person),
            "location": [b.ref(place)] if place is not None else None,
            "telecom": phones or None,
        }))
        found.append(b.ref(role))
    return distinct(found)


def orders(b: Build, sch: Segment) -> list[dict]:
    """SCH-26 placer and SCH-27 filler order numbers: the order this appointment
    fulfils, by identifier (the order itself is another message's)."""
    found = [
        dt.ei_to_identifier(dt.first_rep(sch, 26), b.facility, tables.PLACER_IDENTIFIER),
        dt.ei_to_identifier(dt.first_rep(sch, 27), b.facility, tables.FILLER_IDENTIFIER),
    ]
    return [{"type": "ServiceRequest", "identifier": i} for i in found if i]
