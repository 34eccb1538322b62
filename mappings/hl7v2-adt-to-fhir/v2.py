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
"""

from __future__ import annotations

import re

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib import v2_clinical as clinical
from engine.maplib.fhir import transaction
from engine.maplib.v2_fhir import encounter, patient_of, sender_offset, sending_facility
from engine.mapping import Skip, mapping

MAPPED_EVENTS = frozenset({"A01", "A03", "A04", "A08", "A11", "A28", "A31"})
PERSON_ONLY_EVENTS = frozenset({"A28", "A31"})

_EVENT_CODE = re.compile(r"[A-Z0-9]{1,8}\Z")


@mapping("hl7v2-adt-to-fhir@2", accepts="hl7v2", emits="application/fhir+json")
def adt_to_fhir(message: Hl7Message) -> dict | Skip:
    """Map one ADT message to a transaction Bundle, or skip an event this version omits."""
    event = _trigger_event(message)
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
    return transaction(_one_per_id(resources))


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


def _one_per_id(resources: list[dict]) -> list[dict]:
    """One resource per id: a transaction may not PUT the same resource twice, so a later
    segment with the same key replaces the earlier one where that one stood."""
    by_id: dict[str, dict] = {}
    for resource in resources:
        by_id[resource["id"]] = resource
    return list(by_id.values())


def _trigger_event(message: Hl7Message) -> str:
    """The ADT trigger event from MSH-9.2 (EVN-1 for old senders that leave it out)."""
    msh = message.segments[0]
    if dt.present(msh.value(9, 1)).upper() != "ADT":
        raise MappingError("message type is not ADT; this mapping reads ADT only", field="MSH-9")
    event = dt.present(msh.value(9, 2)) or dt.present(message.value("EVN-1"))
    event = event.upper()
    if not event:
        raise MappingError("has no trigger event (and EVN-1 is empty)", field="MSH-9")
    return event if _EVENT_CODE.match(event) else "(unrecognised event)"
