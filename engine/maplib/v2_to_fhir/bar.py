"""BAR: a patient account's billing facts (add P01, purge P02, update P05, end P06, APC
groups P10, diagnosis/procedure update P12) as the Account with its Patient, visit,
guarantors, coverages (with each AUT as a preauthorization ClaimResponse), diagnoses,
procedures, allergies and observations.

A P02 purges the accounts of one or more patients (one PID group each): every group is
mapped, its Account inactive. A patient's repeated VISIT groups (PV1 and what follows)
are each an Encounter with their own diagnoses, procedures, guarantors and coverages, on
the one Account. A P06 ends an account: inactive too. A P12 updates a visit's diagnoses
and procedures; DG1-21/PR1-20 action D marks one entered-in-error.
"""

from __future__ import annotations

from typing import TypeVar

from engine.formats.hl7v2 import Hl7Message, Segment
from engine.leniency import at
from engine.maplib.v2_to_fhir import clinical, financial, people, ref, results, visit
from engine.maplib.v2_to_fhir.frame import Build
from engine.maplib.v2_to_fhir.provenance import finish
from engine.mapping_base import Skip

EVENTS: tuple[str, ...] = ("P01", "P02", "P05", "P06", "P10", "P12")
RESOURCES: tuple[str, ...] = (
    "Patient", "RelatedPerson", "Encounter", "EpisodeOfCare", "Location", "Practitioner",
    "Organization", "Account", "Coverage", "Condition", "Procedure", "AllergyIntolerance",
    "Observation", "Device", "DocumentReference", "ClaimResponse", "Provenance", "MessageHeader",
)
T = TypeVar("T")
SURVEY = results.Context(otherwise="survey")  # answers given at registration
_ENDED = frozenset({"P02", "P06"})  # purge / end: the account is no longer active


def build(message: Hl7Message) -> dict | Skip:
    b = Build(message, "BAR")
    if b.event not in EVENTS:
        return Skip(f"BAR^{b.event or '(no event)'} is not a billing event this mapping reads")
    groups = [visits for patient in patient_groups(message) for visits in visit_groups(patient)]
    if len(groups) <= 1:
        account_facts(b, b)
    else:
        for segments in groups:
            pid = next(s for s in segments if s.name == "PID")
            patients = next(n for n, s in enumerate(message.all("PID"), start=1) if s is pid)
            with at("PID", patients):  # PID[2]-7: the second patient's birth date
                account_facts(_part(Hl7Message(segments, message.delimiters), message), b)
    return finish(b)


def account_facts(b: Build, into: Build) -> None:
    """One patient's account facts from `b`'s message, kept in `into`."""
    people.patient(b)
    visit.encounter(b)
    people.assigners(b)
    people.related_persons(b)
    people.mother(b)
    clinical.allergies(b)
    results.observations(b, b.message.all("OBX"), context=SURVEY)
    visit.accident(b)
    clinical.conditions(b)
    clinical.procedures(b)
    visit.episode_of_care(b)
    coverages = financial.coverages(b)
    b.each("AUT", lambda aut, n: b.add(ref.authorization(b, aut, coverages)))
    financial.guarantors(b)
    account = financial.account(b)
    if b.event in _ENDED:
        account["status"] = "inactive"
    if into is not b:
        for resource in b.resources():
            _merge(into, resource)


def _merge(into: Build, resource: dict) -> None:
    """Keep `resource` in `into`; when another group made it too (the Patient and its
    Account in every VISIT group), add the list items (coverages, guarantors) it lacked."""
    kept = into.add(resource, merge=True)
    if kept is None or kept is resource:
        return
    for key, value in resource.items():
        if isinstance(value, list) and isinstance(kept.get(key), list):
            kept[key] += [v for v in value if v not in kept[key]]


def _part(group: Hl7Message, whole: Hl7Message) -> Build:
    """One patient (P02) or visit group, its segments numbered as in the whole message."""
    return Build(group, "BAR", numbered_in=whole)


def visit_groups(segments: list[Segment]) -> list[list[Segment]]:
    """A patient group's VISIT groups (BAR_P01 repeats them): what comes before the first
    PV1 (MSH, EVN, PID, PD1) with each PV1 and the segments up to the next."""
    first = next((i for i, s in enumerate(segments) if s.name == "PV1"), len(segments))
    head, rest = segments[:first], segments[first:]
    visits: list[list[Segment]] = []
    for segment in rest:
        if segment.name == "PV1" or not visits:
            visits.append([*head, segment])
        else:
            visits[-1].append(segment)
    return visits or [head]


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
