"""BAR: a patient account's billing facts (add P01, purge P02, update P05, end P06,
diagnosis/procedure update P12) as the Account with its Patient, visit, guarantors,
coverages, diagnoses, procedures, allergies and observations.

A P02 purges the accounts of one or more patients (one PID group each): every group is
mapped, its Account inactive. A P06 ends an account: inactive too. A P12 updates a
visit's diagnoses and procedures; DG1-21/PR1-20 action D marks one entered-in-error.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message, Segment
from engine.maplib.v2_to_fhir import clinical, financial, people, results, visit
from engine.maplib.v2_to_fhir.frame import Build
from engine.mapping_base import Skip

EVENTS: tuple[str, ...] = ("P01", "P02", "P05", "P06", "P12")
RESOURCES: tuple[str, ...] = (
    "Patient", "RelatedPerson", "Encounter", "Location", "Practitioner", "Organization",
    "Account", "Coverage", "Condition", "Procedure", "AllergyIntolerance", "Observation",
    "Provenance", "MessageHeader",
)
_ENDED = frozenset({"P02", "P06"})  # purge / end: the account is no longer active


def build(message: Hl7Message) -> dict | Skip:
    b = Build(message, "BAR")
    if b.event not in EVENTS:
        return Skip(f"BAR^{b.event or '(no event)'} is not a billing event this mapping reads")
    groups = patient_groups(message)
    if len(groups) <= 1:
        account_facts(b, b)
    else:
        for segments in groups:
            part = Build(Hl7Message(segments, message.delimiters), "BAR")
            account_facts(part, b)
    return b.bundle()


def account_facts(b: Build, into: Build) -> None:
    """One patient's account facts from `b`'s message, kept in `into`."""
    people.patient(b)
    visit.encounter(b)
    people.related_persons(b)
    clinical.allergies(b)
    results.observations(b, b.message.all("OBX"))
    clinical.conditions(b)
    clinical.procedures(b)
    financial.coverages(b)
    financial.guarantors(b)
    account = financial.account(b)
    if b.event in _ENDED:
        account["status"] = "inactive"
    if into is not b:
        for resource in b.resources():
            into.add(resource, merge=True)


def patient_groups(message: Hl7Message) -> list[list[Segment]]:
    """MSH and EVN with each PID and the segments up to the next PID (P02 purges the
    accounts of several patients in one message)."""
    head = [s for s in message.segments[:2] if s.name in ("MSH", "EVN")]
    groups: list[list[Segment]] = []
    for segment in message.segments:
        if segment.name == "PID":
            groups.append([*head, segment])
        elif groups:
            groups[-1].append(segment)
    return groups
