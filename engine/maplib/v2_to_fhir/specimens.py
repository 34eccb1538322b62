"""SPM (with its SAC containers) and the old OBR-15 specimen source as Specimens.

A Specimen is keyed on its own id (SPM-2: the filler's, else the placer's), so every
message about the same tube (the order, each result) updates one resource; one without
an id hangs off its order (`order_keys.order_key`) and its SPM-1, as `hl7v2-orm-to-fhir@1`
keys it.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import guard
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_codes import codeable_concepts, first_concept, subcomponent_concept
from engine.maplib.v2_orders import keyed
from engine.maplib.v2_to_fhir import order_keys, people
from engine.maplib.v2_to_fhir.frame import Build

# SPM-20 specimen availability (table 0136, yes/no) -> Specimen.status.
AVAILABILITY = {"Y": "available", "N": "unavailable"}
# Segments that end an SPM's group of SAC containers.
_GROUP_END = frozenset({"SPM", "ORC", "OBR", "PID", "PV1", "MSH", "RXO", "ODS", "RQD"})


def specimen(b: Build, spm: Segment, *, key: dict | None = None) -> dict | None:
    """The Specimen of an SPM (v2.5+), kept in `b`; None when the SPM says nothing of one.

    SPM-2/30/31/32 ids, SPM-3 parent, SPM-4 type, SPM-6 additives and SPM-27 container type, SPM-7
    method, SPM-8 site, SPM-12 quantity, SPM-14 description, SPM-17 collected (a range is
    a period), SPM-18 received, SPM-20 availability and SPM-21 rejection as status,
    SPM-24/28 conditions; the SAC segments after it as containers. `key` (an order's
    identifier) keys a Specimen without ids; by default its order group's.
    """
    if b.patient is None:
        return None
    ids = _identifiers(b, spm)
    collection = compact({
        **_collected(b, spm),
        "quantity": _quantity(b, spm, 12),
        "method": first_concept(spm, 7, b.facility),
        "bodySite": first_concept(spm, 8, b.facility),
    })
    containers = _containers(b, spm)
    found = compact({
        "resourceType": "Specimen",
        "id": "-",
        "identifier": ids,
        "accessionIdentifier": _accession(b, spm),
        "status": _status(spm),
        "type": first_concept(spm, 4, b.facility),
        "subject": b.patient_ref(),
        "receivedTime": dt.to_fhir_datetime(spm.value(18), b.field(spm, 18), b.offset),
        "parent": _parents(b, spm),
        "collection": collection,
        "container": containers,
        "condition": codeable_concepts(spm, 24, b.facility)
        + codeable_concepts(spm, 28, b.facility),
        "note": [{"text": t} for t in (dt.present(spm.value(14)),) if t],
    })
    if len(found) <= 3:  # resourceType, id and subject: an SPM that names nothing
        return None
    found["id"] = resource_id("Specimen", b.facility,
                              ids[0] if ids else _fallback_key(b, spm, key))
    return b.add(found)


def from_obr15(b: Build, obr: Segment, *, key: dict | None = None) -> dict | None:
    """The Specimen of OBR-15 (SPS, v2.3-2.4, withdrawn in 2.7): 15.1 source as type (a CE
    in subcomponents), 15.3 collection method, 15.4 body site; collected at OBR-7 (to
    OBR-8), by OBR-10, received at OBR-14; OBR-9 collection volume. None when OBR-15
    names no source."""
    source = subcomponent_concept(obr, 15, 1, b.facility)
    if source is None or b.patient is None:
        return None
    if key is None:
        group = order_keys.group_of(b, obr)
        key = order_keys.order_key(b, group.orc if group else None, obr)
    start = dt.to_fhir_datetime(obr.value(7), b.field(obr, 7), b.offset)
    end = dt.to_fhir_datetime(obr.value(8), b.field(obr, 8), b.offset)
    collector = people.practitioner(b, dt.first_rep(obr, 10))
    method = dt.present(obr.value(15, 3))
    collection = compact({
        "collector": b.ref(collector) if collector is not None else None,
        **({"collectedPeriod": {"start": start, "end": end}} if start and end and start != end
           else {"collectedDateTime": start}),
        "quantity": _quantity(b, obr, 9),
        "method": {"text": method} if method else None,
        "bodySite": subcomponent_concept(obr, 15, 4, b.facility),
    })
    return b.add(compact({
        "resourceType": "Specimen",
        "id": resource_id("Specimen", b.facility, keyed(key, "OBR-15")),
        "type": source,
        "subject": b.patient_ref(),
        "receivedTime": dt.to_fhir_datetime(obr.value(14), b.field(obr, 14), b.offset),
        "collection": collection,
    }))


# ---- parts ------------------------------------------------------------------------------


def _identifiers(b: Build, spm: Segment) -> list[dict]:
    """SPM-2 (EIP: the filler's id first, the lab's accession, then the placer's), then
    SPM-31 other ids and SPM-32 shipment ids, without repeats."""
    found: list[dict] = []
    for component, kind in ((2, tables.FILLER_IDENTIFIER), (1, tables.PLACER_IDENTIFIER)):
        found.append(dt.ei_parts_to_identifier(
            [spm.value(2, component, s) for s in (1, 2, 3, 4)], b.facility, kind))
    for field in (31, 32):
        found += [dt.ei_to_identifier(rep, b.facility) for rep in spm.repetitions(field)]
    unique: list[dict] = []
    for identifier in found:
        if identifier and all((identifier["system"], identifier["value"])
                              != (u["system"], u["value"]) for u in unique):
            unique.append(identifier)
    return unique


def _parents(b: Build, spm: Segment) -> list[dict]:
    """SPM-3 parent specimen ids (EIP, the filler's else the placer's) as logical
    references: the parent tube is not in this message."""
    found = []
    for rep in spm.repetitions(3):
        for component in (2, 1):
            identifier = dt.ei_parts_to_identifier(
                [rep.value(component, s) for s in (1, 2, 3, 4)], b.facility)
            if identifier is not None:
                found.append({"type": "Specimen", "identifier": identifier})
                break
    return found


def _accession(b: Build, spm: Segment) -> dict | None:
    """SPM-30 accession id (CX)."""
    rep = dt.first_rep(spm, 30)
    return dt.cx_to_identifier(rep, b.facility) if rep is not None else None


def _status(spm: Segment) -> str | None:
    """SPM-21 reject reason: unsatisfactory; else SPM-20 availability."""
    if dt.present(spm.value(21)):
        return "unsatisfactory"
    return AVAILABILITY.get(dt.present(spm.value(20)).upper())


def _collected(b: Build, spm: Segment) -> dict:
    """SPM-17 (DR): a start only is collectedDateTime; a start and end are a period."""
    place = b.field(spm, 17)
    start = dt.to_fhir_datetime(spm.value(17, 1), place, b.offset)
    end = dt.to_fhir_datetime(spm.value(17, 2), place, b.offset)
    if start and end and start != end:
        return {"collectedPeriod": {"start": start, "end": end}}
    return {"collectedDateTime": start} if start else {}


def _quantity(b: Build, segment: Segment, field: int) -> dict | None:
    """A CQ (number^units) as a SimpleQuantity; UCUM when the unit says it is."""
    if not dt.present(segment.value(field, 1)):
        return None
    number = dt.to_fhir_decimal(segment.value(field, 1), b.field(segment, field))
    if number is None:
        return None
    unit_code = dt.present(segment.value(field, 2, 1))
    unit_text = dt.present(segment.value(field, 2, 2)) or unit_code
    system = dt.present(segment.value(field, 2, 3)).upper()
    quantity = {"value": number, "unit": unit_text or None}
    if unit_code and system in ("UCUM", "ISO+", "ANS+"):
        quantity.update(system=tables.UCUM, code=unit_code)
    return compact(quantity)


def _containers(b: Build, spm: Segment) -> list[dict]:
    """SPM-27 container type with SPM-6 additives, then one container per SAC."""
    found: list[dict] = []
    kind = first_concept(spm, 27, b.facility)
    additive = first_concept(spm, 6, b.facility)
    if kind or additive:
        found.append(compact({"type": kind, "additiveCodeableConcept": additive}))
    for sac in _sacs(b, spm):
        container = _container(b, sac)
        if container:
            found.append(container)
    return found


def _sacs(b: Build, spm: Segment) -> list[Segment]:
    """The SAC segments of the SPM's group (after it, before the next specimen/order)."""
    segments = b.message.segments
    start = next((i for i, s in enumerate(segments) if s is spm), None)
    if start is None:
        return []
    found = []
    for seg in segments[start + 1:]:
        if seg.name in _GROUP_END:
            break
        if seg.name == "SAC":
            found.append(seg)
    return found


def _container(b: Build, sac: Segment) -> dict | None:
    """SAC-3 container id (else SAC-2 accession), SAC-21/24 volume as capacity, SAC-22
    available volume, SAC-27 additive, SAC-8 status and SAC-26 cap type as description."""
    ids = [i for i in (dt.ei_to_identifier(dt.first_rep(sac, 3), b.facility),
                       dt.ei_to_identifier(dt.first_rep(sac, 2), b.facility),
                       dt.ei_to_identifier(dt.first_rep(sac, 1), b.facility)) if i]
    unit = dt.present(sac.value(24, 1))
    capacity = _volume(b, sac, 21, unit)
    available = _volume(b, sac, 22, unit)
    additive = first_concept(sac, 27, b.facility)
    described = [t for t in (_text(first_concept(sac, 26, b.facility)),
                             _text(first_concept(sac, 8, b.facility))) if t]
    return compact({
        "identifier": ids,
        "description": "; ".join(described) or None,
        "capacity": capacity,
        "specimenQuantity": available,
        "additiveCodeableConcept": additive,
    }) or None


def _volume(b: Build, sac: Segment, field: int, unit: str) -> dict | None:
    if not dt.present(sac.value(field)):
        return None
    number = dt.to_fhir_decimal(sac.value(field), b.field(sac, field))
    return compact({"value": number, "unit": unit or None}) if number is not None else None


def _text(concept: dict | None) -> str:
    if not concept:
        return ""
    if concept.get("text"):
        return concept["text"]
    coding = (concept.get("coding") or [{}])[0]
    return coding.get("display") or coding.get("code", "")


def _fallback_key(b: Build, spm: Segment, key: dict | None) -> dict:
    """An SPM without ids: its order's key (given, else its group's) and its SPM-1."""
    if key is None:
        group = order_keys.group_of(b, spm)
        if group is not None:
            key = order_keys.order_key(b, group.orc, group.obr)
    if key is None:
        control = dt.present(b.message.segments[0].value(10)) or "no-control-id"
        key = {"system": f"urn:conduit:msh:{b.facility}", "value": control}
    return keyed(key, "SPM", dt.present(spm.value(1)) or "1")


def of_report(b: Build, obr: Segment, spms: list[Segment], key: dict) -> list[dict]:
    """The Specimens of a result report: each SPM (guarded), else OBR-15 (v2.3-2.4)."""
    if spms:
        return b.each("SPM", lambda spm, _n: specimen(b, spm, key=key), spms)
    found = guard("OBR", b.occurrence(obr), lambda: from_obr15(b, obr, key=key))
    return [found] if found else []
