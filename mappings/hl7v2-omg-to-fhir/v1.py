"""hl7v2-omg-to-fhir@1: an OMG^O19 general clinical order (a referral, consult, imaging
study, therapy) as a FHIR R4 transaction Bundle, leniently.

Versions 2.5 to 2.8 (OMG first appears in 2.5). Any other type fails naming MSH-9; an
OMG event other than O19 is skipped.

Each ORC/OBR group is a ServiceRequest exactly as hl7v2-oml-to-fhir@1 maps it (same
identifiers, status, intent, code, category, priority, timing, requester, reasons,
notes, specimens; same ids, keyed on the placer's facility and order number, so an
order and its results agree). OMG specifics a receiver will notice:
- category is OBR-24 when sent (RAD, CTH, PT, ...), none otherwise: a general order is
  not assumed to be a laboratory one.
- OBX in the order are the clinical facts sent with it (a referral's question, a
  weight for a contrast study): Observations basedOn the order, in supportingInfo;
  category laboratory only when OBR-24 is a lab section (pathology: SP), vital-signs for
  a LOINC vital sign, else none (a CT order's creatinine is not an imaging result).
- OBR-13 relevant clinical information (free text in most feeds) is a note.
- A referral's v2.7+ PRT RT (referred-to provider) and PO (performing organization) are
  the ServiceRequest's performers.
- The patient group, the Provenance of the order (ORC-10/11, changes), warnings and
  left-behind fields, a second PID and PRIOR_RESULT groups are as in
  hl7v2-oml-to-fhir@1.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import omg
from engine.mapping import mapping


@mapping("hl7v2-omg-to-fhir@1", accepts="hl7v2", emits="application/fhir+json")
def omg_to_fhir(message: Hl7Message):
    return convert(message, omg.build)
