"""The visit of a message: PV1/PV2 as the Encounter, its locations and participants."""

from __future__ import annotations

from engine.formats.hl7v2 import Repetition
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import guard
from engine.maplib.fhir import compact, resource_id
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


def location(b: Build, rep: Repetition | None) -> dict | None:
    """The Location a PL names (point of care / room / bed, in its facility), kept once
    in `b`; None when it names nothing."""
    if rep is None:
        return None
    display = dt.pl_display(rep)
    if not display:
        return None
    facility = dt.present(rep.value(4, 1)) or b.facility
    key = {"system": f"urn:conduit:location:{facility}", "value": display.upper()}
    return b.add(compact({
        "resourceType": "Location",
        "id": resource_id("Location", b.facility, key),
        "name": display,
        "mode": "instance",
        "physicalType": _physical_type(rep),
    }), merge=True)


_LOCATION_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"


def _physical_type(rep: Repetition) -> dict | None:
    """The most specific part a PL names: bed, else room, else ward (point of care)."""
    for component, code, display in ((3, "bd", "Bed"), (2, "ro", "Room"), (1, "wa", "Ward")):
        if dt.present(rep.value(component)):
            return {"coding": [{"system": _LOCATION_TYPE, "code": code, "display": display}]}
    return None
