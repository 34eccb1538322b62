"""What an X12 mapping could not read and left out, as located warnings for the analyst.

The X12 mappings never fail a set over one unreadable value: a claim total that is not
an amount, a birth date that is not a date, a gender outside M, F and U is left out of
its resource. Left out silently, though, nobody learns of it; so a mapping lists here,
per element it reads that way, how it reads it, and returns the warnings beside its
output (`engine.mapping_base.Mapped`): the same note a lenient HL7v2 conversion gives
(`engine.leniency.Note`).

A warning is located by the set's own field path, the segment's occurrence in the set
and the element (`DMG[2].02`, which a filter or `conduit` reads the same way), with the
loop and the segment's position, and says what was left out. It never holds the value:
warnings go to the audit trail and the analyst's page, and the values here are PHI.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from engine.formats.x12.structure import Node
from engine.formats.x12.tokens import Segment
from engine.leniency import Note
from engine.maplib import x12_fhir as xf


@dataclass(frozen=True)
class Read:
    """One element a mapping reads leniently: `readable(segment)` says whether it could;
    `what` names it and what the mapping leaves out without it."""

    segment: str
    element: int
    readable: Callable[[Segment], bool]
    what: str
    loops: tuple[str, ...] = ()  # only in these loops (the ones the mapping reads); all

    def within(self, *loops: str) -> Read:
        """The same read, only where the mapping reads it (an 834 member's 2100A)."""
        return replace(self, loops=loops)


def _amount(element: int) -> Callable[[Segment], bool]:
    return lambda segment: xf.amount(segment.element(element)) is not None


def _birth_date(segment: Segment) -> bool:
    return segment.element(1) == "D8" and xf.x12_date(segment.element(2)) is not None


def _gender(segment: Segment) -> bool:
    return xf.gender_of(segment.element(3)) is not None


CLAIM_TOTAL = Read("CLM", 2, _amount(2), "the claim total is not an amount; Claim.total "
                                         "is left out")
BIRTH_DATE = Read("DMG", 2, _birth_date, "the birth date is not a D8 (CCYYMMDD) date; "
                                         "Patient.birthDate is left out")
GENDER = Read("DMG", 3, _gender, "the gender is not M, F or U; Patient.gender is left out")


def unread(tree: Node, reads: Sequence[Read]) -> tuple[Note, ...]:
    """A warning per element of `reads` that holds a value the mapping cannot read, in
    the set's order."""
    placed = sorted((position, node.id, segment) for node in tree.walk()
                    for segment, position in zip(node.segments, node.positions,
                                                 strict=True))
    seen: dict[str, int] = {}
    notes: list[Note] = []
    for position, loop, segment in placed:
        seen[segment.id] = occurrence = seen.get(segment.id, 0) + 1
        for read in reads:
            if (read.segment == segment.id and (not read.loops or loop in read.loops)
                    and segment.element(read.element).strip()
                    and not read.readable(segment)):
                notes.append(Note(f"{segment.id}[{occurrence}].{read.element:02d}",
                                  f"{read.what} (loop {loop}, segment {position})"))
    return tuple(notes)
