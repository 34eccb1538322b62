"""hl7v2-adt-to-fhir@2: an ADT event as a FHIR R4 transaction Bundle: everything v1 writes
(Patient, Encounter, with the same ids and content) plus RelatedPerson, AllergyIntolerance,
Condition and Coverage, and US Core race and ethnicity on the Patient.

Events, skips and errors are v1's: A01, A03, A04, A08, A11, A28 and A31 are mapped, any
other ADT event is skipped with a reason, a message that is not ADT fails naming MSH-9.

Choices a receiver will notice (v1's are in its docstring and still hold):
- Entries come in this order: Patient, Encounter, then one RelatedPerson per NK1, one
  AllergyIntolerance per AL1, one Condition per DG1, one Coverage per IN1, each a PUT at a
  deterministic id (see `engine.maplib.v2_clinical` for what each id is keyed on). Two
  segments that key to the same id (the same allergen twice, say) make one resource: the
  later segment's content, at the first one's place.
- Patient: PID-10 and PID-22 add the US Core race and ethnicity extensions (CDC codes in
  ombCategory/detailed, the sender's text in text); nothing else changes from v1.
- RelatedPerson: NK1-3 keeps its v2-0063 code plus the IG's v3-RoleCode; NK1-7 contact
  role is a second relationship; an NK1 naming nobody (no name, relationship, address or
  number) writes nothing.
- AllergyIntolerance: clinicalStatus active, verificationStatus unconfirmed (AL1 carries
  no verification); category from AL1-2 (DA medication, FA food, EA/PA/LA environment, AA
  biologic; MA/MC none); criticality from AL1-4 (SV high, MO/MI low, U unable-to-assess);
  "NKA"/"NKDA"/"NKFA" become SNOMED CT "no known ... allergy" without criticality or
  reaction. AL1 without an allergen fails naming AL1-3.
- Condition: category encounter-diagnosis plus DG1-6 (v2-0052); verificationStatus
  provisional for A (admitting) and W (working), confirmed for F (final); the Encounter is
  referenced when this message writes one, and the id is then keyed on the visit, so an
  A03's final diagnosis updates the A01's admitting one with the same code. In DG1, I10
  and I9 are ICD-10-CM and ICD-9-CM. DG1 without code or description fails naming DG1-3.
- Coverage: status active; payor is a display/identifier (IN1-4/IN1-3), never a resource;
  an IN1 with neither fails naming IN1-3; IN1-17 codes outside table 0063 keep only text.
- A28 and A31 write no Encounter (v1's rule), so their diagnoses are keyed on the patient.
- Coded values follow `engine.maplib.v2_codes`, as in every v2 mapping: a code without a
  coding system is urn:conduit:code:<facility>:local (this version first wrote
  urn:conduit:code:<facility>, without the name, unlike the other v2 mappings).
- Bundle.timestamp is MSH-7 when it has a time of day and a zone (`v2_fhir.bundle`;
  v1 writes none).
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib import v2_clinical as clinical
from engine.maplib.fhir import one_per_id
from engine.maplib.v2_fhir import (
    bundle,
    encounter,
    patient_of,
    sender_offset,
    sending_facility,
    trigger_event,
)
from engine.mapping import Skip, mapping

MAPPED_EVENTS = frozenset({"A01", "A03", "A04", "A08", "A11", "A28", "A31"})
PERSON_ONLY_EVENTS = frozenset({"A28", "A31"})


@mapping("hl7v2-adt-to-fhir@2", accepts="hl7v2", emits="application/fhir+json")
def adt_to_fhir(message: Hl7Message) -> dict | Skip:
    """Map one ADT message to a transaction Bundle, or skip an event this version omits."""
    event = trigger_event(message, "ADT")
    if event not in MAPPED_EVENTS:
        return Skip(f"ADT^{event} is not mapped by this version")
    facility = sending_facility(message)
    offset = sender_offset(message)
    person = patient_of(message)
    pid = message.segment("PID")
    extensions = clinical.race_and_ethnicity(pid) if pid is not None else []
    if extensions:
        person["extension"] = extensions
    resources = [person]
    visit = _encounter(message, event, facility, person["id"], offset)
    if visit is not None:
        resources.append(visit)
    resources += _clinical(message, facility, person["id"], visit, offset)
    return bundle(message, one_per_id(resources, latest=True))


def _encounter(
    message: Hl7Message, event: str, facility: str, patient_id: str, offset: str | None
) -> dict | None:
    """v1's Encounter: from PV1 when it has a visit number, never for A28/A31."""
    pv1 = message.segment("PV1")
    if pv1 is None or event in PERSON_ONLY_EVENTS:
        return None
    return encounter(pv1, event, facility, patient_id, offset)


def _clinical(
    message: Hl7Message, facility: str, patient_id: str, visit: dict | None, offset: str | None
) -> list[dict]:
    """RelatedPerson, AllergyIntolerance, Condition and Coverage, in that order."""
    visit_id = visit["id"] if visit is not None else None
    found = [
        clinical.related_person(nk1, n, facility, patient_id, offset)
        for n, nk1 in enumerate(message.all("NK1"), start=1)
    ]
    found += [clinical.allergy(al1, facility, patient_id, offset) for al1 in message.all("AL1")]
    found += [
        clinical.condition(dg1, facility, patient_id, visit_id, offset)
        for dg1 in message.all("DG1")
    ]
    found += [clinical.coverage(in1, facility, patient_id) for in1 in message.all("IN1")]
    return [r for r in found if r is not None]
