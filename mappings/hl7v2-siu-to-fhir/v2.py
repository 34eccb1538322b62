"""hl7v2-siu-to-fhir@2: every SIU scheduling event as a FHIR R4 transaction Bundle,
leniently (the rules are in `engine/maplib/v2_to_fhir/siu.py` and `scheduling.py`).

Events S12 (new), S13 (rescheduled), S14 (modified), S15 (cancelled), S16 (discontinued),
S17 (deleted), S18-S24 (a service or resource added, modified, cancelled, discontinued or
deleted: the appointment as modified, without the resources whose action code deletes
them) and S26 (no-show); another SIU event is skipped with a reason. What changed from
v1 (a shadow run shows it per path):
- A timing field that cannot be read (a duration unit outside S/M/H/D/W, a number that is
  not one, a date that does not exist, a time with no zone anywhere) is a warning naming
  the field; the next source is tried (SCH-11, TQ1, the AIS/AIG/AIL/AIP start and
  duration). When start and end still cannot both be worked out, R4 (app-2, app-3)
  forbids a half-timed booking: the Appointment keeps minutesDuration and the times it
  has in requestedPeriod and is sent as proposed (cancelled for a no-show or deleted
  one), and the warning says so. An end before the start drops both, with a warning.
- S16 is mapped, as cancelled (R4 has no discontinued status).
- Without SCH-1 and SCH-2 the appointment is still mapped, keyed on its patient and
  start, with a warning; SCH-4 placer group number is an identifier (type PGN).
- participant: the Patient (each PID's, for a group visit), then AIP-3 as a
  Practitioner (AIP-4 the type), AIL-3 as a Location (AIL-4 its type; a PL with only a
  description stays a display), AIG-3 as a Device (AIG-4 the type), each with its own
  period (its start, else the appointment's start plus its start offset, and its
  duration) and a status from its filler status (table 0278: pending/waitlist
  tentative, cancelled/deleted/no-show/discontinued declined, else accepted). Action
  code D still removes one.
- Each AIS with a service is a ServiceRequest (code AIS-3, at its period as above,
  status from AIS-10 else the appointment's, orderDetail AIS-11/12) in basedOn;
  serviceType is still every AIS-3.
- priority from TQ1-9, else SCH-11.6 (S 1, A 2, R 3, P 4, C 5, T 6, PRN 7).
- SCH-12/16/20 (placer, filler and entering contact) are PractitionerRoles of their
  Practitioners, with SCH-13/17/21 phones and SCH-15/19/22 Locations, in
  supportingInformation. PV1 is the Encounter (its appointment points
  here; PID-18 its Account), DG1 Conditions in reasonReference, OBX Observations in
  supportingInformation. A message without a PID maps an appointment
  of its resources alone; one without SCH maps its patient and visit with a warning;
  one with neither SCH nor PID, or with no participant at all, fails.
- The Bundle ends with a Provenance of the message, and every field with a value no rule
  read is reported as left behind.
Kept from v1: ids (the same Appointment id for the same SCH-2/SCH-1, the Patient id of
hl7v2-adt-to-fhir@1), the status table, appointmentType (SCH-7 else SCH-8), SCH-6 as
reasonCode (S12) or cancelationReason, NTE by comment type.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import siu
from engine.mapping import mapping


@mapping("hl7v2-siu-to-fhir@2", accepts="hl7v2", emits="application/fhir+json")
def siu_to_fhir(message: Hl7Message):
    return convert(message, siu.build)
