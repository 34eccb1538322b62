"""hl7v2-to-fhir@2: any HL7v2 message this engine maps, as a FHIR R4 transaction Bundle,
so a mixed feed needs one channel; v1's output except for the rules below
(`engine.maplib.v2_to_fhir.rules.SECOND`), for every message type.

What a receiver notices against v1:
- The Patient id (and so every reference to it: Encounter.subject, Observation.subject,
  ...) is keyed on the PID-3 identifier that is the patient's local record number: by
  type MR, then MRN (a vendor spelling), PI, PT, PN, MRT, PE; then an identifier of no
  or another type; an SSN, licence, payer, national or account number only when PID-3
  holds nothing else; the first sent of equals. v1 took the MR, else the first sent.
- It is keyed within that identifier's assigning authority (CX-4) when sent, and within
  the sending facility (MSH-4, else MSH-3) only when CX-4 is empty, so the same MRN from
  the ADT and the lab feed (two MSH-4s, one authority) is one Patient. v1 keyed within
  MSH-4 always. A Patient whose identifier has no CX-4 keeps v1's id when the same
  identifier is chosen; one with CX-4 gets a new id (see mappings/README.md before
  moving a channel that already wrote to a FHIR server). Merges (MRG) retire the prior
  patient under the same rule.
- OBX-6 `F` (Fahrenheit, as vendors write it) is UCUM [degF]; coding system `CPT4` is
  CPT (http://www.ama-assn.org/go/cpt).
- DFT: an FT1 amount written as an MO (`42.00^USD`, where CP.2 would be a two-letter
  price type) keeps its currency, CR is read as a credit (table 0017's CD), and a credit
  is a negative amount however it was signed.
- DB1-1 and IN3-1 (set ids) are no longer listed as left behind.

MSH-9.1 chooses the builder (ADT, BAR, DFT, REF, MDM, OMG, OML, ORM, ORU, OUL, RDE, RDS,
RAS, RGV, VXU, SIU, PPR); any other type is skipped with a reason. For ADT and ORU the
output is that of `hl7v2-adt-to-fhir@4` and `hl7v2-oru-to-fhir@3`; the other types have
no per-type version with these rules (mappings/README.md says why).
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import dispatch, rules
from engine.mapping import mapping


@mapping("hl7v2-to-fhir@2", accepts="hl7v2", emits="application/fhir+json")
def hl7v2_to_fhir(message: Hl7Message):
    with rules.using(rules.SECOND):
        return convert(message, dispatch.build)
