"""hl7v2-rds-to-fhir@1: a pharmacy dispense (RDS^O13, v2.3's O01) as a FHIR R4
transaction Bundle, leniently.

Choices a receiver will notice:
- One MedicationDispense per RXD: medicationReference to a Medication (RXD-2 code with
  its coding system, RXD-6 form, RXD-16/17 strength per RXD-28/29 volume, the RXD's RXC
  as ingredients, RXD-18 lot and RXD-19 expiry as batch, RXD-20 manufacturer);
  whenHandedOver RXD-3; quantity RXD-4/5; performer RXD-10 Practitioners; location
  RXD-30 dispensing pharmacy; destination RXD-13 dispense-to location; type RXD-33
  (v2-0484); substitution RXD-11 (table 0167: N, 0, 1 not substituted; G, T substituted);
  note RXD-9 dispense notes, RXD-15 special instructions and the NTE after the RXD
  (NTE-5 author, NTE-6 time);
  dosageInstruction the RXR after the RXD (else the order's), the order's TQ1 and RXD-12
  total daily dose as maxDosePerPeriod.
- status from ORC-5 (CM completed, IP in-progress, SC preparation, CA cancelled, DC
  stopped, HD on-hold, ER entered-in-error; ORC-1 CA cancelled); otherwise completed, as
  an RDS reports a dispense made.
- authorizingPrescription: the order's MedicationRequest, made from its RXE (else RXO)
  exactly as hl7v2-rde-to-fhir@2 makes it (same id, keyed on ORC-2, else ORC-3), so the
  RDE and RDS feeds meet on one resource; without either, RXD-7 prescription number as a
  logical reference.
- The MedicationDispense id is derived from the order (ORC-2, else ORC-3, else RXD-7),
  RXD-1 dispense counter and RXD-3: a resend updates it, a refill dispensed later is a
  new dispense. identifier is ORC-3, the pharmacy's number.
- The order's OBX are Observations based on the MedicationRequest and part of the
  dispense; AL1 gives AllergyIntolerance; PV1 the Encounter (context).
- A value that cannot be read is a warning located by segment, occurrence and field, and
  the rest maps; an RXD without a drug is dropped with a warning. Only a message without
  a PID fails. The Bundle ends with a Provenance, and every field with a value no rule
  read is reported.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import rds
from engine.mapping import mapping


@mapping("hl7v2-rds-to-fhir@1", accepts="hl7v2", emits="application/fhir+json")
def rds_to_fhir(message: Hl7Message):
    return convert(message, rds.build)
