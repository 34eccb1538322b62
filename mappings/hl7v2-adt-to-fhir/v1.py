"""hl7v2-adt-to-fhir@1: an ADT event as a FHIR R4 transaction Bundle (Patient, Encounter).

Events A01, A03, A04, A08, A11, A28 and A31 are mapped; any other ADT event is skipped
with a reason, and a message that is not ADT fails naming MSH-9.

Choices a receiver will notice:
- Resource ids are uuid5 of (resource type, sending facility MSH-4.1 or else MSH-3.1,
  identifier system, identifier value): the Patient's from its first MR identifier in
  PID-3 (else the first), the Encounter's from PV1-19. The same patient or visit from the
  same facility always gets the same id, whatever the event or message.
- Entries are PUT Patient/<id> (update as create), so redelivery updates instead of
  duplicating, and no identifier value ever appears in a URL; fullUrl is urn:uuid:<id>
  and the Encounter's subject points at it.
- Identifier systems: see `datatypes.hd_system`; a CX without an assigning authority was
  assigned by the sender, so it gets urn:conduit:id:<sending facility>.
- An Encounter is written only when PV1-19 (visit number) is valued: without it no id can
  be derived that a later A03 would find again. A28 and A31 are about the person, and
  their PV1 is a placeholder, so they never write one.
- Encounter.status: A11 cancelled; A03, or any event with PV1-45 discharge time, finished;
  patient class P (preadmit) planned; otherwise in-progress, A04 included (v2 sends no
  later event that would move an "arrived" registration on to in-progress).
- Dates follow `datatypes.to_fhir_datetime`: a time without a zone takes the sender's zone
  from MSH-7, else only its date is kept. A malformed date fails naming its field.
"""

from __future__ import annotations

import copy
import re
import uuid

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.mapping import Skip, mapping

MAPPED_EVENTS = frozenset({"A01", "A03", "A04", "A08", "A11", "A28", "A31"})
PERSON_ONLY_EVENTS = frozenset({"A28", "A31"})

# The namespace of every resource id this mapping derives. Changing it changes every id
# already stored on receiving servers: never do, in this version or later ones.
ID_NAMESPACE = uuid.UUID("b2ec2468-a2cd-5d39-8c09-0636614f6dc6")

_EVENT_CODE = re.compile(r"[A-Z0-9]{1,8}\Z")
_VISIT_NUMBER = {"system": tables.V2_0203, "code": "VN", "display": "Visit number"}
_ATTENDER = {
    "coding": [{"system": tables.V3_PARTICIPATION_TYPE, "code": "ATND", "display": "attender"}]
}


@mapping("hl7v2-adt-to-fhir@1", accepts="hl7v2", emits="application/fhir+json")
def adt_to_fhir(message: Hl7Message) -> dict | Skip:
    """Map one ADT message to a transaction Bundle, or skip an event this version omits."""
    event = _trigger_event(message)
    if event not in MAPPED_EVENTS:
        return Skip(f"ADT^{event} is not mapped by this version")
    facility = _sending_facility(message)
    sender_offset = dt.dtm_offset(message.segments[0].value(7))
    pid = message.segment("PID")
    if pid is None:
        raise MappingError("the PID segment is missing, so there is no patient", field="PID-3")
    patient = _patient(pid, facility, sender_offset)
    entries = [_entry(patient)]
    pv1 = message.segment("PV1")
    if pv1 is not None and event not in PERSON_ONLY_EVENTS:
        encounter = _encounter(pv1, event, facility, patient["id"], sender_offset)
        if encounter is not None:
            entries.append(_entry(encounter))
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _trigger_event(message: Hl7Message) -> str:
    """The ADT trigger event from MSH-9.2 (EVN-1 for old senders that leave it out)."""
    msh = message.segments[0]
    if dt.present(msh.value(9, 1)).upper() != "ADT":
        raise MappingError("message type is not ADT; this mapping reads ADT only", field="MSH-9")
    event = dt.present(msh.value(9, 2)) or dt.present(message.value("EVN-1"))
    event = event.upper()
    if not event:
        raise MappingError("has no trigger event (and EVN-1 is empty)", field="MSH-9")
    return event if _EVENT_CODE.match(event) else "(unrecognised event)"


def _sending_facility(message: Hl7Message) -> str:
    """MSH-4.1, else MSH-3.1: the scope every resource id is derived within."""
    msh = message.segments[0]
    facility = dt.present(msh.value(4, 1)) or dt.present(msh.value(3, 1))
    if not facility:
        raise MappingError(
            "sending facility and sending application (MSH-3) are both empty, so resource "
            "ids cannot be scoped to a sender",
            field="MSH-4",
        )
    return facility


def _resource_id(resource_type: str, facility: str, identifier: dict) -> str:
    """uuid5 of type, facility, system and value: stable, ≤64 chars, a valid FHIR id."""
    name = "|".join((resource_type, facility, identifier.get("system", ""), identifier["value"]))
    return str(uuid.uuid5(ID_NAMESPACE, name))


def _entry(resource: dict) -> dict:
    """A transaction entry that creates or replaces the resource at its derived id."""
    kind, rid = resource["resourceType"], resource["id"]
    return {
        "fullUrl": f"urn:uuid:{rid}",
        "resource": resource,
        "request": {"method": "PUT", "url": f"{kind}/{rid}"},
    }


def _compact(resource: dict) -> dict:
    """Drop absent elements: FHIR forbids empty strings, arrays and objects."""
    return {k: v for k, v in resource.items() if v is not None and v != "" and v != [] and v != {}}


# ---- Patient (PID) ------------------------------------------------------------------


def _patient(pid: Segment, facility: str, sender_offset: str | None) -> dict:
    """The Patient from PID; its id comes from the preferred PID-3 identifier."""
    identifiers = _identifiers(pid, facility)
    preferred = _preferred_identifier(identifiers)
    patient = {
        "resourceType": "Patient",
        "id": _resource_id("Patient", facility, preferred),
        "identifier": identifiers,
        "name": [n for n in map(dt.xpn_to_human_name, pid.repetitions(5)) if n],
        "telecom": _telecoms(pid),
        "gender": _gender(pid),
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


def _gender(pid: Segment) -> str | None:
    """PID-8 through table 0001; a code outside it fails, since gender's binding is
    required and guessing would write a wrong value into a chart."""
    code = dt.present(pid.value(8)).upper()
    if not code:
        return None
    if code not in tables.ADMINISTRATIVE_SEX:
        raise MappingError("is not a code from HL7 table 0001 (M, F, O, U, A, N)", field="PID-8")
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


# ---- Encounter (PV1) ----------------------------------------------------------------


def _encounter(
    pv1: Segment, event: str, facility: str, patient_id: str, sender_offset: str | None
) -> dict | None:
    """The Encounter from PV1, or None when PV1-19 gives no visit number to key it on."""
    visit = next(
        (v for v in (dt.cx_to_identifier(rep, facility) for rep in pv1.repetitions(19)) if v),
        None,
    )
    if visit is None:
        return None
    visit.setdefault("type", {"coding": [dict(_VISIT_NUMBER)]})
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
    return [{"type": [copy.deepcopy(_ATTENDER)], "individual": {"display": n}} for n in names if n]


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
