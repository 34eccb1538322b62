"""hl7v2-ras-to-fhir@1: a pharmacy administration (RAS^O17, v2.3's RAS^O01) as a FHIR R4
transaction Bundle, leniently.

Choices a receiver will notice:
- One MedicationAdministration per RXA: medicationReference to a Medication (RXA-5 code
  with its coding system, RXA-8 form, RXA-13/14 strength per RXA-23/24 volume, RXA-15
  lot, RXA-16 expiry and RXA-17 manufacturer as batch); effectiveDateTime RXA-3, or a
  period to RXA-4 when that differs; performer RXA-10 Practitioners (function
  performer); reasonCode RXA-19 indication; note RXA-9 administration notes and the NTE
  after the RXA; dosage: route, site and method from the RXR after the RXA (RAS sends one
  RXR for a run of RXA; else the order's), dose RXA-6 in RXA-7 units, or with RXA-12
  (a time unit such as H1) rateRatio, the amount per that time.
- status: RXA-21 D (table 0323) entered-in-error; else RXA-20 through table 0322: CP
  completed, RE refused and NA not administered not-done (statusReason RXA-18),
  PA partially administered stopped; empty completed, as an RXA reports a dose given.
- request: the order's MedicationRequest, made from its RXE (else RXO) exactly as
  hl7v2-rde-to-fhir@2 makes it (same id, keyed on ORC-2, else ORC-3), so the order,
  dispense and administration feeds meet on one resource.
- The MedicationAdministration id is derived from the order (ORC-2, else ORC-3, else
  the MedicationRequest), RXA-1 give and RXA-2 administration counters and RXA-3: a
  resend or an update (RXA-21 U) changes it, the next dose is a new one.
- The OBX after a run of RXA are Observations about those administrations (partOf, and
  their supportingInformation) based on the MedicationRequest; AL1 gives
  AllergyIntolerance; PV1 the Encounter (context).
- R4's MedicationAdministration has no place for RXA-11 administered-at location or
  RXA-22 system entry time: they are reported as left behind.
- A value that cannot be read is a warning located by segment, occurrence and field, and
  the rest maps; an RXA without a drug, or without a readable time (R4 requires one), is
  dropped with a warning. Only a message without a PID fails. The Bundle ends with a
  Provenance, and every field with a value no rule read is reported.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import ras
from engine.mapping import mapping


@mapping("hl7v2-ras-to-fhir@1", accepts="hl7v2", emits="application/fhir+json")
def ras_to_fhir(message: Hl7Message):
    return convert(message, ras.build)
