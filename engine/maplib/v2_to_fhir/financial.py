"""Who pays: IN1/IN2 as Coverage (with the payor), GT1 guarantors, FT1 charges."""

from __future__ import annotations

from engine.maplib import v2_clinical
from engine.maplib.v2_to_fhir.frame import Build


def coverages(b: Build) -> list[dict]:
    """One Coverage per IN1."""
    assert b.patient is not None
    pid = b.patient["id"]
    return [b.add(r) for r in b.each(
        "IN1", lambda in1, n: v2_clinical.coverage(in1, b.facility, pid))]
