"""hl7v2-adt-to-fhir@3: every ADT event as a FHIR R4 transaction Bundle, leniently, at
(and beyond) the breadth of the reference converter's ADT templates.

Events A01-A17, A25-A31, A40, A41, A45, A47 and A60 are mapped; another event is skipped
with a reason. What changed from v2 (a shadow run shows it per path):
- A value that cannot be read (a date that does not exist, a sex outside table 0001, a
  PV1 without a visit number) is a warning located by segment, occurrence and field,
  and the rest of the message still maps; only a message without a PID fails.
- Patient: every identifier (PID-2, PID-3, PID-4, PID-19 as us-ssn, PID-20 typed DL),
  names of PID-5 and PID-9 with their use and period, addresses with county and
  period, PID-13/14/40 telecoms, marital status (v3-MaritalStatus), language (BCP 47
  where recognisable), multiple birth, death, religion, mother's maiden name, birth
  place, citizenship and nationality extensions; PD1-3/PD1-4 and ROL (PP, FHCP) as
  generalPractitioner; NK1 also as Patient.contact. The Patient id is v1's.
- Encounter (id as v1/v2 from PV1-19): class through table 0004 (a local code keeps
  the sender's system), admission and patient type, service type, priority, status
  from the event, every PV1/PV2 doctor and ROL as a participant referencing a
  Practitioner, current, prior, temporary and pending locations as Location resources,
  hospitalization (pre-admit number, admit source, re-admission, diet, courtesies,
  arrangements, discharge disposition and destination), reason, length (PV2-11, else
  from the period), the servicing
  facility and the PID-18 Account. Person events (A28-A31, A40, A47) map a PV1 only
  when it names a visit.
- A17 maps both patients and visits; merges (A30, A40, A41, A47) retire the prior
  patient (active false, `replaced-by`), link the survivor (`replaces`) and add a
  Linkage; A29 makes the Patient inactive.
- AL1 and IAM, DG1, PR1, OBX, IN1/IN2 and GT1 map through the shared v2_to_fhir
  converters (AllergyIntolerance, Condition, Procedure, Observation, Coverage, Account).
- The Bundle holds the sending Organization (MSH-4), the sending software (SFT) as a
  Device, a MessageHeader (valid R4: the source endpoint v2 rarely sends is a Conduit
  URN of the sending application) and ends with a Provenance of the message (EVN-2 or
  MSH-7 recorded, EVN-6 occurred, EVN-4 reason, the event as activity, the sender as
  author, EVN-5 as enterer and the software as assembler, on behalf of the sender).
  Provenance.recorded must be an
  instant, so a message whose EVN-2 and MSH-7 carry no time zone has no Provenance
  (inventing a zone would shift the time). Every field with a value no rule read is
  reported as left behind.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import adt
from engine.mapping import mapping


@mapping("hl7v2-adt-to-fhir@3", accepts="hl7v2", emits="application/fhir+json")
def adt_to_fhir(message: Hl7Message):
    return convert(message, adt.build)
