"""Which fields of a message a conversion read, and so which it left behind.

Analysts ask every converter "what did you not map?". A conversion reads a tracked copy
of the message (`tracked`): each segment records the fields its readers index, at the
cost of one set insertion per read and nothing for the untracked messages every other
step reads. `left_behind` then lists each field that held a value but was never read,
by segment occurrence (`OBX[3]-17`, the first occurrence as plain `PV1-39`).
"""

from __future__ import annotations

from engine.formats.hl7v2.message import HEADER_SEGMENTS, Hl7Message, Segment

# Segments whose field 1 is a Set ID: a sequence number, not a fact to map.
_SET_ID_FIRST = frozenset({
    "PID", "PV1", "NK1", "GT1", "AL1", "IAM", "DG1", "PR1", "OBX", "OBR", "IN1", "NTE",
    "FT1", "SPM", "TQ1", "TXA", "AIS", "AIG", "AIL", "AIP", "RGS", "ROL", "PRT", "CON",
    "ACC", "UB2", "DRG", "OM1", "BLG", "RXA", "ARV", "CDO",
})


class _ReadFields(list):
    """A segment's fields that remember which were indexed."""

    __slots__ = ("read",)

    def __init__(self, fields: list[str]) -> None:
        super().__init__(fields)
        self.read: set[int] = set()

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, int):
            self.read.add(index)
        return list.__getitem__(self, index)


class _TrackedSegment(Segment):
    __slots__ = ()

    def _split(self) -> list[str]:
        fields = self._fields
        if not isinstance(fields, _ReadFields):
            fields = _ReadFields(fields if fields is not None else super()._split())
            self._fields = fields
        return fields


def tracked(message: Hl7Message) -> Hl7Message:
    """A copy of `message` whose segments record the fields read from them."""
    copies: list[Segment] = []
    for segment in message.segments:
        copy = _TrackedSegment(segment.text, segment.delimiters)
        copy._split()  # wrap now: readers may index `_fields` directly
        copies.append(copy)
    return Hl7Message(copies, message.delimiters)


# Segments whose field 1 is a Set ID too, but which the first release of the lenient
# mappings listed as left behind; a later release passes them (`also_set_ids`), so a
# released version's report never changes.
LATER_SET_ID_FIRST = frozenset({"DB1", "IN3"})


def left_behind(message: Hl7Message, also_set_ids: frozenset[str] = frozenset()
                ) -> list[str]:
    """Every non-empty field of a `tracked` message that no reader indexed (Set IDs and
    the header's delimiters are structure, not facts, and never listed; `also_set_ids`
    names more segments whose field 1 is a Set ID)."""
    occurrences: dict[str, int] = {}
    found: list[str] = []
    for segment in message.segments:
        n = occurrences[segment.name] = occurrences.get(segment.name, 0) + 1
        fields = segment._split()
        read = fields.read if isinstance(fields, _ReadFields) else set()
        set_id_first = segment.name in _SET_ID_FIRST or segment.name in also_set_ids
        first = 3 if segment.name in HEADER_SEGMENTS else (2 if set_id_first else 1)
        label = segment.name if n == 1 else f"{segment.name}[{n}]"
        for index in range(first, len(fields)):
            if index not in read and list.__getitem__(fields, index):
                found.append(f"{label}-{index}")
    return found
