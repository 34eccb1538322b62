"""SIU: a scheduling notification as the Appointment, its Patient and visit, and what the
appointment books (services, people, places, equipment). See `scheduling` for the rules.
"""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message
from engine.leniency import tolerate
from engine.maplib import v2_scheduling as sched
from engine.maplib.fhir import compact
from engine.maplib.v2_to_fhir import clinical, financial, people, results, scheduling, visit
from engine.maplib.v2_to_fhir.frame import Build
from engine.maplib.v2_to_fhir.provenance import finish
from engine.mapping_base import Skip

EVENTS: tuple[str, ...] = ("S12", "S13", "S14", "S15", "S16", "S17", "S18", "S19", "S20",
                           "S21", "S22", "S23", "S24", "S26")
RESOURCES: tuple[str, ...] = (
    "Patient", "Encounter", "Appointment", "ServiceRequest", "Practitioner",
    "PractitionerRole", "Location", "Device", "Condition", "Observation", "Account",
    "RelatedPerson",
    "DocumentReference", "Organization", "MessageHeader", "Provenance",
)


def build(message: Hl7Message) -> dict | Skip:
    b = Build(message, "SIU", default_event="S12")  # no MSH-9.2: booked
    if b.event not in EVENTS:
        return Skip(f"SIU^{b.event or '(no event)'} is not an SIU event this mapping reads")
    sch = message.segment("SCH")
    pid = message.segment("PID")
    if sch is None and pid is None:  # nothing to map to
        raise MappingError("the SCH segment is missing, so there is no appointment",
                           field="SCH-2")
    if sch is None:
        tolerate(MappingError("the SCH segment is missing, so there is no appointment; only "
                              "the patient and visit are mapped", field="SCH-2"))
    if pid is not None:
        people.patient(b)
        visit.encounter(b)
        financial.patient_account(b)
        people.mother(b)  # PID-21, as the reference's SIU template names her
    if sch is None:
        return finish(b)
    appointment = _appointment(b, sch)
    for other in message.all("PID")[1:]:  # a group appointment: every patient takes part
        person = b.each("PID", lambda seg, _n: people.patient(b, seg, primary=False),
                        [other])
        for found in person:
            ref = {"actor": b.ref(found), "status": "accepted"}
            if ref not in appointment["participant"]:
                appointment["participant"].insert(1, ref)
    if len(appointment["participant"]) == 0:
        raise MappingError("names no patient (PID) and no resource (AIP, AIL, AIG), so the "
                           "appointment has no participant", field="PID-3")
    return finish(b)


def _appointment(b: Build, sch) -> dict:
    """The Appointment, added to `b` before what it references so the Bundle reads in
    the order a person would: patient, visit, appointment, then what it books."""
    found = scheduling.identifiers(b, sch)
    status = scheduling.status(b, sch)
    timed, status = scheduling.timing(b, sch, status)
    appointment: dict = {"resourceType": "Appointment",
                         "id": scheduling.appointment_id(b, sch, found), "status": status}
    b.add(appointment)
    people_, services = scheduling.participants(b, appointment, timed.get("start"))
    conditions = clinical.conditions(b) if b.patient is not None else []
    observations = (results.observations(b, b.message.all("OBX"),
                                         context=results.Context(otherwise="survey"))
                    if b.patient is not None else [])
    supporting = scheduling.contacts(b, sch) + [b.ref(o) for o in observations]
    appointment.update(compact({
        "identifier": found,
        **sched.event_reason(sch, b.event, status, b.facility),
        "reasonReference": [b.ref(c) for c in conditions],
        "serviceType": scheduling.service_types(b),
        "appointmentType": sched.appointment_type(sch, b.facility),
        "priority": scheduling.priority(b, sch),
        **scheduling.note_elements(b),
        **timed,
        "supportingInformation": supporting,
        "basedOn": [b.ref(s) for s in services] + scheduling.orders(b, sch),
        "participant": people_,
    }))
    appointment.setdefault("participant", [])
    if b.encounter is not None:
        b.encounter.setdefault("appointment", [b.ref(appointment)])
    return appointment
