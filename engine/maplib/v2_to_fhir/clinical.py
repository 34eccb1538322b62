"""Clinical facts most message types carry: AL1/IAM allergies, DG1 diagnoses, PR1
procedures and PRB problems, each a resource about the message's Patient."""

from __future__ import annotations

from engine.maplib import v2_clinical
from engine.maplib.v2_to_fhir.frame import Build


def allergies(b: Build) -> list[dict]:
    """One AllergyIntolerance per AL1 (the same allergen twice makes one)."""
    assert b.patient is not None
    pid = b.patient["id"]
    return [b.add(r) for r in b.each(
        "AL1", lambda al1, n: v2_clinical.allergy(al1, b.facility, pid, b.offset))]


def conditions(b: Build) -> list[dict]:
    """One Condition (an encounter diagnosis) per DG1."""
    assert b.patient is not None
    pid = b.patient["id"]
    visit = b.encounter["id"] if b.encounter is not None else None
    return [b.add(r) for r in b.each(
        "DG1", lambda dg1, n: v2_clinical.condition(dg1, b.facility, pid, visit, b.offset))]
