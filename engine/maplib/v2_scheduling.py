"""HL7 v2 scheduling segments (SCH, TQ1, AIS, AIG, AIL, AIP, NTE) as a FHIR R4 Appointment,
and the code tables they need. `mappings/hl7v2-siu-to-fhir` assembles the Bundle.

R4 is strict where v2 is loose: start and end are instants (a time with a zone), they come
together or not at all, and only proposed, cancelled and waitlisted appointments may lack
them. This module derives them from whichever v2 fields a sender fills, and fails naming
the field when it cannot, rather than write an appointment at a guessed time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Repetition, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib.fhir import compact, reference, resource_id
from engine.maplib.v2_codes import Bound, cwe_to_codeable_concept, first_concept
from engine.maplib.v2_fhir import nte_text

V2_0276 = tables.V2_SYSTEM + "0276"  # appointment reason (R4's preferred appointmentType)
V2_0277 = tables.V2_SYSTEM + "0277"  # appointment type

# Trigger event -> Appointment.status.
EVENT_STATUS: dict[str, str] = {
    "S12": "booked",  # new appointment
    "S13": "booked",  # rescheduled
    "S14": "booked",  # modified
    "S15": "cancelled",
    "S17": "entered-in-error",  # deleted
    "S26": "noshow",
}
# Events that state the status themselves; for the others SCH-25 refines it.
STATUS_EVENTS = frozenset({"S15", "S17", "S26"})
# Table 0278 filler status (SCH-25), per the v2-to-FHIR IG's concept map. Discontinued,
# Blocked and Overbook have no R4 equivalent, so the event's status stands for them.
FILLER_STATUS: dict[str, str] = {
    "PENDING": "pending",
    "WAITLIST": "waitlist",
    "BOOKED": "booked",
    "STARTED": "checked-in",
    "COMPLETE": "fulfilled",
    "CANCELLED": "cancelled",
    "DELETED": "entered-in-error",
    "NOSHOW": "noshow",
}
# R4 invariant app-3: only these may lack start and end.
UNTIMED_STATUSES = frozenset({"proposed", "cancelled", "waitlist"})
# Statuses whose SCH-6 event reason says why the appointment is not kept.
CANCELLED_STATUSES = frozenset({"cancelled", "noshow", "entered-in-error"})

APPOINTMENT_REASON: dict[str, str] = {  # table 0276
    "CHECKUP": "A routine check-up, such as an annual physical",
    "EMERGENCY": "Emergency appointment",
    "FOLLOWUP": "A follow up visit from a previous appointment",
    "ROUTINE": "Routine appointment - default if not valued",
    "WALKIN": "A previously unscheduled walk-in visit",
}
APPOINTMENT_TYPE: dict[str, str] = {  # table 0277
    "Normal": "Routine schedule request type - default if not valued",
    "Tentative": "A request for a tentative (e.g., \"penciled in\") appointment",
    "Complete": "A request to add a completed appointment",
}
# NTE-4 comment types (table 0364) that are not general remarks.
PATIENT_INSTRUCTION_NOTES = frozenset({"PI"})
REASON_NOTES = frozenset({"1R", "2R", "GR"})

# SCH-7 and SCH-8 read codes of their tables in them; other codes are the sender's.
REASON = Bound(V2_0276, APPOINTMENT_REASON)
TYPE = Bound(V2_0277, APPOINTMENT_TYPE)

# The units of time (`tables.TIME_UNITS`, as senders write them) with a fixed length;
# empty is minutes, the default the standard gives AIS-8, AIG-12, AIL-10 and AIP-10
# (applied to SCH-10 too). Months and years vary, so an appointment cannot last "1 mo".
STEPS: dict[str, timedelta] = {
    "s": timedelta(seconds=1), "min": timedelta(minutes=1), "h": timedelta(hours=1),
    "d": timedelta(days=1), "wk": timedelta(weeks=1),
}


@dataclass(frozen=True)
class ResourceFields:
    """Where a resource segment keeps its start, duration and duration units."""

    start: int
    duration: int
    units: int


# Resource segments; when SCH-11 and TQ1 give no timing, the first (in message order)
# with a start or a duration gives it.
RESOURCE_SEGMENTS: dict[str, ResourceFields] = {
    "AIS": ResourceFields(4, 7, 8),
    "AIG": ResourceFields(8, 11, 12),
    "AIL": ResourceFields(6, 9, 10),
    "AIP": ResourceFields(6, 9, 10),
}


def kept_resources(message: Hl7Message) -> list[tuple[str, Segment]]:
    """(path, segment) of every AIS/AIG/AIL/AIP, in message order, whose segment action
    code (field 2, table 0206) is not D: an S14 lists a removed resource with D."""
    found: list[tuple[str, Segment]] = []
    counts: dict[str, int] = {}
    for seg in message:
        if seg.name not in RESOURCE_SEGMENTS:
            continue
        counts[seg.name] = n = counts.get(seg.name, 0) + 1
        if dt.present(seg.value(2)).upper() != "D":
            found.append((seg.name if n == 1 else f"{seg.name}[{n}]", seg))
    return found


# ---- status and identity ----------------------------------------------------------------


def appointment_status(event: str, sch: Segment) -> str:
    """The event's status; for S12-S14 a SCH-25 filler status refines it (an S14 can
    report an appointment started or complete)."""
    status = EVENT_STATUS[event]
    if event in STATUS_EVENTS:
        return status
    filler = dt.present(sch.value(25, 1)) or dt.present(sch.value(25, 2))
    return FILLER_STATUS.get(filler.upper().replace(" ", ""), status)


def appointment_identifiers(sch: Segment, facility: str) -> list[dict]:
    """SCH-2 filler then SCH-1 placer appointment id; fails naming SCH-2 when both are
    empty, because without one no later S14 or S15 could find the appointment."""
    found = [
        dt.ei_to_identifier(dt.first_rep(sch, 2), facility, tables.FILLER_IDENTIFIER),
        dt.ei_to_identifier(dt.first_rep(sch, 1), facility, tables.PLACER_IDENTIFIER),
    ]
    identifiers = [i for i in found if i]
    if not identifiers:
        raise MappingError(
            "and SCH-1 are both empty: an appointment needs a filler or placer id",
            field="SCH-2",
        )
    return identifiers


def appointment_id(identifiers: list[dict], facility: str) -> str:
    """uuid5 of the filler id (else the placer id) within the sending facility."""
    key = {"system": identifiers[0]["system"], "value": identifiers[0]["value"]}
    return resource_id("Appointment", facility, key)


# ---- timing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Appointment.start, end (instants) and minutesDuration; all None when untimed."""

    start: str | None = None
    end: str | None = None
    minutes: int | None = None


def instant(value: str, field: str, sender_offset: str | None) -> str | None:
    """A v2 DTM as a FHIR instant (None when empty); fails naming the field when it has no
    time of day or no zone (its own or MSH-7's): an appointment at a guessed hour is worse
    than none."""
    when = dt.to_fhir_instant(value, field, sender_offset)
    if when is None and dt.present(value):
        raise MappingError(
            "has no time of day with a time zone (nor does MSH-7 give the sender's zone); "
            "an appointment's start and end must be exact",
            field=field,
        )
    return when


def _amount(value: str, field: str) -> float | None:
    if not dt.present(value):
        return None
    number = dt.parse_nm(value)
    if number is None or number < 0:
        raise MappingError("is not a non-negative number", field=field)
    return float(number)


def duration(amount: str, unit: str, amount_field: str, units_field: str) -> timedelta | None:
    """An amount of time in a unit as senders write it; no unit is minutes."""
    number = _amount(amount, amount_field)
    if number is None:
        return None
    unit = dt.present(unit).upper()
    step = STEPS.get(tables.TIME_UNITS.get(unit, "")) if unit else STEPS["min"]
    if step is None:
        raise MappingError(
            "is not a unit of time this mapping reads (s, min, h, d, wk)", field=units_field
        )
    return step * number


def _unit(segment: Segment, field_number: int) -> str:
    """A CNE/CE units field's code, else its text."""
    return dt.present(segment.value(field_number, 1)) or dt.present(segment.value(field_number, 2))


def _tq_duration(sch: Segment) -> timedelta | None:
    """SCH-11.3, the TQ duration: S/M/H/D/W and a number; a bare number is in SCH-10's
    units; INDEF is no duration."""
    value = dt.present(sch.value(11, 3)).upper()
    if not value or value == "INDEF":
        return None
    coded = dt.tq_duration(value)
    if coded and coded[0] in STEPS:
        return STEPS[coded[0]] * coded[1]
    if coded is None and dt.parse_nm(value) is not None:
        return duration(value, _unit(sch, 10), "SCH-11", "SCH-10")
    raise MappingError(
        "has a duration (component 3) that is not S, M, H, D or W and a number",
        field="SCH-11",
    )


def _explicit_duration(
    sch: Segment, tq1: Segment | None, resources: list[tuple[str, Segment]]
) -> timedelta | None:
    """SCH-11.3, else SCH-9/SCH-10, else TQ1-6 (a CQ: amount^units), else the first
    resource segment's duration."""
    found = _tq_duration(sch)
    if found is None:
        found = duration(sch.value(9), _unit(sch, 10), "SCH-9", "SCH-10")
    if found is None and tq1 is not None:
        unit = dt.present(tq1.value(6, 2, 1)) or dt.present(tq1.value(6, 2, 2))
        found = duration(tq1.value(6, 1), unit, "TQ1-6", "TQ1-6")
    for path, seg in resources:
        if found is not None:
            break
        spot = RESOURCE_SEGMENTS[seg.name]
        found = duration(
            seg.value(spot.duration),
            _unit(seg, spot.units),
            f"{path}-{spot.duration}",
            f"{path}-{spot.units}",
        )
    return found


def _start(
    sch: Segment,
    tq1: Segment | None,
    resources: list[tuple[str, Segment]],
    sender_offset: str | None,
) -> tuple[str | None, str]:
    """The start instant and the field it came from: SCH-11.4, TQ1-7, or the first
    resource segment with a start."""
    candidates = [("SCH-11", sch.value(11, 4))]
    if tq1 is not None:
        candidates.append(("TQ1-7", tq1.value(7)))
    for path, seg in resources:
        number = RESOURCE_SEGMENTS[seg.name].start
        candidates.append((f"{path}-{number}", seg.value(number)))
    for field, value in candidates:
        when = instant(value, field, sender_offset)
        if when is not None:
            return when, field
    return None, "SCH-11"


def _explicit_end(
    sch: Segment, tq1: Segment | None, sender_offset: str | None
) -> tuple[str | None, str]:
    end = instant(sch.value(11, 5), "SCH-11", sender_offset)
    if end is None and tq1 is not None:
        return instant(tq1.value(8), "TQ1-8", sender_offset), "TQ1-8"
    return end, "SCH-11"


def appointment_timing(
    message: Hl7Message, sch: Segment, status: str, sender_offset: str | None
) -> Timing:
    """start, end and minutesDuration. The end is SCH-11.5 or TQ1-8, else start plus the
    duration (SCH-11.3, SCH-9/10, TQ1-6, or a resource segment's); minutesDuration is that
    duration, else end minus start, in whole minutes."""
    tq1 = message.segment("TQ1")
    resources = kept_resources(message)
    start, start_field = _start(sch, tq1, resources, sender_offset)
    end, end_field = _explicit_end(sch, tq1, sender_offset)
    length = _explicit_duration(sch, tq1, resources)
    if start is None:
        if status not in UNTIMED_STATUSES:
            raise MappingError(
                f"gives no start time, which a {status} appointment needs "
                "(nor do TQ1-7, AIS-4, AIG-8, AIL-6 or AIP-6)",
                field="SCH-11",
            )
        return Timing()
    begin = datetime.fromisoformat(start)
    if end is None and length is not None:
        end = _format_instant(begin + length)
    if end is None:
        raise MappingError("gives a start but no end or duration", field=start_field)
    finish = datetime.fromisoformat(end)
    if finish < begin:
        raise MappingError("ends before the appointment starts", field=end_field)
    return Timing(start, end, _whole_minutes(length if length is not None else finish - begin))


def _format_instant(when: datetime) -> str:
    return when.isoformat(timespec="microseconds" if when.microsecond else "seconds")


def _whole_minutes(length: timedelta) -> int | None:
    """A positiveInt of minutes, or None when the length is not a whole number of them."""
    seconds = length.total_seconds()
    if seconds <= 0 or seconds % 60:
        return None
    return int(seconds // 60)


# ---- what the appointment is --------------------------------------------------------------


def appointment_type(sch: Segment, facility: str) -> dict | None:
    """SCH-7 appointment reason (table 0276 codes are R4's preferred appointmentType
    binding), else SCH-8 appointment type (table 0277)."""
    return first_concept(sch, 7, facility, REASON) or first_concept(sch, 8, facility, TYPE)


def service_types(message: Hl7Message, facility: str) -> list[dict]:
    """AIS-3, the service each kept AIS books."""
    services = (seg for _path, seg in kept_resources(message) if seg.name == "AIS")
    found = (first_concept(seg, 3, facility) for seg in services)
    return [c for c in found if c]


def event_reason(sch: Segment, event: str, status: str, facility: str) -> dict:
    """SCH-6, why this event happened. For a new booking (S12) that is why the appointment
    is made: reasonCode. For a cancelled, deleted or missed one, cancelationReason. Why an
    appointment was moved or changed (S13, S14) has no R4 element, so it is not mapped."""
    concept = first_concept(sch, 6, facility)
    if concept is None:
        return {}
    if status in CANCELLED_STATUSES:
        return {"cancelationReason": concept}
    if event == "S12":
        return {"reasonCode": [concept]}
    return {}


def note_elements(message: Hl7Message) -> dict:
    """Every NTE, by its comment type (NTE-4, table 0364): PI patientInstruction; 1R, 2R
    and GR (reasons) description; any other, or none, comment. Repetitions of NTE-3 and
    several NTE are joined with line breaks; escape sequences are already decoded."""
    found: dict[str, list[str]] = {"comment": [], "description": [], "patientInstruction": []}
    for nte in message.all("NTE"):
        text = nte_text(nte)
        if not text:
            continue
        kind = dt.present(nte.value(4, 1)).upper()
        if kind in PATIENT_INSTRUCTION_NOTES:
            found["patientInstruction"].append(text)
        elif kind in REASON_NOTES:
            found["description"].append(text)
        else:
            found["comment"].append(text)
    return {k: "\n".join(v) for k, v in found.items()}


# ---- participants ---------------------------------------------------------------------------


def participants(message: Hl7Message, patient: dict, facility: str) -> list[dict]:
    """The patient, then every kept AIG, AIL and AIP by display, all "accepted": SIU
    reports a schedule the filler has already made."""
    found = [{"actor": reference(patient), "status": "accepted"}]
    for _path, seg in kept_resources(message):
        person = _resource_participant(seg, facility)
        if person:
            found.append(person)
    return found


def _resource_participant(seg: Segment, facility: str) -> dict | None:
    """AIP-3 (XCN) with AIP-4 as type; AIL-3 (PL) by display; AIG-3 with AIG-4 as type."""
    if seg.name == "AIS":
        return None
    if seg.name == "AIP":
        rep = dt.first_rep(seg, 3)
        display, kind = (dt.xcn_display(rep) if rep else ""), dt.first_rep(seg, 4)
    elif seg.name == "AIL":
        display, kind = location_display(dt.first_rep(seg, 3)), None
    else:
        rep = dt.first_rep(seg, 3)
        display = (dt.present(rep.value(2)) or dt.present(rep.value(1))) if rep else ""
        kind = dt.first_rep(seg, 4)
    concept = cwe_to_codeable_concept(kind, facility)
    if not display and concept is None:
        return None
    participant = {"type": [concept] if concept else None, "status": "accepted"}
    if display:
        participant["actor"] = {"display": display}
    return compact(participant)


def location_display(rep: Repetition | None) -> str:
    """A PL as a display: its description (PL.9) with point of care / room / bed after it
    in brackets, either alone when the other is empty, else its facility (PL.4)."""
    if rep is None:
        return ""
    place, description = dt.pl_display(rep), dt.present(rep.value(9))
    if place and description:
        return f"{description} ({place})"
    return description or place or dt.present(rep.value(4))


# ---- the resource -------------------------------------------------------------------------


def appointment(
    message: Hl7Message,
    sch: Segment,
    event: str,
    *,
    facility: str,
    patient: dict,
    sender_offset: str | None,
) -> dict:
    """The Appointment of one SIU message (see the SIU mapping's docstring for choices)."""
    identifiers = appointment_identifiers(sch, facility)
    status = appointment_status(event, sch)
    timing = appointment_timing(message, sch, status, sender_offset)
    resource = {
        "resourceType": "Appointment",
        "id": appointment_id(identifiers, facility),
        "identifier": identifiers,
        "status": status,
        **event_reason(sch, event, status, facility),
        "serviceType": service_types(message, facility),
        "appointmentType": appointment_type(sch, facility),
        **note_elements(message),
        "start": timing.start,
        "end": timing.end,
        "minutesDuration": timing.minutes,
        "participant": participants(message, patient, facility),
    }
    return compact(resource)
