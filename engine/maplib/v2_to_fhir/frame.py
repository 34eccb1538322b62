"""One HL7v2 message's conversion to FHIR: the facts every converter needs (sending
facility, the sender's time zone, message type and event) and the resources made so far.

Resources are kept by id in the order first made, so a transaction never PUTs one twice:
a later segment about the same thing (the same allergen again) replaces the content at
the first one's place, and a party met again (the attending doctor in PV1 and in OBR)
only fills in what the first mention did not say (`add(..., merge=True)`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Segment
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import guard
from engine.maplib.fhir import transaction
from engine.maplib.v2_fhir import sending_facility
from engine.maplib.v2_to_fhir import rules
from engine.maplib.v2_to_fhir.sent_time import sent

T = TypeVar("T")
_EVENT_CODE = re.compile(r"[A-Z0-9]{1,8}\Z")


class Build:
    """A message being converted; see the module docstring."""

    def __init__(self, message: Hl7Message, *types: str, default_event: str = "",
                 numbered_in: Hl7Message | None = None) -> None:
        """Fails naming MSH-9 when the message is none of `types` (ADT, ORU, ...). A
        group of a larger message (a BAR's visit) is `numbered_in` that message, so its
        warnings say DG1[3], as the sender counts, not the group's own first DG1."""
        self.message = message
        self._numbered_in = numbered_in or message
        msh = message.segments[0]
        self.type = dt.present(msh.value(9, 1)).upper()
        if types and self.type not in types:
            raise MappingError(f"message type is not {' or '.join(types)}; this mapping "
                               f"reads {', '.join(types)} only", field="MSH-9")
        event = (dt.present(msh.value(9, 2)) or dt.present(message.value("EVN-1"))
                 or default_event).upper()
        self.event = event if _EVENT_CODE.match(event) else ""
        self.structure = dt.present(msh.value(9, 3)).upper()
        self.facility = sending_facility(message)
        self.rules = rules.current()  # the version's: see engine.maplib.v2_to_fhir.rules
        self.sent = sent(message)  # MSH-7 as a DTM, even when sent in ISO 8601 form
        self.offset = dt.dtm_offset(self.sent)
        self.patient: dict | None = None  # set by people.patient
        self.encounter: dict | None = None  # set by visit.encounter
        self._resources: dict[str, dict] = {}
        self._numbers: dict[int, int] | None = None

    # -- resources ------------------------------------------------------------------------

    def add(self, resource: dict | None, *, merge: bool = False) -> dict | None:
        """Keep `resource` (None is ignored); with `merge` an existing one of the same
        id keeps its elements and gains only those it lacked. Returns what is kept."""
        if resource is None:
            return None
        rid = resource["id"]
        kept = self._resources.get(rid)
        if kept is not None and merge:
            for key, value in resource.items():
                kept.setdefault(key, value)
            return kept
        self._resources[rid] = resource
        return resource

    def resources(self, kind: str | None = None) -> list[dict]:
        return [r for r in self._resources.values()
                if kind is None or r["resourceType"] == kind]

    @staticmethod
    def ref(resource: dict) -> dict:
        """A reference to a resource of this Bundle."""
        return {"reference": f"urn:uuid:{resource['id']}"}

    def patient_ref(self) -> dict | None:
        return self.ref(self.patient) if self.patient is not None else None

    def encounter_ref(self) -> dict | None:
        return self.ref(self.encounter) if self.encounter is not None else None

    # -- segments -------------------------------------------------------------------------

    def each(self, name: str, convert_one: Callable[[Segment, int], T | None],
             segments: Iterable[Segment] | None = None) -> list[T]:
        """`convert_one(segment, occurrence)` for every `name` segment (or those given, in
        message order), each guarded: one that gives up is a warning located at its
        occurrence, and the others still map."""
        chosen = list(segments) if segments is not None else self.message.all(name)
        found: list[T] = []
        for segment in chosen:
            n = self.occurrence(segment)
            result = guard(name, n, lambda s=segment, n=n: convert_one(s, n))
            if result is not None:
                found.append(result)
        return found

    def occurrence(self, segment: Segment) -> int:
        """Which `segment.name` of the message this is, from 1 (1 for a segment that is
        not the message's own)."""
        if self._numbers is None:
            counts: dict[str, int] = {}
            self._numbers = {}
            for s in self._numbered_in.segments:
                counts[s.name] = counts.get(s.name, 0) + 1
                self._numbers[id(s)] = counts[s.name]
        return self._numbers.get(id(segment), 1)

    def field(self, segment: Segment, number: int) -> str:
        """`OBX[3]-5`: a field's place, for warnings and keys."""
        n = self.occurrence(segment)
        return f"{segment.name}{'' if n == 1 else f'[{n}]'}-{number}"

    # -- the result -----------------------------------------------------------------------

    def transaction(self) -> dict[str, Any]:
        """The transaction Bundle of what was made (`provenance.finish` adds the
        message's Provenance first: every builder ends with it)."""
        kept = [_with_active(r) for r in self._resources.values()]
        return transaction(kept, self.timestamp())

    def timestamp(self) -> str | None:
        """MSH-7 as the Bundle's instant, or None when it has no time of day and zone
        or cannot be read (its warning is Provenance.recorded's)."""
        try:
            return dt.to_fhir_instant(self.sent, "MSH-7", self.offset)
        except MappingError:
            return None


# US Core makes `active` 1..1 on these; a party a sender names in a current message is in
# use, unless the message itself said otherwise (a merged-away record, an ended tie).
_ACTIVE_REQUIRED = frozenset({"Organization", "RelatedPerson"})


def _with_active(resource: dict) -> dict:
    if (resource["resourceType"] not in _ACTIVE_REQUIRED or "active" in resource
            or "end" in resource.get("period", {})):
        return resource
    rid = resource["id"]
    ordered = {"resourceType": resource["resourceType"], "id": rid, "active": True}
    ordered.update(resource)
    return ordered
