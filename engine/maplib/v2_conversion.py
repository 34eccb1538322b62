"""How a lenient HL7v2 mapping runs: on a tracked copy of the message, under
`engine.leniency`, so its result carries its warnings and the fields it left behind.

    @mapping("hl7v2-adt-to-fhir@3", accepts="hl7v2", emits="application/fhir+json")
    def adt_to_fhir(message):
        return convert(message, _bundle)

A segment converter that gives up (`per_segment`) costs only what that segment would
have made; a reader that cannot read one value costs that value. What fails the whole
message is what leaves nothing to map to: no PID in a patient message, say.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from engine.formats.hl7v2 import Hl7Message, Segment
from engine.formats.hl7v2.reads import LATER_SET_ID_FIRST, left_behind, tracked
from engine.leniency import guard, lenient
from engine.maplib.v2_to_fhir import rules
from engine.mapping_base import Mapped, Skip

T = TypeVar("T")


def convert(message: Hl7Message, build: Callable[[Hl7Message], dict | Skip]) -> Mapped | Skip:
    """Run `build` leniently on a tracked copy of `message`."""
    copy = tracked(message)
    with lenient() as notes:
        result = build(copy)
    if isinstance(result, Skip):
        return result
    switches = rules.current()
    set_ids = LATER_SET_ID_FIRST if switches.set_ids_read else frozenset()
    behind = left_behind(copy, set_ids)
    if switches.set_ids_read:  # and the acknowledgment types, which the engine reads
        behind = [f for f in behind if f not in ENGINE_READS]
    return Mapped(result, tuple(notes.warnings), tuple(behind), tracked=True)


# MSH-15 and MSH-16: the acknowledgment types the engine answers by, never lost.
ENGINE_READS = frozenset({"MSH-15", "MSH-16"})


def per_segment(message: Hl7Message, name: str, convert_one: Callable[[Segment, int], T | None]
                ) -> list[T]:
    """`convert_one(segment, occurrence)` for every `name` segment, each guarded: one that
    cannot be converted is a warning located at its occurrence, the others still map."""
    found: list[T] = []
    for n, segment in enumerate(message.all(name), start=1):
        result = guard(name, n, lambda s=segment, n=n: convert_one(s, n))
        if result is not None:
            found.append(result)
    return found
