"""fhir-to-hl7v2-siu@1: a FHIR R4 Appointment with its Patient and participants as an
HL7 v2.5.1 SIU^S12/S14/S15/S17/S26^SIU_S12 (MSH, SCH, TQ1, NTE, PID, PV1, RGS, AIS, AIG,
AIL, AIP). The segments are written by `engine/maplib/fhir_to_v2_siu.py`.

Input: an Appointment, or a Bundle of any type holding one (the first, in entry order,
is sent: one message per input), its Patient, the participants' Practitioners,
PractitionerRoles, Locations and Devices, the ServiceRequests it is basedOn and an
Encounter. References resolve by fullUrl, Type/id or #id. Fails naming the FHIR path: no
Appointment (Bundle.entry), a status that is not R4's (Appointment.status), a Patient
participant the input does not carry, a participant reference that resolves to nothing
and has no display, no identifier and no id (SCH-1/2), a date that is not FHIR's.

Choices a receiver will notice:
- Event from status: cancelled S15, entered-in-error S17, noshow S26; any other status
  S12 when meta.versionId is absent or 1, else S14 (a modification: R4 cannot say the
  appointment was moved, so S13 is never sent). SCH-25 filler status from status
  (booked Booked, pending/proposed Pending, arrived/checked-in Started, fulfilled
  Complete, cancelled Cancelled, noshow Noshow, entered-in-error Deleted, waitlist
  Waitlist).
- MSH as fhir-to-hl7v2-adt@1 writes it; MSH-7 the Appointment's meta.lastUpdated, else
  Bundle.timestamp / meta.lastUpdated, else the Appointment's created (never the
  clock); MSH-10 hashes (Appointment, id, versionId, MSH-7).
- SCH-1 the identifier typed PLAC, SCH-2 FILL (an untyped one is the placer's, else the
  id), SCH-4 PGN; SCH-6 cancelationReason (S15/S17/S26) else the first reasonCode; SCH-7
  appointmentType; SCH-9/10 minutesDuration in min; SCH-11 ^^M<minutes>^start^end^
  priority (1 S, 2 A, 3 R, 4 P, 5 C, 6 T, 7 PRN); SCH-26/27 basedOn references by an
  identifier typed PLAC/FILL; SCH-12, SCH-16 and SCH-20 the Practitioners (or roles) in
  supportingInformation, in that order. TQ1 says the same times in v2.5's own segment.
- NTE after SCH: description (NTE-4 GR), comment (RE), patientInstruction (PI).
- PID as fhir-to-hl7v2-adt@1 writes it, for each participant that is a Patient (a group
  visit has several; PID-1 numbers them); PV1, after the first, from the
  Encounter whose appointment is this one (else the only one), class from table 0004,
  PV1-19 the visit number; without an Encounter no PV1.
- RGS|1 with action A (S12) or U; one AIS per ServiceRequest in basedOn (AIS-3 code,
  AIS-4 occurrence start, AIS-7/8 its length in min, AIS-11 its orderDetail), else per
  serviceType; then, in SIU_S12's order, AIG for a Device, HealthcareService or display
  (AIG-3 identifier^name, AIG-4 type), AIL for a Location (AIL-3 PL: name split at
  " / ", PL.9 description; AIL-4 Location.type), AIP for a Practitioner or
  PractitionerRole (AIP-3 XCN, AIP-4 type); each with its period (start, length in min)
  and status (accepted Booked, tentative and needs-action Pending, declined Cancelled).
"""

from __future__ import annotations

from engine.formats.hl7v2.builder import MessageBuilder
from engine.maplib import fhir_to_v2 as v2
from engine.maplib import fhir_to_v2_parts as parts
from engine.maplib import fhir_to_v2_siu as siu
from engine.mapping import mapping


@mapping("fhir-to-hl7v2-siu@1", accepts="fhir", emits="x-application/hl7-v2+er7")
def appointment_to_siu(resource: dict) -> str:
    """One SIU for the (first) Appointment of the input."""
    index = v2.Resources(resource)
    appointment = v2.focus(resource, index, "Appointment", "appointment", "an Appointment")
    trigger = siu.event(appointment)
    people = siu.patients(appointment, index)
    builder = MessageBuilder()
    v2.write_msh(builder, parts.header(
        appointment, resource, ("SIU", trigger, "SIU_S12"),
        last=((appointment.resource.get("created"), f"{appointment.path}.created"),)))
    siu.write_sch(builder, appointment, trigger)
    siu.write_contacts(builder, appointment, index)
    siu.write_tq1(builder, appointment)
    notes = parts.Notes(builder)
    notes.write(siu.notes(appointment))
    if people:
        v2.write_pid(builder, people[0])
        visit = siu.encounter(appointment, index)
        if visit is not None:
            parts.write_pv1(builder, visit, index)
    for number, person in enumerate(people[1:], start=2):
        siu.write_other_pid(builder, person, number)
    siu.Resources(builder, appointment, index, "A" if trigger == "S12" else "U").write()
    return v2.encode(builder)
