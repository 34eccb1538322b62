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
  the Account's guarantors (GT1), ChargeItem (FT1).
- ServiceRequest gains: requester as a Practitioner resource (ORC-12, else OBR-16; else
  the ORC-21 ordering facility as an Organization), encounter, authoredOn ORC-9 (not on
  an order control that changes a placed order, whose ORC-9 is the change's time),
  intent reflex-order for OBR-11 G, quantity TQ1-2, occurrence TQ1-7/8 (a Timing with
  TQ1-14 count), ORC-7, OBR-27, ORC-15, OBR-6, OBR-7/8; locationCode ORC-29,
  locationReference ORC-13; OBR-53 alternate placer numbers; bodySite OBR-15.4; DG1 as
  Conditions in reasonReference (OBR-31 stays reasonCode); the order's OBX
  (ask-at-order-entry answers) as Observations in supportingInfo; ORC-10 entered by and
  ORC-11 verified by as a Provenance of the order (an order control that changes a
  placed order, CA, DC, HD, XO..., gets one recording when, ORC-9); OBR-13 relevant
  clinical information as a note. category stays OBR-24 only.
- Specimens: SPM with SAC containers (ids, type, method, site, quantity, collected,
  received, availability, condition), OBR-15 with OBR-7/8 collected, OBR-9 volume,
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
  that cannot be mapped at all costs only that order. Only a message without a PID or
  without any ORC or order detail fails. Every field no rule read is reported.
- The Bundle ends with the message's Provenance.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import orm
from engine.mapping import mapping


@mapping("hl7v2-orm-to-fhir@2", accepts="hl7v2", emits="application/fhir+json")
def orm_to_fhir(message: Hl7Message):
    return convert(message, orm.build)
