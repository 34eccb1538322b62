"""hl7v2-adt-to-fhir@4: every ADT event as a FHIR R4 transaction Bundle, leniently; v3
with the patient-key rule of hl7v2-to-fhir@2 (`engine.maplib.v2_to_fhir.rules.SECOND`).

What a receiver notices against v3:
- The Patient id (and every reference to it: Encounter.subject, RelatedPerson.patient,
  AllergyIntolerance.patient, Condition.subject, Coverage.beneficiary, ...) is keyed on
  PID-3's local record number (type MR, then MRN, PI, PT, PN, MRT, PE; then an
  identifier of no or another type; an SSN, licence, payer, national or account number
  only when nothing else is sent), within its assigning authority (CX-4), and within the
  sending facility (MSH-4, else MSH-3) only when CX-4 is empty. So the ADT and the lab
  feed of one hospital (two MSH-4s, the hospital's authority in PID-3.4) update one
  Patient, which hl7v2-oru-to-fhir@3 refers to. Ids derived from the Patient's (NK1,
  AL1, IN1 keys) change with it. Without a PID-3 id, PID-2 or PID-4 key it by the same
  rule. A merge (MRG) retires the prior patient keyed by the same rule.
- A Patient whose chosen identifier has no CX-4 keeps v3's id; one with CX-4 gets a new
  id: see mappings/README.md before moving a channel that already wrote to a server.
- OBX-6 `F` is UCUM [degF]; coding system `CPT4` is CPT; DB1-1 and IN3-1 (set ids) are
  not listed as left behind.

Everything else is v3's: see `hl7v2-adt-to-fhir/v3.py`.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import adt, rules
from engine.mapping import mapping


@mapping("hl7v2-adt-to-fhir@4", accepts="hl7v2", emits="application/fhir+json")
def adt_to_fhir(message: Hl7Message):
    with rules.using(rules.SECOND):
        return convert(message, adt.build)
