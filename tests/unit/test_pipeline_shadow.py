"""engine/pipeline/shadow.py: the candidate mapping beside the live one, its differences
counted per general path (no list positions), with example message ids."""

from __future__ import annotations

import json
from typing import Any

from engine.errors import MappingError
from engine.mapping import Mapping, Skip
from engine.mapping_base import Mapped
from engine.pipeline.shadow import EXAMPLES_PER_PATH, Shadow

FHIR = "application/fhir+json"


def _candidate(body: Any) -> Any:
    if body == "bad":
        raise MappingError("broken")
    if body == "skip":
        return Skip("not ours")
    patient = {"resourceType": "Patient", "name": [{"family": "DOE", "given": [body]}]}
    return Mapped(patient, left_behind=("PID-38",))


def live(given: str, left_behind: tuple[str, ...] = ("PID-38",)) -> Mapped:
    return Mapped(json.dumps({"resourceType": "Patient",
                              "name": [{"family": "DOE", "given": [given]}]}).encode(),
                  left_behind=left_behind)


def shadow() -> Shadow:
    return Shadow(Mapping("candidate", 2, "hl7v2", FHIR, _candidate))


def test_the_same_output_is_no_difference_and_another_is_counted_by_path():
    s = shadow()
    s.compare("M1", "JANE", live("JANE"))
    s.compare("M2", "JANE", live("JOAN"))
    summary = s.summary()
    assert (summary["compared"], summary["differed"], summary["candidate_errors"]) == (2, 1, 0)
    [path] = summary["paths"]
    assert path["messages"] == 1 and path["examples"] == ["M2"]
    assert "[" not in path["path"] and "given" in path["path"]


def test_outcomes_of_different_kinds_and_candidate_errors():
    s = shadow()
    s.compare("M1", "bad", live("JANE"))
    s.compare("M2", "skip", live("JANE"))
    s.compare("M3", "skip", Skip("not ours"))
    s.compare("M4", "bad", MappingError("broken"))
    paths = {p["path"]: p["examples"] for p in s.summary()["paths"]}
    assert paths == {"(outcome: output -> error)": ["M1"],
                     "(outcome: output -> skipped)": ["M2"]}
    assert s.candidate_errors == 2 and s.differed == 2


def test_examples_are_bounded_per_path():
    s = shadow()
    for i in range(EXAMPLES_PER_PATH + 3):
        s.compare(f"M{i}", "JANE", live("JOAN"))
    [path] = s.summary()["paths"]
    assert path["messages"] == EXAMPLES_PER_PATH + 3
    assert len(path["examples"]) == EXAMPLES_PER_PATH


def test_a_field_one_version_reads_and_the_other_leaves_behind_is_a_difference():
    s = shadow()
    s.compare("M1", "JANE", live("JANE", left_behind=()))
    s.compare("M2", "JANE", live("JANE", left_behind=("PID-38", "OBX[3]-17")))
    paths = {p["path"]: p["examples"] for p in s.summary()["paths"]}
    assert paths == {"(left behind) PID-38": ["M1"], "(left behind) OBX-17": ["M2"]}
