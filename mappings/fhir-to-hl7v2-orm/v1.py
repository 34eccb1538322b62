"""fhir-to-hl7v2-orm@1: FHIR R4 ServiceRequests with their Patient as an HL7 v2.5.1
ORM^O01^ORM_O01 (MSH, PID, PV1, then per order ORC, OBR, NTE, DG1, OBX). The order groups are
written by `engine/maplib/fhir_to_v2_orders.py`.

Input: a ServiceRequest, or a Bundle of any type holding one or more (each is an order
group, in entry order), their Patient, and optionally the Encounter, Specimens,
Practitioners / PractitionerRoles (requester) and Conditions (reasonReference). Fails
naming the FHIR path: no ServiceRequest (Bundle.entry); a subject that is not a Patient
in the input, or orders about two patients (ServiceRequest.subject); a Specimen reference
the input does not carry; an intent that is not an order (a proposal or plan); a status
with no order control (draft, unknown); no code (OBR-4); no identifier and no id.
Drug, diet and supply orders (MedicationRequest, NutritionOrder, SupplyRequest) are not
sent by this version: a Bundle of only those fails naming Bundle.entry.

Choices a receiver will notice:
- MSH as fhir-to-hl7v2-adt@1 writes it; MSH-7 the first order's meta.lastUpdated, else
  its authoredOn, else Bundle.timestamp / meta.lastUpdated (never the clock); MSH-10
  hashes every order's id, version and status with MSH-7.
- PID as fhir-to-hl7v2-adt@1 writes it; PV1 from the first order's Encounter (class from
  table 0004, PV1-3 location, PV1-7 first participant, PV1-19 visit number), none
  without one.
- ORC-1 from status: active NW (XO after the first version), on-hold HD, revoked CA,
  completed SC with ORC-5 CM, entered-in-error CA with ORC-5 CA. ORC-2/OBR-2 the
  identifier typed PLAC (an untyped one, else the id), ORC-3/OBR-3 FILL, ORC-4 the
  requisition (else an identifier typed PGN); ORC-7 and OBR-27 ^^^start^end^priority
  (occurrence[x]; stat S, asap and urgent A, routine R); ORC-9 authoredOn; ORC-12 and
  OBR-16 the requester (XCN: id, name, degree, authority, NPI type), ORC-14/24 their
  phone and address; ORC-21/22/23 the ordering facility (the requester
  PractitionerRole's Organization: name, id, address, phone).
- OBR-4 code (CE); OBR-7/8 the first Specimen's collection time, OBR-15 its type (ORM has
  no SPM); OBR-24 a v2-0074 category. NTE after OBR: each note (NTE-4 RE) and the
  patientInstruction (PI). DG1 per reasonCode and reasonReference Condition code (DG1-6
  W, working). OBX per Observation in supportingInfo (answers at order entry: OBX-2/3/5/6
  as fhir-to-hl7v2-oru@1 writes them, OBX-11 O while registered).
"""

from __future__ import annotations

from engine.maplib import fhir_to_v2_orders as orders
from engine.mapping import mapping


@mapping("fhir-to-hl7v2-orm@1", accepts="fhir", emits="x-application/hl7-v2+er7")
def orders_to_orm(resource: dict) -> str:
    """One ORM^O01 for the ServiceRequests of the input."""
    return orders.order_message(resource, ("ORM", "O01", "ORM_O01"), timing=False, specimens=False)
