"""hl7v2-oml-to-fhir@1: an OML^O21 laboratory order (and the specimen-first O33 and
O35, read as O21 with each order under the SPM that heads it) as a FHIR R4 transaction
Bundle, leniently.

Versions 2.4 to 2.8 (OML first appears in 2.4). Any other type fails naming MSH-9; an
OML event other than O21, O33 or O35 is skipped. Until now hl7v2-orm-to-fhir@1 read OML^O21; this
mapping keeps its ServiceRequest and Specimen ids (uuid5 of the placer's facility and
ORC-2/OBR-2, else ORC-3/OBR-3; a Specimen by SPM-2, else its order and SPM-1), so
switching a channel updates what v1 wrote.

Choices a receiver will notice:
- One ServiceRequest per ORC/OBR group: identifiers ORC-2/OBR-2 (PLAC), ORC-3/OBR-3
  (FILL), OBR-53, ORC-4 as requisition (PGN); status ORC-5, else ORC-1 (a placer's
  cancel is revoked at once, a hold on-hold), else OBR-25; intent order (reflex-order
  for OBR-11 G, filler-order for ORC-1 SN); code OBR-4 (a data-absent-reason when
  empty: US Core requires a code); category OBR-24 (v2-0074, LAB beside a laboratory
  section; LAB when OBR-24 is empty); priority TQ1-9, ORC-7.6, OBR-27.6, OBR-5 (S stat,
  A asap, R routine, URGENT urgent); occurrence a Timing from TQ1 (start and end, else
  TQ1-6 duration; TQ1-14 count, TQ1-13 duration, TQ1-3 pattern) or a dateTime, else
  ORC-7, OBR-27, ORC-15, OBR-6, OBR-7/8; quantity TQ1-2; authoredOn ORC-9 (not on an
  order control that changes a placed order); requester ORC-12, else OBR-16, a
  Practitioner (with an ORC-21 ordering facility, the PractitionerRole of that person
  there), else ORC-21 as an Organization; locationCode ORC-29, locationReference
  ORC-13; reasonCode OBR-31, reasonReference the group's DG1 as Conditions; notes the
  NTE after ORC/OBR and OBR-13 relevant clinical information; orderDetail OBR-46/47;
  basedOn the OBR-29 parent order (a logical reference by its number); the ordering
  Practitioner gains ORC-24 address and ORC-14 (else OBR-17) phone; v2.7+ PRT: RT
  referred-to provider and PO performing organization as performers, OP ordering
  provider as requester when ORC-12 and OBR-16 name none, EP/VP on the Provenance below
  (PRT-2 DE, a removed participant, is left out).
- Specimens: each SPM with its SAC containers (SPM-2/30/31/32 ids, SPM-3 parent as a
  logical reference, SPM-4 type, SPM-6 additive, SPM-7 method, SPM-8 site, SPM-12
  quantity, SPM-14 description, SPM-17 collected, SPM-18 received, SPM-20/21 status,
  SPM-24/28 condition, SPM-27 container; SAC-1/2/3 container ids, SAC-21/22/24
  volumes, SAC-27 additive; OBR-10 collector, OBR-7 when SPM-17 is empty); else OBR-15.
- OBX before the group's first SPM are answers to ask-at-order-entry questions: one
  Observation each (every value type), basedOn the order and listed in supportingInfo;
  OBX after an SPM are about that specimen (Observation.specimen). Both are laboratory
  Observations (unless OBR-24 names a section that is not a lab's).
- ORC-10 entered by, ORC-11 verified by and ORC-19 action by (on behalf of the ORC-17
  entering organization, else the sending facility MSH-4): a Provenance of the order
  (FHIR has no ServiceRequest element for them), with ORC-16 as its reason and ORC-15 as
  when it takes effect; an order control that changes a placed order gets one recording
  when (ORC-9).
- The patient group: Patient (the id hl7v2-adt-to-fhir@1 gives the PID), Encounter,
  RelatedPerson (NK1), AllergyIntolerance (AL1), Condition (DG1), Coverage (IN1), the
  Account (PID-18) and its guarantors (GT1), ChargeItem (FT1); the Bundle ends with the
  message's MessageHeader and Provenance.
- A value that cannot be read is a warning located by segment, occurrence and field;
  an order that cannot be mapped costs only that order. Only a message without a PID
  fails; one without any ORC or OBR maps its patient, with a warning at ORC. Every
  field no rule read is reported. What follows a second PID (another patient's orders)
  is left out with a warning at PID[2], never filed under the first patient. PRIOR_RESULT
  groups (a PV1 after the orders, then earlier ORC/OBR/OBX sent for context) are not
  read as new orders: they are reported as left behind.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import oml
from engine.mapping import mapping


@mapping("hl7v2-oml-to-fhir@1", accepts="hl7v2", emits="application/fhir+json")
def oml_to_fhir(message: Hl7Message):
    return convert(message, oml.build)
