"""hl7v2-vxu-to-fhir@2: a VXU^V04 as a FHIR R4 transaction Bundle, leniently.

What changed from v1 (a shadow run shows it per path):
- performer actors (RXA-10 administering, ORC-12 ordering) are Practitioner resources,
  manufacturer (RXA-17, MVX) an Organization and location (RXA-27, else RXA-11) a
  Location, where v1 wrote display-only references.
- Every OBX is also an Observation (partOf its Immunization; OBX before the first order
  are about the person); a 31044-1 reaction OBX is Immunization.reaction, 30973-2 dose
  number protocolApplied. A forecast group (RXA-5 998 with 30979-9 vaccines due next)
  is an ImmunizationRecommendation instead of a not-given Immunization.
- NK1 are RelatedPersons, PV1 the Encounter (referenced by each Immunization), IN1/AL1
  Coverage and AllergyIntolerance; RXA-19 is reasonCode; ORC-9 is recorded when RXA-22
  is not; several RXA-15 lots are kept together.
- A value that cannot be read is a warning located by segment, occurrence and field,
  and the dose still maps: RXA-20/21 outside tables 0322/0323 (completed, or not-done
  when RXA-18 gives a reason), an unreadable RXA-3 (RXA-4, else occurrenceString
  unknown), a bad RXA-16 expiry or RXA-6 amount (left out), an empty RXA-5 (vaccineCode
  data-absent unknown). The same dose twice keeps the later one with a warning. Only a
  message without a PID fails.
- route (RXR-1) and site (RXR-2) read a code sent without a coding system in table
  0162/0163 only when the table lists it; another is the sender's own (v1 wrote every
  such code into the table's system).
- Kept from v1: the Immunization id (ORC-3, else ORC-2, else patient|RXA-3|RXA-5), the
  Patient id hl7v2-adt-to-fhir gives, status, primarySource/reportOrigin, vaccine codes,
  programEligibility, fundingSource and education as v1 read them.
- The Bundle ends with a Provenance of the message, and every field with a value no rule
  read is reported.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import vxu
from engine.mapping import mapping


@mapping("hl7v2-vxu-to-fhir@2", accepts="hl7v2", emits="application/fhir+json")
def vxu_to_fhir(message: Hl7Message):
    return convert(message, vxu.build)
