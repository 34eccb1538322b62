"""RAS^O17 (v2.3's RAS^O01): pharmacy administrations as the Patient, the visit, and per
order the MedicationAdministration of each RXA, given under the order's
MedicationRequest (from its RXE, else its RXO) when the message carries it, with the
Medication, the administering practitioners, and the OBX after an RXA as Observations
that are part of that administration."""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Segment
from engine.maplib.v2_to_fhir import administrations, pharmacy, results
from engine.maplib.v2_to_fhir.frame import Build
from engine.mapping_base import Skip

EVENTS: tuple[str, ...] = ("O17", "O01")
RESOURCES: tuple[str, ...] = (
    "Patient", "RelatedPerson", "Account", "Encounter", "Location", "Practitioner",
    "PractitionerRole", "Organization",
    "Medication", "MedicationRequest", "MedicationAdministration", "Observation", "Device",
    "DocumentReference", "AllergyIntolerance", "MessageHeader", "Provenance",
)


def build(message: Hl7Message) -> dict | Skip:
    return pharmacy.report_message(message, "RAS", EVENTS, _order, MappingError(
        "the message holds no administration that could be mapped", field="RXA"))


def _order(b: Build, order: pharmacy.PharmacyOrder) -> list[dict]:
    """The order's MedicationRequest (when it has an RXE or RXO), its administrations,
    and the OBX of each administration (those before any RXA: the order's)."""
    request = pharmacy.order_request(b, order)
    made = []
    for rxas, obxs in _administration_groups(order):
        given = [a for a in (administrations.administration(b, order, rxa, request)
                             for rxa in rxas) if a]
        observations = results.observations(
            b, obxs, based_on=[request] if request else None,
            context=results.Context(otherwise="exam"))
        for administration in given:
            if observations:
                administration["supportingInformation"] = [b.ref(o) for o in observations]
        for observation in observations:
            if given:
                observation["partOf"] = [b.ref(a) for a in given]
        made += given
    return made


def _administration_groups(order: pharmacy.PharmacyOrder
                           ) -> list[tuple[list[Segment], list[Segment]]]:
    """RAS's ADMINISTRATION groups: a run of RXA ({RXA} RXR) with the OBX that follow
    it, which are about every administration of the run; OBX before any RXA belong to
    the order alone (no RXA)."""
    groups: list[tuple[list[Segment], list[Segment]]] = [([], [])]
    closed = False  # the run's RXR or OBX came: a next RXA starts another group
    for seg in order.segments:
        if seg.name == "RXA":
            if closed or not groups[-1][0]:
                groups.append(([], []))
            groups[-1][0].append(seg)
            closed = False
        elif seg.name in ("RXR", "OBX") and groups[-1][0]:
            closed = True
        if seg.name == "OBX":
            groups[-1][1].append(seg)
    return [g for g in groups if g[0] or g[1]]
