"""Shadow mode: a candidate mapping version runs beside the live one on real traffic.

Only the live output is stored and delivered. The candidate's output is compared with it
structurally and the differences are counted per FHIR (or HL7) path, without list
positions, so an analyst sees e.g. "Patient.name.given differs in 12 of 4,000 messages"
and can move the channel to the new version with evidence, not hope.
"""

from __future__ import annotations

import collections
import time
from typing import Any

from engine.errors import MappingError
from engine.mapping_base import Mapped, Mapping, Skip
from engine.structdiff import diff_outputs, general_path

EXAMPLES_PER_PATH = 5  # message ids kept per differing path, for the analyst to open


class Shadow:
    def __init__(self, candidate: Mapping) -> None:
        self.candidate = candidate
        self.compared = 0
        self.differed = 0
        self.candidate_errors = 0
        self.paths: collections.Counter[str] = collections.Counter()
        self.examples: dict[str, collections.deque[str]] = {}
        self.since = time.time()

    def compare(self, message_id: str, body: Any, live: Mapped | Skip | MappingError) -> None:
        """Run the candidate on `body` and count how its outcome differs from `live`:
        its output, and which fields each left behind (`(left behind) PV1-39` when one
        version reads a field the other drops)."""
        self.compared += 1
        try:
            candidate: Mapped | Skip | MappingError = self.candidate.run(body)
        except MappingError as exc:
            candidate = exc
            self.candidate_errors += 1
        paths = self._differences(live, candidate)
        if not paths:
            return
        self.differed += 1
        for path in paths:
            self.paths[path] += 1
            self.examples.setdefault(path, collections.deque(maxlen=EXAMPLES_PER_PATH)
                                     ).append(message_id)

    def _differences(self, live: Any, candidate: Any) -> set[str]:
        if isinstance(live, Mapped) and isinstance(candidate, Mapped):
            dropped = set(live.left_behind) ^ set(candidate.left_behind)
            found = {f"(left behind) {_unnumbered(f)}" for f in dropped}
            try:
                changes = diff_outputs(live.output, candidate.output, self.candidate.emits)
            except ValueError:
                return found | {"(unreadable output)"}
            return found | {general_path(c.path) for c in changes}
        live_kind, candidate_kind = _outcome(live), _outcome(candidate)
        if live_kind != candidate_kind:
            return {f"(outcome: {live_kind} -> {candidate_kind})"}
        return set() if str(live) == str(candidate) else {f"({live_kind} reason)"}

    def summary(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate.ref,
            "since": self.since,
            "compared": self.compared,
            "differed": self.differed,
            "candidate_errors": self.candidate_errors,
            "paths": [{"path": p, "messages": n, "examples": list(self.examples[p])}
                      for p, n in self.paths.most_common()],
        }


def _outcome(value: Any) -> str:
    if isinstance(value, Skip):
        return "skipped"
    if isinstance(value, MappingError):
        return "error"
    return "output"


def _unnumbered(field: str) -> str:
    """`OBX[3]-17` as `OBX-17`: shadow counts paths, not occurrences."""
    name, _, rest = field.partition("-")
    return f"{name.split('[')[0]}-{rest}"
