"""hl7v2-orm-to-fhir@2: an ORM^O01 order message as a FHIR R4 transaction Bundle,
leniently, with every kind of order it carries.

Versions 2.3 to 2.8. What changed from v1 (a shadow run shows it per path):
- Pharmacy (RXO with RXR/RXC), diet (ODS/ODT) and supply (RQD/RQ1) orders are no longer
  left out: they become MedicationRequest (with its Medication), NutritionOrder and
  SupplyRequest. ORC with OBR, or an ORC alone, is a ServiceRequest as before, with the
  same id (uuid5 of the placer's facility and ORC-2/OBR-2, else ORC-3/OBR-3), so v1's
  resources are updated, not duplicated.
- OML^O21 is no longer read here: hl7v2-oml-to-fhir@1 maps it. Any other type fails
  naming MSH-9.
- The message's people and visit are mapped as in hl7v2-adt-to-fhir@3: Patient (the same
  id), Encounter (PV1), RelatedPerson (NK1), AllergyIntolerance (AL1), Coverage (IN1),
  the Account (PID-18) and its guarantors (GT1), ChargeItem (FT1).
- ServiceRequest gains: requester as a resource (ORC-12, else OBR-16, a Practitioner;
  with an ORC-21 ordering facility, the PractitionerRole of that person there; the
  facility alone as an Organization), encounter, intent reflex-order for OBR-11 G and
  filler-order for ORC-1 SN, quantity TQ1-2, occurrence as a Timing from TQ1 (start and
  end, else TQ1-6 duration; TQ1-14 count, TQ1-13 duration, TQ1-3 pattern) or a dateTime,
  else ORC-7, OBR-27 (a v2.3 repeat interval as a Timing), ORC-15, OBR-6, OBR-7/8;
  authoredOn ORC-9 (not on an order control that changes a placed order, CA, DC, HD,
  XO, SC..., whose ORC-9 is the change's time); locationCode ORC-29, locationReference
  ORC-13; OBR-2/OBR-3 when they differ from ORC's and OBR-53 as identifiers; bodySite
  OBR-15.4; orderDetail OBR-46/47; basedOn the OBR-29 parent order (a logical reference
  by its number); DG1 as Conditions in reasonReference (OBR-31 stays reasonCode); the
  order's OBX (ask-at-order-entry answers) as Observations in supportingInfo (category
  laboratory when OBR-24 is a lab section, as the lab's results report them); OBR-13
  relevant clinical information as a note; the ordering Practitioner gains ORC-24
  address and ORC-14 (else OBR-17) phone; status falls back to OBR-25 (final:
  completed) when ORC-5 and ORC-1 say nothing; priority also reads URGENT as urgent.
  category stays OBR-24 only. v2.7+ PRT participations of the order: RT referred-to
  provider and PO performing organization as performers, OP ordering provider as the
  requester when ORC-12 and OBR-16 name none, EP/VP on the order's Provenance (a PRT
  whose PRT-2 action is DE is left out). An ORC alone (a cancel or hold repeating no OBR) has a
  data-absent-reason as its code: US Core requires one, and the PUT replaces the order.
- A Provenance of each order names ORC-10 entered by, ORC-11 verified by and ORC-19
  action by (FHIR's ServiceRequest has no element for them) on behalf of the ORC-17
  entering organization, else the sending facility MSH-4 (US Core's provenance-1), with
  ORC-16 as its reason and ORC-15 as when it takes effect; an order control that
  changes a placed order gets one too, recording when (ORC-9) and which change (ORC-1).
- Specimens: SPM with SAC containers (ids, SPM-3 parent, type, method, site, quantity,
  collected, received, availability, condition; OBR-10 collector, OBR-7 when SPM-17 is
  empty), OBR-15 with OBR-7/8 collected, OBR-9 volume,
  OBR-10 collector, OBR-14 received.
- NutritionOrder: ODS-1 D diets as oralDiet (ODS-3 type; a code naming a texture or a
  thickened fluid goes to texture or fluidConsistencyType; ODS-4 instruction; ODS-2 meal
  times and TQ1/ORC-7 start and end as schedule), S supplements, P preferences as
  foodPreferenceModifier; ODT trays as notes; dateTime ORC-15, else ORC-9, else MSH-7.
- SupplyRequest: item RQD-4/2/3, quantity RQD-5 (1 when empty) and RQD-6, deliverTo
  RQD-9, RQD-10 date needed; RQ1-2 manufacturer, RQ1-4 vendor, RQ1-7 substitution.
- Nothing odd costs the message: a value that cannot be read (a date that does not
  exist, a priority outside S/A/R, an order without a number, which is then keyed on the
  message control id) is a warning located by segment, occurrence and field, and an order
  that cannot be mapped at all costs only that order. Only a message without a PID
  fails; one without any ORC or order detail maps its patient, with a warning at ORC
  (v1 failed). Every field no rule read is reported.
- A second PID no longer fails the message: what follows it (another patient's orders,
  which must not land in the first patient's chart) is left out with a warning at PID[2]
  and reported as left behind.
- MedicationRequest is `pharmacy.medication_request`'s (as hl7v2-rde-to-fhir@2 makes it),
  plus the order's OBX as supportingInformation and its DG1 as reasonReference.
- The Bundle ends with the message's MessageHeader and Provenance.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import orm
from engine.mapping import mapping


@mapping("hl7v2-orm-to-fhir@2", accepts="hl7v2", emits="application/fhir+json")
def orm_to_fhir(message: Hl7Message):
    return convert(message, orm.build)
