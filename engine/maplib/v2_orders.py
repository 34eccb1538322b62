"""The order side of HL7 v2 (chapter 4) as FHIR: coded elements, order numbers, notes,
specimens and order statuses, shared by the ORM/OML mapping and the ORU mapping.

Results build on orders (an ORU carries the ORC/OBR it answers), so this module knows
nothing of results and `v2_results` imports from it, never the other way round.

Why some of this is here and not in `engine/formats/hl7v2/datatypes.py` / `tables.py`:
CWE, EI and the code tables below are general v2 data types that belong there, but those
modules are shared and were not ours to change; they can move there unchanged.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import quote

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Repetition, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_fhir import patient_of

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"  # diagnostic service section
CONDUIT_CODE_PREFIX = "urn:conduit:code:"

# Table 0396 (name of coding system, CWE.3) -> FHIR code system URI. Only systems with a
# published FHIR URI are here; any other name is a local system (see `coding_system`).
CODING_SYSTEMS: dict[str, str] = {
    "LN": LOINC,
    "LOINC": LOINC,
    "SCT": SNOMED,
    "SNOMED": SNOMED,
    "SNOMED-CT": SNOMED,
    "SNM": SNOMED,  # SNOMED International (v2.3 era); today's senders mean SNOMED CT
    "SNM3": SNOMED,
    "SCT2": SNOMED,
    "UCUM": UCUM,
    "I10": "http://hl7.org/fhir/sid/icd-10",
    "I10C": "http://hl7.org/fhir/sid/icd-10-cm",
    "ICD10CM": "http://hl7.org/fhir/sid/icd-10-cm",
    "I9C": "http://hl7.org/fhir/sid/icd-9-cm",
    "I9CDX": "http://hl7.org/fhir/sid/icd-9-cm",
    "C4": "http://www.ama-assn.org/go/cpt",
    "CPT": "http://www.ama-assn.org/go/cpt",
    "RXNORM": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "CVX": "http://hl7.org/fhir/sid/cvx",
    "NDC": "http://hl7.org/fhir/sid/ndc",
}

# Coding systems a sender may name by OID (allowed in CWE.3 from v2.7, and common before).
CODING_SYSTEM_OIDS: dict[str, str] = {
    "2.16.840.1.113883.6.1": LOINC,
    "2.16.840.1.113883.6.96": SNOMED,
    "2.16.840.1.113883.6.8": UCUM,
}
_OID = re.compile(r"[0-2](?:\.(?:0|[1-9]\d*))+\Z")

# Identifier types for order numbers (v2-0203 codes the ADT table does not list).
PLACER = tables.Coding(tables.V2_0203, "PLAC", "Placer Identifier")
FILLER = tables.Coding(tables.V2_0203, "FILL", "Filler Identifier")
PLACER_GROUP = tables.Coding(tables.V2_0203, "PGN", "Placer Group Number")

# Table 0074 diagnostic service section -> display; the IG maps each code to itself in
# v2-0074. LAB is the default category of a result, and the sections below it are lab
# sections, so their reports also carry LAB (what US Core's lab profile looks for).
SERVICE_SECTIONS: dict[str, str] = {
    "AU": "Audiology", "BG": "Blood Gases", "BLB": "Blood Bank", "CG": "Cytogenetics",
    "CH": "Chemistry", "CP": "Cytopathology", "CT": "CAT Scan", "CTH": "Cardiac Catheterization",
    "CUS": "Cardiac Ultrasound", "EC": "Electrocardiac (e.g., EKG,  EEC, Holter)",
    "EN": "Electroneuro (EEG, EMG,EP,PSG)", "GE": "Genetics", "HM": "Hematology",
    "ICU": "Bedside ICU Monitoring", "IMM": "Immunology", "LAB": "Laboratory",
    "MB": "Microbiology", "MCB": "Mycobacteriology", "MYC": "Mycology",
    "NMR": "Nuclear Magnetic Resonance", "NMS": "Nuclear Medicine Scan",
    "NRS": "Nursing Service Measures", "OSL": "Outside Lab", "OT": "Occupational Therapy",
    "OTH": "Other", "OUS": "OB Ultrasound", "PF": "Pulmonary Function", "PHR": "Pharmacy",
    "PHY": "Physician (Hx. Dx, admission note, etc.)", "PT": "Physical Therapy",
    "RAD": "Radiology", "RC": "Respiratory Care (therapy)", "RT": "Radiation Therapy",
    "RUS": "Radiology Ultrasound", "RX": "Radiograph", "SP": "Surgical Pathology",
    "SR": "Serology", "TX": "Toxicology", "VR": "Virology", "VUS": "Vascular Ultrasound",
    "XRC": "Cineradiograph",
}
LAB_SECTIONS = frozenset(
    {"BG", "BLB", "CG", "CH", "CP", "GE", "HM", "IMM", "LAB", "MB", "MCB", "MYC", "OSL",
     "SP", "SR", "TX", "VR"}
)

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
# Table 0485 (and the TQ priority component) -> ServiceRequest.priority. P (preop), C
# (callback) and T (timing critical) say when, not how urgently, so they are left out.
PRIORITY: dict[str, str] = {
    "S": "stat", "STAT": "stat", "A": "asap", "ASAP": "asap", "R": "routine",
    "ROUTINE": "routine",
}


# ---- coded elements -------------------------------------------------------------------


def local_code_system(facility: str, name: str = "") -> str:
    """urn:conduit:code:<facility>:<name, or "local">: a sender's local codes mean
    something only at that sender, so the system is scoped to it and stable across
    messages (the form the other v2 mappings use too)."""
    return (
        f"{CONDUIT_CODE_PREFIX}{quote(facility, safe='-._~')}:{quote(name or 'local', safe='-._~')}"
    )


def coding_system(name: str, facility: str) -> str:
    """A FHIR system URI for a CWE coding system name (table 0396): the published URI of
    LOINC, SNOMED CT, UCUM, ICD, CPT, ...; HL7nnnn tables as v2-nnnn; an OID as urn:oid:
    (or the URI it stands for); anything else (L, 99zzz, a vendor name, nothing) as the
    sender's local system."""
    key = dt.present(name).upper()
    if key in CODING_SYSTEMS:
        return CODING_SYSTEMS[key]
    if _OID.match(key):
        return CODING_SYSTEM_OIDS.get(key, f"urn:oid:{key}")
    table = key.removeprefix("HL7").lstrip("-")
    if key.startswith("HL7") and len(table) == 4 and table.isdigit():
        return f"http://terminology.hl7.org/CodeSystem/v2-{table}"
    return local_code_system(facility, dt.present(name))


def _coding(rep: Repetition, first: int, version: int, facility: str) -> dict | None:
    """The coding in CWE components first..first+2 (code, text, system) with its version."""
    code = dt.present(rep.value(first))
    if not code:
        return None
    coding = {
        "system": coding_system(rep.value(first + 2), facility),
        "version": dt.present(rep.value(version)),
        "code": code,
        "display": dt.present(rep.value(first + 1)),
    }
    return compact(coding)


def cwe_to_codeable_concept(rep: Repetition | None, facility: str) -> dict | None:
    """A CE/CWE (v2.3 CE or v2.5+ CWE) as a CodeableConcept; None when it says nothing.

    The identifier triplet and the alternate triplet each become a coding. CWE.9 (original
    text) is the text; a CE/CWE with text but no code keeps that text, so nothing is lost,
    and so does one whose only component is words rather than a code.
    """
    if rep is None:
        return None
    if _is_free_text(rep):
        return {"text": dt.present(rep.value(1))}
    codings = [c for c in (_coding(rep, 1, 7, facility), _coding(rep, 4, 8, facility)) if c]
    text = dt.present(rep.value(9))
    if not codings and not text:
        text = dt.present(rep.value(2)) or dt.present(rep.value(5))
    return compact({"coding": codings, "text": text}) or None


def _is_free_text(rep: Repetition) -> bool:
    """A CE of one component holding words ("Fatigue, query deficiency"): old senders put
    free text in the code's place, and a code with spaces in it would be an invented one."""
    return len(rep.components()) == 1 and " " in dt.present(rep.value(1))


def first_rep(segment: Segment | None, field: int) -> Repetition | None:
    """The first repetition of a field, or None when the segment or field is empty."""
    if segment is None:
        return None
    reps = segment.repetitions(field)
    return reps[0] if reps else None


def codeable_concepts(segment: Segment, field: int, facility: str) -> list[dict]:
    """Every repetition of a CE/CWE field that carries something."""
    found = (cwe_to_codeable_concept(rep, facility) for rep in segment.repetitions(field))
    return [c for c in found if c]


def section_categories(section: str) -> list[dict]:
    """Report categories for a diagnostic service section (OBR-24): LAB for lab sections
    or when none is sent, plus the section itself when it is a table 0074 code."""
    code = dt.present(section).upper()
    categories: list[dict] = []
    if not code or code in LAB_SECTIONS:
        categories.append(_category("LAB"))
    if code in SERVICE_SECTIONS and code != "LAB":
        categories.append(_category(code))
    elif code and code not in SERVICE_SECTIONS:
        categories.append({"text": dt.present(section)})
    return categories


def _category(code: str) -> dict:
    return {"coding": [{"system": V2_0074, "code": code, "display": SERVICE_SECTIONS[code]}]}


# ---- order numbers ----------------------------------------------------------------------


def ei_to_identifier(rep: Repetition | None, kind: tables.Coding, default_authority: str) -> (
    dict | None
):
    """An EI (entity identifier: an order number) as a typed Identifier; None when empty.

    EI.2-4 is the assigning authority (see `datatypes.hd_system`); without one the number
    was assigned by `default_authority`, which the caller chooses: the placer or the filler.
    """
    if rep is None:
        return None
    value = dt.present(rep.value(1))
    if not value:
        return None
    system = dt.hd_system(rep.value(2), rep.value(3), rep.value(4)) or dt.hd_system(
        default_authority
    )
    return {"type": {"coding": [kind.as_fhir()]}, "system": system, "value": value}


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
    placer = first_rep(orc, 2) or first_rep(obr, 2)
    filler = first_rep(orc, 3) or first_rep(obr, 3)
    return OrderNumbers(
        ei_to_identifier(placer, PLACER, placer_authority),
        ei_to_identifier(filler, FILLER, filler_authority),
    )


def receiving_facility(message: Hl7Message) -> str:
    """MSH-6.1, else MSH-5.1, else "": who receives the message."""
    msh = message.segments[0]
    return dt.present(msh.value(6, 1)) or dt.present(msh.value(5, 1))


def keyed(identifier: dict, *parts: str) -> dict:
    """An identifier made more specific by `parts`, to derive the id of something that
    hangs off an order (a result, a specimen) without ever showing it as an identifier."""
    value = "^".join((identifier["value"], *parts))
    return {"system": identifier.get("system", ""), "value": value}


# ---- the patient and the segment groups --------------------------------------------------


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


def nte_text(nte: Segment) -> str:
    """NTE-3's lines (a repeating FT) as one text; escapes, \\.br\\ included, decoded."""
    lines = [dt.present(rep.value(1)) for rep in nte.repetitions(3)]
    return "\n".join(lines).strip()


def annotations(ntes: Iterable[Segment]) -> list[dict]:
    """One Annotation per NTE that says something."""
    texts = (nte_text(n) for n in ntes)
    return [{"text": t} for t in texts if t]


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
        "method": cwe_to_codeable_concept(first_rep(spm, 7), ctx.facility),
        "bodySite": cwe_to_codeable_concept(first_rep(spm, 8), ctx.facility),
    })
    specimen = {
        "resourceType": "Specimen",
        "id": resource_id("Specimen", ctx.facility, key),
        "identifier": ids,
        "type": cwe_to_codeable_concept(first_rep(spm, 4), ctx.facility),
        "subject": {"reference": f"urn:uuid:{ctx.patient_id}"},
        "receivedTime": dt.to_fhir_datetime(spm.value(18), "SPM-18", ctx.offset),
        "collection": collection,
    }
    return compact(specimen)


def _spm_identifiers(spm: Segment, facility: str) -> list[dict]:
    """SPM-2 (EIP): filler's id first (2.2, the lab's accession), then the placer's (2.1);
    each is an EI in subcomponents."""
    found: list[dict] = []
    for component, kind in ((2, FILLER), (1, PLACER)):
        value = dt.present(spm.value(2, component, 1))
        if not value:
            continue
        system = dt.hd_system(
            spm.value(2, component, 2), spm.value(2, component, 3), spm.value(2, component, 4)
        )
        found.append({
            "type": {"coding": [kind.as_fhir()]},
            "system": system or dt.hd_system(facility),
            "value": value,
        })
    return found


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
    source = _subcomponent_cwe(obr, 15, 1, ctx.facility)
    if source is None:
        return None
    collection = compact({
        "collectedDateTime": dt.to_fhir_datetime(obr.value(7), "OBR-7", ctx.offset),
        "bodySite": _subcomponent_cwe(obr, 15, 4, ctx.facility),
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


def _subcomponent_cwe(seg: Segment, field: int, component: int, facility: str) -> dict | None:
    """A CE held in the subcomponents of one component (code&text&system), as OBR-15.1."""
    code = dt.present(seg.value(field, component, 1))
    text = dt.present(seg.value(field, component, 2))
    if not code:
        return {"text": text} if text else None
    coding = {
        "system": coding_system(seg.value(field, component, 3), facility),
        "code": code,
        "display": text,
    }
    return {"coding": [compact(coding)]}


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
            return PRIORITY.get(code)
    return None


def xcn_reference(segment: Segment | None, field: int) -> dict | None:
    """The first XCN of a field as a display-only reference (see `datatypes.xcn_display`)."""
    rep = first_rep(segment, field)
    display = dt.xcn_display(rep) if rep is not None else ""
    return {"display": display} if display else None


def to_fhir_instant(value: str, field: str, offset: str | None) -> str | None:
    """A v2 DTM as a FHIR instant, or None when it has no time of day or no known zone:
    an instant must be exact to the second with a zone, so a date alone cannot be one."""
    when = dt.to_fhir_datetime(value, field, offset)
    return when if when and "T" in when else None
