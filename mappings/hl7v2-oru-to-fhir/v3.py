"""hl7v2-oru-to-fhir@3: results (ORU^R01, R30-R32) as a FHIR R4 transaction Bundle,
leniently; v2 with the patient-key rule of hl7v2-to-fhir@2
(`engine.maplib.v2_to_fhir.rules.SECOND`).

What a receiver notices against v2:
- The Patient id, and so DiagnosticReport.subject, Observation.subject,
  Specimen.subject, ServiceRequest.subject and the Encounter's subject, is keyed on
  PID-3's local record number (type MR, then MRN, PI, PT, PN, MRT, PE; then an
  identifier of no or another type; an SSN, licence, payer, national or account number
  only when nothing else is sent) within its assigning authority (CX-4), and within the
  sending facility (MSH-4, else MSH-3) only when CX-4 is empty: a lab system with its
  own MSH-4 that sends the hospital's MRN with the hospital's authority files its
  results under the Patient hl7v2-adt-to-fhir@4 made from the ADT feed, not a second one.
- A Patient whose chosen identifier has no CX-4 keeps v2's id; one with CX-4 gets a new
  id: see mappings/README.md before moving a channel that already wrote to a server.
- OBX-6 `F` (vendor style for Fahrenheit) is UCUM [degF]; coding system `CPT4` is CPT.

Everything else is v2's: see `hl7v2-oru-to-fhir/v2.py`.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import oru, rules
from engine.mapping import mapping


@mapping("hl7v2-oru-to-fhir@3", accepts="hl7v2", emits="application/fhir+json")
def oru_to_fhir(message: Hl7Message):
    with rules.using(rules.SECOND):
        return convert(message, oru.build)
