"""HL7v2 segments that most messages carry, as FHIR: the message facts (sending
facility, time zone, trigger event, message time), PID as Patient, PV1 as Encounter (or
a reference to it), and NTE as notes.

Shared by every v2-to-FHIR mapping, so an ORU's subject is the very Patient an ADT made,
and an RDE's encounter the very Encounter.

The message time (MSH-7) becomes Bundle.timestamp when it is an instant (a time of day
with a zone), so a Bundle carries when its sender made it; FHIR-to-v2 mappings read
MSH-7 back from there. A malformed MSH-7 writes no timestamp rather than failing the
message, as `sender_offset` reads no zone from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import tolerate
from engine.maplib.fhir import compact as _compact
from engine.maplib.fhir import resource_id as _resource_id
from engine.maplib.fhir import transaction

UNNAMED_SENDER = "unnamed-sender"
def _attender() -> dict:
    """A new participant type each time: a mapping may edit what it is given."""
    return {"coding": [{"system": tables.V3_PARTICIPATION_TYPE, "code": "ATND",
                        "display": "attender"}]}


def sending_facility(message: Hl7Message) -> str:
    """MSH-4.1, else MSH-3.1: the scope every resource id is derived within."""
    msh = message.segments[0]
    facility = dt.present(msh.value(4, 1)) or dt.present(msh.value(3, 1))
    if not facility:
        # Leniently, ids are scoped to one shared name for every unnamed sender.
        return tolerate(MappingError(
            "sending facility and sending application (MSH-3) are both empty, so resource "
            "ids cannot be scoped to a sender",
            field="MSH-4",
        ), UNNAMED_SENDER)
    return facility


def sender_offset(message: Hl7Message) -> str | None:
    """The sender's time zone, from MSH-7, for times sent without one."""
    return dt.dtm_offset(message.segments[0].value(7))


def bundle(message: Hl7Message, resources: list[dict]) -> dict:
    """The transaction Bundle of a message's resources, with Bundle.timestamp from MSH-7
    (`message_timestamp`): what every v2-to-FHIR mapping returns."""
    return transaction(resources, message_timestamp(message))


def message_timestamp(message: Hl7Message) -> str | None:
    """MSH-7 as a FHIR instant (Bundle.timestamp), or None when it has no time of day and
    zone, or is malformed."""
    try:
        return dt.to_fhir_instant(message.segments[0].value(7), "MSH-7", sender_offset(message))
    except MappingError:
        return None


_EVENT_CODE = re.compile(r"[A-Z0-9]{1,8}\Z")


def trigger_event(message: Hl7Message, message_code: str, default: str = "") -> str:
    """The trigger event of a message that must be of type `message_code` (MSH-9.1): MSH-9.2,
    else EVN-1 (old senders leave MSH-9.2 out), else `default`; fails naming MSH-9 for
    another message type or when no event is found. An event that is not a code reads
    "(unrecognised event)", so that a skip reason never quotes message content."""
    msh = message.segments[0]
    if dt.present(msh.value(9, 1)).upper() != message_code:
        raise MappingError(
            f"message type is not {message_code}; this mapping reads {message_code} only",
            field="MSH-9",
        )
    event = (dt.present(msh.value(9, 2)) or dt.present(message.value("EVN-1")) or default).upper()
    if not event:
        raise MappingError("has no trigger event (and EVN-1 is empty)", field="MSH-9")
    return event if _EVENT_CODE.match(event) else "(unrecognised event)"


def patient_of(message: Hl7Message) -> dict:
    """The Patient of a message's PID; fails naming PID-3 when there is no PID."""
    pid = message.segment("PID")
    if pid is None:
        raise MappingError("the PID segment is missing, so there is no patient", field="PID-3")
    return patient(pid, sending_facility(message), sender_offset(message))


def patient(pid: Segment, facility: str, sender_offset: str | None) -> dict:
    """The Patient from PID; its id comes from the preferred PID-3 identifier."""
    identifiers = _identifiers(pid, facility)
    preferred = _preferred_identifier(identifiers)
    patient = {
        "resourceType": "Patient",
        "id": _resource_id("Patient", facility, preferred),
        "identifier": identifiers,
        "name": [n for n in map(dt.xpn_to_human_name, pid.repetitions(5)) if n],
        "telecom": _telecoms(pid),
        "gender": administrative_gender(pid, 8),
        "birthDate": dt.to_fhir_date(pid.value(7), "PID-7"),
        **_deceased(pid, sender_offset),
        "address": [a for a in map(dt.xad_to_address, pid.repetitions(11)) if a],
    }
    return _compact(patient)


def _identifiers(pid: Segment, facility: str) -> list[dict]:
    """Every PID-3 repetition with an id number; fails naming PID-3 when there is none."""
    identifiers = [
        ident
        for ident in (dt.cx_to_identifier(rep, facility) for rep in pid.repetitions(3))
        if ident
    ]
    if not identifiers:
        raise MappingError("has no identifier, so the patient cannot be identified", field="PID-3")
    return identifiers


def _preferred_identifier(identifiers: list[dict]) -> dict:
    """The medical record number (type MR) if there is one, else the first identifier."""
    for ident in identifiers:
        codings = ident.get("type", {}).get("coding", [])
        if any(c["code"] == "MR" for c in codings):
            return ident
    return identifiers[0]


def _telecoms(pid: Segment) -> list[dict]:
    """PID-13 (home) then PID-14 (business) numbers, in message order."""
    points = [dt.xtn_to_contact_point(rep, "home") for rep in pid.repetitions(13)]
    points += [dt.xtn_to_contact_point(rep, "work") for rep in pid.repetitions(14)]
    return [p for p in points if p]


def administrative_gender(segment: Segment, field: int) -> str | None:
    """Administrative sex (PID-8, NK1-15) through table 0001; a code outside it fails
    naming the field, since gender's binding is required and guessing would write a wrong
    value into a chart."""
    code = dt.present(segment.value(field)).upper()
    if not code:
        return None
    if code not in tables.ADMINISTRATIVE_SEX:
        return tolerate(MappingError(
            "is not a code from HL7 table 0001 (M, F, O, U, A, N)",
            field=f"{segment.name}-{field}",
        ))
    return tables.ADMINISTRATIVE_SEX[code]


def _deceased(pid: Segment, sender_offset: str | None) -> dict:
    """deceasedDateTime from PID-29, else deceasedBoolean from PID-30 (Y/N), else nothing."""
    when = dt.to_fhir_datetime(pid.value(29), "PID-29", sender_offset)
    if when:
        return {"deceasedDateTime": when}
    indicator = dt.present(pid.value(30)).upper()
    if indicator in ("Y", "N"):
        return {"deceasedBoolean": indicator == "Y"}
    return {}


def visit_identifier(pv1: Segment, facility: str) -> dict | None:
    """The first PV1-19 visit number as an Identifier (typed VN unless CX.5 says
    otherwise), or None: what an Encounter's id is derived from."""
    visit = next(
        (v for v in (dt.cx_to_identifier(rep, facility) for rep in pv1.repetitions(19)) if v),
        None,
    )
    if visit is not None:
        visit.setdefault("type", {"coding": [tables.VISIT_NUMBER.as_fhir()]})
    return visit


def encounter(
    pv1: Segment, event: str, facility: str, patient_id: str, sender_offset: str | None
) -> dict | None:
    """The Encounter from PV1, or None when PV1-19 gives no visit number to key it on."""
    visit = visit_identifier(pv1, facility)
    if visit is None:
        return None
    class_code = dt.present(pv1.value(2)).upper()
    end = dt.to_fhir_datetime(pv1.value(45), "PV1-45", sender_offset)
    status = _encounter_status(event, class_code, discharged=end is not None)
    encounter = {
        "resourceType": "Encounter",
        "id": _resource_id("Encounter", facility, visit),
        "identifier": [visit],
        "status": status,
        "class": _encounter_class(class_code),
        "subject": {"reference": f"urn:uuid:{patient_id}"},
        "participant": _attenders(pv1),
        "period": _compact(
            {"start": dt.to_fhir_datetime(pv1.value(44), "PV1-44", sender_offset), "end": end}
        ),
        "location": _location(pv1, status),
    }
    return _compact(encounter)


def encounter_reference(message: Hl7Message, facility: str) -> dict | None:
    """A reference to the Encounter an ADT mapping made for PV1-19, or None.

    The id is derived exactly as `encounter` derives it, so it is the ADT feed's
    Encounter; the reference is literal (`Encounter/<id>`), since this message does not
    carry the Encounter, and holds the visit number too, for a receiver to search by.
    """
    pv1 = message.segment("PV1")
    visit = visit_identifier(pv1, facility) if pv1 is not None else None
    if visit is None:
        return None
    return {
        "reference": f"Encounter/{_resource_id('Encounter', facility, visit)}",
        "identifier": visit,
    }


def _encounter_status(event: str, class_code: str, *, discharged: bool) -> str:
    """Status from the event, refined by the discharge time and the preadmit class."""
    if event == "A11":
        return "cancelled"
    if event == "A03" or discharged:
        return "finished"
    if class_code == "P":
        return "planned"
    return "in-progress"


def _encounter_class(class_code: str) -> dict:
    """PV1-2 through table 0004; a local code (0004 is user-defined) keeps its own code."""
    if not class_code:
        return tables.PATIENT_CLASS_UNKNOWN.as_fhir()
    known = tables.PATIENT_CLASS.get(class_code)
    if known is None:
        return {"system": tables.V2_0004, "code": class_code}
    return known.as_fhir()


def _attenders(pv1: Segment) -> list[dict]:
    """PV1-7 attending doctors as participants with a display name only."""
    names = [dt.xcn_display(rep) for rep in pv1.repetitions(7)]
    return [{"type": [_attender()], "individual": {"display": n}} for n in names if n]


_LOCATION_STATUS = {"in-progress": "active", "planned": "planned", "finished": "completed"}


def _location(pv1: Segment, encounter_status: str) -> list[dict]:
    """PV1-3 as the encounter's location, by display; its status follows the encounter."""
    reps = pv1.repetitions(3)
    display = dt.pl_display(reps[0]) if reps else ""
    if not display:
        return []
    entry: dict = {"location": {"display": display}}
    status = _LOCATION_STATUS.get(encounter_status)
    if status:
        entry["status"] = status
    return [entry]


# ---- NTE --------------------------------------------------------------------------------


def nte_text(nte: Segment) -> str:
    """NTE-3's lines (a repeating FT) as one text; escapes, \\.br\\ included, decoded."""
    lines = [dt.present(rep.value(1)) for rep in nte.repetitions(3)]
    return "\n".join(lines).strip()


def annotations(ntes: Iterable[Segment]) -> list[dict]:
    """One Annotation per NTE that says something."""
    texts = (nte_text(n) for n in ntes)
    return [{"text": t} for t in texts if t]
