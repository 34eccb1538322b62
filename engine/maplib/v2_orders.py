"""The order side of HL7 v2 (chapter 4) as FHIR: order groups, order numbers, specimens,
order statuses and the message facts an order needs, shared by the ORM/OML mapping and
the ORU mapping (and the order numbers by MDM and RDE).

Results build on orders (an ORU carries the ORC/OBR it answers), so this module knows
nothing of results and `v2_results` imports from it, never the other way round. Coded
values are `v2_codes`', EI and the other data types `datatypes`', code tables `tables`'.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_codes import first_concept, subcomponent_concept
from engine.maplib.v2_fhir import patient_of, sender_offset, sending_facility

# Table 0119 order control -> ServiceRequest.status. The IG keeps a placer's *request* to
# cancel or hold (CA, HD) "active" until the filler confirms; we follow the placer, whose
# order it is: once it asks to cancel, the authorisation to act is withdrawn (revoked), and
# once it asks to hold, it is suspended (on-hold). Codes not here are "unknown".
ORDER_CONTROL_STATUS: dict[str, str] = {
    "NW": "active", "OK": "active", "NA": "active", "AF": "active", "PR": "active",
    "PY": "active", "RL": "active", "RO": "active", "RQ": "active",
    "XO": "active", "XR": "active", "XX": "active",  # a change keeps the order going
    "CA": "revoked", "CR": "revoked", "OC": "revoked", "DC": "revoked", "DR": "revoked",
    "OD": "revoked", "DF": "revoked",
    "HD": "on-hold", "HR": "on-hold", "OH": "on-hold",
    "FU": "completed",
}
# Table 0038 order status -> ServiceRequest.status, per the IG; read for ORC-1 "SC" and
# whenever ORC-5 is valued (the IG lets ORC-5 decide when it is sent).
ORDER_STATUS: dict[str, str] = {
    "A": "active",  # some, but not all, results available
    "CA": "revoked", "CM": "completed", "DC": "revoked", "ER": "entered-in-error",
    "HD": "on-hold", "IP": "active", "RP": "revoked", "SC": "active",
}

# ---- categories -----------------------------------------------------------------------


def section_categories(section: str) -> list[dict]:
    """Report categories for a diagnostic service section (OBR-24): LAB for lab sections
    or when none is sent, plus the section itself when it is a table 0074 code."""
    code = dt.present(section).upper()
    categories: list[dict] = []
    if not code or code in tables.LAB_SECTIONS:
        categories.append(_category("LAB"))
    if code in tables.SERVICE_SECTIONS and code != "LAB":
        categories.append(_category(code))
    elif code and code not in tables.SERVICE_SECTIONS:
        categories.append({"text": dt.present(section)})
    return categories


def _category(code: str) -> dict:
    display = tables.SERVICE_SECTIONS[code]
    return {"coding": [{"system": tables.V2_0074, "code": code, "display": display}]}


# ---- order numbers ----------------------------------------------------------------------


class OrderNumbers(NamedTuple):
    """The placer and filler numbers of one ORC/OBR pair, as Identifiers (or None)."""

    placer: dict | None
    filler: dict | None

    def identifiers(self) -> list[dict]:
        return [copy.deepcopy(i) for i in (self.placer, self.filler) if i]


def order_numbers(
    orc: Segment | None, obr: Segment | None, *, placer_authority: str, filler_authority: str
) -> OrderNumbers:
    """ORC-2/ORC-3, else OBR-2/OBR-3 (the two must agree when both are sent, so ORC's,
    the order's own segment, is read first)."""
    placer = dt.first_rep(orc, 2) or dt.first_rep(obr, 2)
    filler = dt.first_rep(orc, 3) or dt.first_rep(obr, 3)
    return OrderNumbers(
        dt.ei_to_identifier(placer, placer_authority, tables.PLACER_IDENTIFIER),
        dt.ei_to_identifier(filler, filler_authority, tables.FILLER_IDENTIFIER),
    )


def placer_and_filler(segment: Segment, placer: int, filler: int, facility: str) -> list[dict]:
    """The placer and filler numbers one segment holds (ORC-2/3 of an RDE, TXA-14/15),
    typed PLAC and FILL, both assigned within the sending facility when they name no
    authority."""
    found = (
        dt.first_ei(segment, placer, facility, tables.PLACER_IDENTIFIER),
        dt.first_ei(segment, filler, facility, tables.FILLER_IDENTIFIER),
    )
    return [i for i in found if i]


def receiving_facility(message: Hl7Message) -> str:
    """MSH-6.1, else MSH-5.1, else "": who receives the message."""
    msh = message.segments[0]
    return dt.present(msh.value(6, 1)) or dt.present(msh.value(5, 1))


def keyed(identifier: dict, *parts: str) -> dict:
    """An identifier made more specific by `parts`, to derive the id of something that
    hangs off an order (a result, a specimen) without ever showing it as an identifier."""
    value = "^".join((identifier["value"], *parts))
    return {"system": identifier.get("system", ""), "value": value}


# ---- the message, the patient and the segment groups -------------------------------------


class Sender(NamedTuple):
    """Facts of an order or result message every group needs."""

    facility: str
    receiver: str
    offset: str | None
    patient_id: str


def sender_of(message: Hl7Message, patient: dict) -> Sender:
    """The sending and receiving facilities, the sender's zone and the patient's id."""
    return Sender(
        sending_facility(message), receiving_facility(message), sender_offset(message),
        patient["id"],
    )



def sole_patient(message: Hl7Message) -> dict:
    """The Patient of the message's only PID (see `v2_fhir.patient_of`).

    A message with a second PID carries another patient's orders or results after it;
    filing them under the first patient would put them in the wrong chart, so it fails.
    """
    if len(message.all("PID")) > 1:
        raise MappingError(
            "the message holds more than one PID (patient); this mapping maps one patient "
            "per message, so split the batch upstream",
            field="PID",
        )
    return patient_of(message)


class OrderGroup(NamedTuple):
    """One ORC and/or OBR with the segments that follow the ORC (the OBR among them), in
    message order: OML puts TQ1 between ORC and OBR, ORU after OBR."""

    orc: Segment | None
    obr: Segment | None
    body: list[Segment]


def order_groups(message: Hl7Message) -> list[OrderGroup]:
    """Split a message into order groups: an ORC always opens one, and an OBR opens one
    unless it completes an ORC that has no OBR yet. Segments before the first group
    (MSH, PID, PV1, ...) belong to none."""
    groups: list[OrderGroup] = []
    for seg in message.segments:
        if seg.name == "ORC":
            groups.append(OrderGroup(seg, None, []))
            continue
        if seg.name == "OBR":
            current = groups[-1] if groups else None
            if current is not None and current.orc is not None and current.obr is None:
                groups[-1] = OrderGroup(current.orc, seg, current.body)
            else:
                groups.append(OrderGroup(None, seg, []))
        if groups:
            groups[-1].body.append(seg)
    return groups


# ---- notes ------------------------------------------------------------------------------


def leading_notes(segments: list[Segment], after: frozenset[str]) -> list[Segment]:
    """The NTEs that directly follow a segment named in `after` (its own comments)."""
    notes: list[Segment] = []
    anchor = ""
    for seg in segments:
        if seg.name == "NTE":
            if anchor in after:
                notes.append(seg)
        else:
            anchor = seg.name
    return notes


# ---- specimens --------------------------------------------------------------------------


class SpecimenContext(NamedTuple):
    """What a Specimen needs from around it: scope, patient, zone, and the order key."""

    facility: str
    patient_id: str
    offset: str | None
    order_key: dict  # the order's identifier, for specimens without an id of their own


def specimen_from_spm(spm: Segment, ctx: SpecimenContext) -> dict:
    """The Specimen of an SPM (v2.5+): SPM-2 ids, SPM-4 type, SPM-7 method, SPM-8 site,
    SPM-17 collection time (a range becomes a period), SPM-18 received time.

    Its id comes from SPM-2 (filler's id, else placer's) so every message about the same
    tube finds it, else from the order and SPM-1.
    """
    ids = _spm_identifiers(spm, ctx.facility)
    key = ids[0] if ids else keyed(ctx.order_key, "SPM", dt.present(spm.value(1)) or "1")
    collection = compact({
        **_collected(spm, ctx.offset),
        "method": first_concept(spm, 7, ctx.facility),
        "bodySite": first_concept(spm, 8, ctx.facility),
    })
    specimen = {
        "resourceType": "Specimen",
        "id": resource_id("Specimen", ctx.facility, key),
        "identifier": ids,
        "type": first_concept(spm, 4, ctx.facility),
        "subject": {"reference": f"urn:uuid:{ctx.patient_id}"},
        "receivedTime": dt.to_fhir_datetime(spm.value(18), "SPM-18", ctx.offset),
        "collection": collection,
    }
    return compact(specimen)


def _spm_identifiers(spm: Segment, facility: str) -> list[dict]:
    """SPM-2 (EIP): filler's id first (2.2, the lab's accession), then the placer's (2.1);
    each is an EI in subcomponents."""
    found = (
        dt.ei_parts_to_identifier([spm.value(2, component, s) for s in (1, 2, 3, 4)], facility,
                                  kind)
        for component, kind in ((2, tables.FILLER_IDENTIFIER), (1, tables.PLACER_IDENTIFIER))
    )
    return [i for i in found if i]


def _collected(spm: Segment, offset: str | None) -> dict:
    """SPM-17 (DR): a start only is collectedDateTime; a start and end are a period."""
    start = dt.to_fhir_datetime(spm.value(17, 1), "SPM-17", offset)
    end = dt.to_fhir_datetime(spm.value(17, 2), "SPM-17", offset)
    if start and end and start != end:
        return {"collectedPeriod": {"start": start, "end": end}}
    return {"collectedDateTime": start} if start else {}


def specimen_from_obr15(obr: Segment, ctx: SpecimenContext) -> dict | None:
    """The Specimen of OBR-15 (SPS, v2.3-2.4, withdrawn in 2.7): 15.1 source as type (a CE
    in subcomponents), 15.4 body site; collected at OBR-7, received at OBR-14. None when
    OBR-15 names no specimen."""
    source = subcomponent_concept(obr, 15, 1, ctx.facility)
    if source is None:
        return None
    collection = compact({
        "collectedDateTime": dt.to_fhir_datetime(obr.value(7), "OBR-7", ctx.offset),
        "bodySite": subcomponent_concept(obr, 15, 4, ctx.facility),
    })
    specimen = {
        "resourceType": "Specimen",
        "id": resource_id("Specimen", ctx.facility, keyed(ctx.order_key, "OBR-15")),
        "type": source,
        "subject": {"reference": f"urn:uuid:{ctx.patient_id}"},
        "receivedTime": dt.to_fhir_datetime(obr.value(14), "OBR-14", ctx.offset),
        "collection": collection,
    }
    return compact(specimen)


# ---- order status and priority -------------------------------------------------------------


def order_status(orc: Segment | None) -> str:
    """ServiceRequest.status from ORC-5 (table 0038) when it is valued and known, else
    from ORC-1 (table 0119); "unknown" when neither says (the element is required)."""
    if orc is None:
        return "unknown"
    status = ORDER_STATUS.get(dt.present(orc.value(5)).upper())
    if status:
        return status
    return ORDER_CONTROL_STATUS.get(dt.present(orc.value(1)).upper(), "unknown")


def order_priority(tq1: Segment | None, orc: Segment | None, obr: Segment | None) -> str | None:
    """ServiceRequest.priority from TQ1-9 (v2.5+), else the TQ priority of ORC-7.6 or
    OBR-27.6, else OBR-5 (old senders); None when none is a code we can map."""
    candidates = [
        tq1.value(9) if tq1 is not None else "",
        orc.value(7, 6) if orc is not None else "",
        obr.value(27, 6) if obr is not None else "",
        obr.value(5) if obr is not None else "",
    ]
    for code in candidates:
        code = dt.present(code).upper()
        if code:
            return tables.PRIORITY.get(code)
    return None
