"""BAR: a patient account's billing facts (add P01, purge P02, update P05, end P06,
diagnosis/procedure update P12) as the Account with its Patient, visit, guarantors,
coverages, diagnoses, procedures, allergies and observations.

A P02 purges the accounts of one or more patients (one PID group each): every group is
mapped, its Account inactive. A P06 ends an account: inactive too. A P12 updates a
visit's diagnoses and procedures; DG1-21/PR1-20 action D marks one entered-in-error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from engine.formats.hl7v2 import Hl7Message, Segment
from engine.leniency import at, guard
from engine.maplib.v2_to_fhir import clinical, financial, people, results, visit
from engine.maplib.v2_to_fhir.frame import Build
from engine.mapping_base import Skip

EVENTS: tuple[str, ...] = ("P01", "P02", "P05", "P06", "P12")
RESOURCES: tuple[str, ...] = (
    "Patient", "RelatedPerson", "Encounter", "Location", "Practitioner", "Organization",
    "Account", "Coverage", "Condition", "Procedure", "AllergyIntolerance", "Observation",
    "Device", "DocumentReference", "Provenance", "MessageHeader",
)
T = TypeVar("T")
_ENDED = frozenset({"P02", "P06"})  # purge / end: the account is no longer active


def build(message: Hl7Message) -> dict | Skip:
    b = Build(message, "BAR")
    if b.event not in EVENTS:
        return Skip(f"BAR^{b.event or '(no event)'} is not a billing event this mapping reads")
    groups = patient_groups(message)
    if len(groups) <= 1:
        account_facts(b, b)
    else:
        for n, segments in enumerate(groups, start=1):
            with at("PID", n):  # PID[2]-7: the second patient's birth date
                account_facts(_Part(Hl7Message(segments, message.delimiters), message), b)
    return b.bundle()


def account_facts(b: Build, into: Build) -> None:
    """One patient's account facts from `b`'s message, kept in `into`."""
    people.patient(b)
    visit.encounter(b)
    people.assigners(b)
    people.related_persons(b)
    people.mother(b)
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


class _Part(Build):
    """One patient group of a P02, its segments numbered as in the whole message so a
    warning names DG1[3]-5, not the group's own first DG1."""

    def __init__(self, group: Hl7Message, whole: Hl7Message) -> None:
        super().__init__(group, "BAR")
        self.whole = whole

    def each(self, name: str, convert_one: Callable[[Segment, int], T | None],
             segments: Iterable[Segment] | None = None) -> list[T]:
        chosen = list(segments) if segments is not None else self.message.all(name)
        numbers = {id(s): n for n, s in enumerate(self.whole.all(name), start=1)}
        found: list[T] = []
        for segment in chosen:
            n = numbers.get(id(segment), 1)
            result = guard(name, n, lambda s=segment, n=n: convert_one(s, n))
            if result is not None:
                found.append(result)
        return found

    def occurrence(self, segment: Segment) -> int:
        return next((n for n, s in enumerate(self.whole.all(segment.name), start=1)
                     if s is segment), 1)


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
