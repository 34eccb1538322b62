"""hl7v2-siu-to-fhir@1: an SIU scheduling event as a FHIR R4 transaction Bundle (Patient,
Appointment).

Events S12 (new), S13 (rescheduled), S14 (modified), S15 (cancelled), S17 (deleted) and
S26 (no-show) are mapped; any other SIU event is skipped with a reason, and a message that
is not SIU fails naming MSH-9. The builders are in `engine/maplib/v2_scheduling.py`.

Choices a receiver will notice:
- The Patient is `v2_fhir.patient_of`: the same id and content hl7v2-adt-to-fhir@1 makes
  for the same PID from the same facility. A message without PID fails naming PID-3.
- The Appointment id is uuid5 of (Appointment, sending facility, filler appointment id
  SCH-2 with its system), else the placer id SCH-1, so S13/S14/S15/S17/S26 for the same
  appointment update the resource S12 made. Both ids are kept as identifiers (types FILL
  and PLAC from v2-0203). A sender that adds the filler id later makes a new resource.
- status: S12, S13 and S14 booked, refined by SCH-25 filler status (table 0278: Pending,
  Waitlist, Booked, Started -> checked-in, Complete -> fulfilled, Cancelled, Deleted ->
  entered-in-error, Noshow); S15 cancelled, S17 entered-in-error and S26 noshow whatever
  SCH-25 says.
- start and end are instants: from SCH-11 (TQ.4/TQ.5), else TQ1-7/TQ1-8, else the first
  AIS-4 / AIG-8 / AIL-6 / AIP-6. Without an end, start plus the duration: SCH-11.3 (S/M/
  H/D/W + number), SCH-9/SCH-10, TQ1-6, or the resource segment's (empty units are
  minutes). minutesDuration is that duration, else end minus start. A time without a zone
  takes MSH-7's; with none at all, or a start without end or duration, or an end before
  the start, the message fails naming the field, because R4 (app-2, app-3) forbids the
  half-timed booking it would otherwise write. Only cancelled appointments may be untimed.
- appointmentType: SCH-7 appointment reason (table 0276 codes as v2-0276, R4's preferred
  binding; a local visit type keeps the sender's system), else SCH-8 (table 0277).
  serviceType: every AIS-3. SCH-6 event reason is reasonCode for a new booking (S12)
  and cancelationReason for cancelled, deleted and no-show appointments; why an S13 or
  S14 moved or changed one has no R4 element and is not mapped.
- NTE by comment type (NTE-4, table 0364): PI patientInstruction; 1R/2R/GR description;
  anything else comment. Several are joined with line breaks; escapes (\\F\\, \\.br\\,
  ...) arrive decoded.
- participant: the Patient (accepted), then each AIG (AIG-3 display, AIG-4 type), AIL
  (AIL-3 location display) and AIP (AIP-3 name, AIP-4 type), all accepted and by display
  only; a resource segment with action code D (removed in an S14) is left out.
- A coded value's system follows `v2_codes.coding_system`: registered URIs for table 0396
  names, v2-nnnn for HL7 tables, urn:conduit:code:<facility>:<name or local> otherwise.
- Bundle.timestamp is MSH-7 when it has a time of day and a zone (`v2_fhir.bundle`).
"""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message
from engine.maplib import v2_scheduling as sched
from engine.maplib.v2_fhir import bundle, patient_of, sender_offset, sending_facility, trigger_event
from engine.mapping import Skip, mapping


@mapping("hl7v2-siu-to-fhir@1", accepts="hl7v2", emits="application/fhir+json")
def siu_to_fhir(message: Hl7Message) -> dict | Skip:
    """Map one SIU message to a transaction Bundle of its Patient and Appointment."""
    event = trigger_event(message, "SIU")
    if event not in sched.EVENT_STATUS:
        return Skip(f"SIU^{event} is not mapped by this version")
    sch = message.segment("SCH")
    if sch is None:
        raise MappingError("the SCH segment is missing, so there is no appointment", field="SCH-2")
    facility = sending_facility(message)
    offset = sender_offset(message)
    person = patient_of(message)
    visit = sched.appointment(
        message, sch, event, facility=facility, patient=person, sender_offset=offset
    )
    return bundle(message, [person, visit])
