"""hl7v2-rde-to-fhir@2: a pharmacy encoded order (RDE O11, v2.3's O01) or a refill
authorization request (O25) as a FHIR R4 transaction Bundle, leniently.

What changed from v1 (a shadow run shows it per path):
- O25 is mapped (v1 skipped it); an order without RXE but with an RXO maps from the RXO.
- The drug is a Medication resource (RXE-2 code, RXE-6 form, RXE-25/26 strength per
  RXE-33/34 volume, RXC components as ingredients) and MedicationRequest.medicationReference
  points at it (v1 wrote medicationCodeableConcept).
- requester (ORC-12, else RXE-13, else ORC-21) and recorder (ORC-10, else ORC-19) are
  Practitioner resources (v1: a display name); RXE-40 dispensing pharmacy is
  dispenseRequest.performer (an Organization); RXE-39 is initialFill; RXE-19 total daily
  dose is maxDosePerPeriod; RXE-15 prescription number is an identifier; RXE-32 is
  authoredOn when ORC-9 is empty; ORC-8 is priorPrescription; RXE-21 is a note; RXR-5
  routing instruction is an additionalInstruction; a note's NTE-5 author is a
  Practitioner and NTE-6 its time; the order's OBX are Observations based on the
  MedicationRequest; AL1, IN1 and GT1 give AllergyIntolerance, Coverage and the
  Account's guarantors; PV1 gives the Encounter itself.
- An order with both RXO (as placed) and RXE (as encoded) gives two MedicationRequests
  of one order, as the reference converter does: the RXE's (v1's id, intent order)
  basedOn the RXO's (intent original-order, keyed apart; RXO-20 reasonCode, RXO-28
  dispenseInterval). ORC-21 ordering facility is an Organization (ORC-22/23 address and
  phone) with the requester's PractitionerRole at it. RXE-31 supplementary codes (an NDC
  beside RxNorm) are codings of the Medication. CDO cumulative dosage limits are
  maxDosePerPeriod, or maxDosePerLifetime for a lifetime (PL) interval.
- A value that cannot be read (an order control outside table 0119 -> status unknown, a
  dose that is not a number, a time of day that is not one) is a warning located by
  segment, occurrence and field, and the order still maps; an order without a drug is
  dropped with a warning. Only a message without a PID fails.
- Kept from v1: the MedicationRequest id (ORC-2, else ORC-3, within the sending
  facility), so v1 and v2 update one resource; the Patient id hl7v2-adt-to-fhir gives;
  status, doses, timing, units, route and site as v1 read them; intent order.
- The Bundle ends with a Provenance of the message, and every field with a value no rule
  read is reported.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import rde
from engine.mapping import mapping


@mapping("hl7v2-rde-to-fhir@2", accepts="hl7v2", emits="application/fhir+json")
def rde_to_fhir(message: Hl7Message):
    return convert(message, rde.build)
