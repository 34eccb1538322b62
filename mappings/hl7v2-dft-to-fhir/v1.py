"""hl7v2-dft-to-fhir@1: DFT financial transactions (P03 post, P11 post detail) as a FHIR
R4 transaction Bundle.

Each FT1 is a ChargeItem on the patient's Account (PID-18): FT1-4 when, FT1-6 type
(a charge is billable; credits, payments and adjustments keep their type in a note),
FT1-7 code (CPT, HCPCS or the sender's charge master), FT1-10 quantity, FT1-11 (else
FT1-12) price, FT1-19 diagnoses as reasons, FT1-20 performer and FT1-21 orderer as
Practitioners, FT1-24 enterer, FT1-25 procedure (and in a P11 the PR1 of its group) as
the Procedure it names as its service (one with a PR1 of that code and day),
FT1-29 NDC as its product. DG1, PR1, GT1, IN1/IN2, ORC/OBR orders and OBX are mapped as
in the other HL7v2 mappings. Another event is skipped with a reason; a value that cannot
be read is a located warning; only a message without a PID fails.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import dft
from engine.mapping import mapping


@mapping("hl7v2-dft-to-fhir@1", accepts="hl7v2", emits="application/fhir+json")
def dft_to_fhir(message: Hl7Message):
    return convert(message, dft.build)
