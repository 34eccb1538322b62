"""The visit of a message: PV1/PV2 as the Encounter, its locations and participants."""

from __future__ import annotations

from engine.leniency import guard
from engine.maplib.v2_fhir import encounter as encounter_from_pv1
from engine.maplib.v2_to_fhir.frame import Build


def encounter(b: Build) -> dict | None:
    """The Encounter of the first PV1, kept in `b`, or None when there is no PV1 or it has
    no visit number to key it on."""
    pv1 = b.message.segment("PV1")
    if pv1 is None or b.patient is None:
        return None
    visit = guard("PV1", 1, lambda: encounter_from_pv1(pv1, b.event, b.facility,
                                                       b.patient["id"], b.offset))
    b.encounter = b.add(visit)
    return visit
