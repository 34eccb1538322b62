"""VXU^V04: a vaccination record update as the Patient (with PD1), the people named
(NK1 RelatedPersons, Practitioners), the visit, one Immunization per RXA with what
surrounds it (manufacturer, location, OBX Observations, reactions) and a forecast's
ImmunizationRecommendation."""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_to_fhir import clinical, financial, immunization, people, results, visit
from engine.maplib.v2_to_fhir.frame import Build
from engine.maplib.v2_to_fhir.provenance import finish
from engine.mapping_base import Skip

EVENTS: tuple[str, ...] = ("V04",)
RESOURCES: tuple[str, ...] = (
    "Patient", "RelatedPerson", "Encounter", "Location", "Practitioner", "Organization",
    "Immunization", "ImmunizationRecommendation", "Observation", "Device",
    "DocumentReference", "AllergyIntolerance", "Coverage", "MessageHeader", "Provenance",
)


def build(message: Hl7Message) -> dict | Skip:
    b = Build(message, "VXU", default_event="V04")
    if b.event not in EVENTS:
        return Skip(f"VXU^{b.event or '(no event)'} is not a VXU event this mapping reads")
    people.patient(b)
    people.related_persons(b)
    visit.encounter(b)
    financial.coverages(b)
    clinical.allergies(b)
    results.observations(b, _person_observations(message),
                         context=results.Context(otherwise="survey"))
    immunization.immunizations(b)
    return finish(b)


def _person_observations(message: Hl7Message) -> list:
    """OBX before the first ORC/RXA: facts about the person (CDC IG's patient-level
    observations, e.g. evidence of immunity), not about a dose."""
    found = []
    for seg in message.segments:
        if seg.name in ("ORC", "RXA"):
            break
        if seg.name == "OBX":
            found.append(seg)
    return found
