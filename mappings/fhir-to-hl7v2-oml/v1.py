"""fhir-to-hl7v2-oml@1: FHIR R4 laboratory ServiceRequests with their Patient and
Specimens as an HL7 v2.5.1 OML^O21^OML_O21 (MSH, PID, PV1, then per order ORC, TQ1, OBR,
NTE, DG1, OBX, SPM). The order groups are written by `engine/maplib/fhir_to_v2_orders.py`.

Input and failures as fhir-to-hl7v2-orm@1 (one message for every ServiceRequest of the
input, one patient), and a Specimen without a type fails naming Specimen.type (SPM-4 is
required).

Choices a receiver will notice (beside those of fhir-to-hl7v2-orm@1):
- Timing is TQ1, v2.5's own segment, not ORC-7/OBR-27: TQ1-7/8 occurrence[x] start and
  end, TQ1-9 priority (stat S, asap and urgent A, routine R).
- One SPM per Specimen the order references, after its OBR, NTE, DG1 and OBX: SPM-2 the
  first identifier (placer) ^ accessionIdentifier (filler), SPM-4 type, SPM-7 collection
  method, SPM-8 body site, SPM-12 collected quantity, SPM-17 collected time (or period),
  SPM-18 receivedTime. OBR-7/8 repeat the first Specimen's collection time; OBR-15 is
  not written (SPM says it).
"""

from __future__ import annotations

from engine.maplib import fhir_to_v2_orders as orders
from engine.mapping import mapping


@mapping("fhir-to-hl7v2-oml@1", accepts="fhir", emits="x-application/hl7-v2+er7")
def orders_to_oml(resource: dict) -> str:
    """One OML^O21 for the ServiceRequests of the input."""
    return orders.order_message(resource, ("OML", "O21", "OML_O21"), timing=True, specimens=True)
