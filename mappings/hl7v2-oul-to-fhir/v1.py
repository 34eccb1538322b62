"""hl7v2-oul-to-fhir@1: laboratory results from an automated lab (OUL^R22 specimen-
centric, R23 container-centric, R24 order-centric) as a FHIR R4 transaction Bundle,
leniently.

Choices a receiver will notice:
- Specimens (SPM) carry their containers (SAC: container id, type, volumes) and are
  keyed on SPM-2 (the filler's id, else the placer's), so the tube an OUL reports on is
  the one the order feed (OML) and the ORU feed name.
- Each OBR is a DiagnosticReport with its ServiceRequest and Observations exactly as
  hl7v2-oru-to-fhir@2 maps them (same ids for the same order number and test), so a
  result reaching a receiver by OUL and by ORU is one result. In R22/R23 the SPM before
  the orders is their specimen; in R24 the SPMs inside the order are.
- OBX right after an SPM (hemolysis, lipemia indices) are Observations about that
  specimen, with no report; OBX right after the PID are about the patient.
- Values, units, ranges, flags, statuses, performers and devices follow
  `v2_to_fhir.results` (every OBX value type; a value that cannot be read is kept as text
  with a located warning).
- Only a message without a PID (a QC run) or without any SPM, OBR or OBX fails; another
  event is skipped with a reason. The Bundle ends with the message's Provenance.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import oul
from engine.mapping import mapping


@mapping("hl7v2-oul-to-fhir@1", accepts="hl7v2", emits="application/fhir+json")
def oul_to_fhir(message: Hl7Message):
    return convert(message, oul.build)
