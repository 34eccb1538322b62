"""hl7v2-oru-to-fhir@2: results (ORU^R01, and the R30-R32 point-of-care events) as a FHIR
R4 transaction Bundle, leniently.

What a receiver notices against v1:
- A value that cannot be read is a warning located by segment, occurrence and field, and
  the rest maps: a number that is not a number stays the lab's text (valueString); a date
  that does not exist is kept as text; an OBX without a test code costs that OBX; an OBR
  without an order number is keyed on the message control id. A message without any OBR
  or OBX maps its patient and visit with a warning. Only a message without a PID fails.
- Every PATIENT_RESULT group is mapped under its own Patient (v1 failed on a second PID).
- New resources: the Encounter (PV1; without one, as the reference converter does, an
  Encounter of unknown status and class UNK keyed on the patient's first order number, so
  a corrected result finds the same one), RelatedPerson (NK1), the ServiceRequest each report
  answers (basedOn is now a reference to it, keyed as the order feed keys the order),
  Practitioners for OBX-16/OBX-25 performers and OBR-32/33/34 interpreters and
  technicians, the performing Organization (OBX-23/24), Device (OBX-18), and a
  DocumentReference for an RP (reference pointer) value, which the Observation derives
  from. The Bundle ends with the message's Provenance.
- Observation: NR valueRange, DR valuePeriod, CNE/CF coded values, FT formatting decoded,
  bodySite OBX-20, issued OBX-19 when OBR-22 is not sent, dataAbsentReason when OBX-5
  is empty (not-performed when cancelled), encounter; category vital-signs for LOINC
  vital signs, imaging or procedure for those sections (OBR-24), else laboratory; the
  performing lab from OBX-23/24, else OBX-15 (reference labs). An isolate named by a
  susceptibility panel's OBR-26 lists that panel's results as hasMember.
- Units: as v1, and also UCUM when the only unit is text that parses as UCUM ("^mg/dL")
  or a common spelling of one unit (mmHg, mEq/L, K/uL, x10E3/uL, uIU/mL, lbs, degF); the
  unit text stays as sent. An NM written "<0.01" is a quantity with its comparator.
- DiagnosticReport: effectivePeriod when OBR-8 differs from OBR-7 (without OBR-7, when
  the specimen was collected), issued OBR-22 else
  MSH-7 (as an instant: US Core requires it), the ORC-4 placer group number, basedOn the
  OBR-29 parent order too, performer (OBR-34/33) and resultsInterpreter (OBR-32) as
  Practitioners, conclusion the text of an impression or final diagnosis result (LOINC
  19005-8, 22637-3, 59776-5, 18834-2), presentedForm with size, hash and title; OBR-10
  collector and OBR-14 received time fill in the first Specimen.
- Ids are unchanged for the same facts: Patient as hl7v2-adt-to-fhir@1, DiagnosticReport
  and Observation as v1 (a resend or an upgrade updates rather than duplicates).
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import oru
from engine.mapping import mapping


@mapping("hl7v2-oru-to-fhir@2", accepts="hl7v2", emits="application/fhir+json")
def oru_to_fhir(message: Hl7Message):
    return convert(message, oru.build)
