"""hl7v2-rgv-to-fhir@1: pharmacy gives (RGV^O15, v2.3's RGV^O01) as a FHIR R4
transaction Bundle, leniently.

Choices a receiver will notice:
- A give is the pharmacy telling the nurses what to give and when (the administration
  record), not a report that it was given (that is the RAS, hl7v2-ras-to-fhir): each RXG
  is a MedicationRequest of intent instance-order, basedOn the order's MedicationRequest
  (from its RXE, else RXO, exactly as hl7v2-rde-to-fhir@2 makes it: same id, keyed on
  ORC-2, else ORC-3).
- The give's MedicationRequest: medicationReference to a Medication (RXG-4 code, RXG-8
  form, RXG-17/18 strength per RXG-23/24 volume, the give's RXC as ingredients, RXG-19
  lot, RXG-20 expiry and RXG-21 manufacturer as batch); status from ORC-1/ORC-5 as the
  order's; dosageInstruction: dose RXG-5/6 (a range when they differ) in RXG-7 units,
  rate RXG-15/16, RXG-13 special instructions, route, site and method from the give's
  RXR (else the order's), timing from the give's TQ1 (else the order's; v2.3: RXG-3,
  else ORC-7); reasonCode RXG-22; note RXG-9 and the NTE after the RXG; groupIdentifier
  ORC-4.
- Its id is derived from the order (ORC-2, else ORC-3, else the order's
  MedicationRequest), RXG-1 give and RXG-2 dispense counters: a resent or changed give
  updates it, the order's next give is another.
- The OBX after an RXG are Observations based on that give; AL1 gives
  AllergyIntolerance; PV1 the Encounter.
- A value that cannot be read is a warning located by segment, occurrence and field, and
  the rest maps; an RXG without a drug is dropped with a warning. Only a message without
  a PID fails. The Bundle ends with a Provenance, and every field with a value no rule
  read is reported (RXG-10/11/12/14/25/26 among them: R4 has no place for them on a
  request).
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import rgv
from engine.mapping import mapping


@mapping("hl7v2-rgv-to-fhir@1", accepts="hl7v2", emits="application/fhir+json")
def rgv_to_fhir(message: Hl7Message):
    return convert(message, rgv.build)
