"""ADT: every admit, visit and person event as Patient, Encounter and what the message
carries about them (related persons, allergies, diagnoses, coverage)."""

from __future__ import annotations

from engine.maplib.v2_to_fhir import clinical, financial, people, visit
from engine.maplib.v2_to_fhir.frame import Build
from engine.mapping_base import Skip

# Events about the person alone: no Encounter, even when a PV1 is sent.
PERSON_EVENTS = frozenset({"A28", "A29", "A30", "A31", "A40", "A47"})
EVENTS = frozenset({f"A{n:02d}" for n in (*range(1, 18), *range(25, 32))}
                   | {"A40", "A41", "A45", "A47", "A60"})


def build(message) -> dict | Skip:
    b = Build(message, "ADT")
    if b.event not in EVENTS:
        return Skip(f"ADT^{b.event or '(no event)'} is not an ADT event this mapping reads")
    people.patient(b)
    if b.event not in PERSON_EVENTS:
        visit.encounter(b)
    people.related_persons(b)
    clinical.allergies(b)
    clinical.conditions(b)
    financial.coverages(b)
    return b.bundle()
