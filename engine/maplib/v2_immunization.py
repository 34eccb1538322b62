"""HL7 v2 immunization segments as parts of a FHIR R4 Immunization, and the code tables
they need.

A VXU^V04 carries each dose as an order group: ORC (optional before v2.5), RXA (the
administration), RXR (route and site) and the OBX observations that CDC's HL7 2.5.1
immunization implementation guide attaches (VFC eligibility, funding source, VIS). This
module reads those groups; `mappings/hl7v2-vxu-to-fhir` assembles the Bundle.

Coded values (CE/CWE) become CodeableConcepts through `cwe_to_concept`, which knows the
coding-system names of HL7 table 0396 that immunization feeds use and reads a code sent
without a system from the table its field is bound to. It is not specific to
immunizations (SIU uses it too) and, like the similar helpers in v2_orders and
v2_documents whose local-system form (urn:conduit:code:<facility>:<name>) it shares,
belongs in `engine/formats/hl7v2/datatypes.py` once that module's owners take it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Repetition, Segment
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib.fhir import compact, reference, resource_id

# ---- code systems -----------------------------------------------------------------------

CVX = "http://hl7.org/fhir/sid/cvx"
NDC = "http://hl7.org/fhir/sid/ndc"
MVX = "http://hl7.org/fhir/sid/mvx"
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NCI_THESAURUS = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
CPT = "http://www.ama-assn.org/go/cpt"
# THO's canonical URL for CDC's PHIN VS local coding system (OID 2.16.840.1.114222.4.5.274).
CDC_PHIN_VS = "https://phinvads.cdc.gov/vads/ViewCodeSystem.action?id=2.16.840.1.114222.4.5.274"
HL7_TABLE = "http://terminology.hl7.org/CodeSystem/v2-"
V2_0064 = HL7_TABLE + "0064"  # financial class (VFC eligibility)
V2_0162 = HL7_TABLE + "0162"  # route of administration
V2_0163 = HL7_TABLE + "0163"  # administrative site
V2_0203 = HL7_TABLE + "0203"  # identifier type
V2_0443 = HL7_TABLE + "0443"  # provider role
V3_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
IMMUNIZATION_ORIGIN = "http://terminology.hl7.org/CodeSystem/immunization-origin"
SUBPOTENT_REASON = "http://terminology.hl7.org/CodeSystem/immunization-subpotent-reason"
# A coding system FHIR has no URI for: urn:conduit:code:<facility>:<name> for a sender's
# own (the form the other v2 mappings use), urn:conduit:code:<name> for CDC's NIP tables.
LOCAL_CODE_PREFIX = "urn:conduit:code:"

# HL7 table 0396 names (as CWE.3 carries them) -> FHIR system URIs.
CODING_SYSTEMS: dict[str, str] = {
    "CVX": CVX,
    "NDC": NDC,
    "MVX": MVX,
    "UCUM": UCUM,
    "LN": LOINC,
    "SCT": SNOMED,
    "RXNORM": RXNORM,
    "NCIT": NCI_THESAURUS,
    "CPT": CPT,
    "CDCPHINVS": CDC_PHIN_VS,
}
_HL7_TABLE_NAME = re.compile(r"HL7(\d{4})\Z")
_OID = re.compile(r"[0-2](?:\.(?:0|[1-9]\d*))+\Z")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+\Z")

NIP001 = LOCAL_CODE_PREFIX + "NIP001"  # CDC immunization information source (no FHIR URI)
NIP002 = LOCAL_CODE_PREFIX + "NIP002"  # CDC substance refusal reason (no FHIR URI)

# ---- code tables --------------------------------------------------------------------------

# Table 0322 completion status -> Immunization.status (v2-to-FHIR IG concept map).
COMPLETION_STATUS: dict[str, str] = {
    "CP": "completed",
    "RE": "not-done",
    "NA": "not-done",
    "PA": "completed",  # with isSubpotent, subpotentReason "partial" and a note
}
# Table 0323 action code: A add, U update, D delete (-> entered-in-error).
ACTION_CODES = frozenset({"A", "U", "D"})

# Table 0162 route (the codes CDC's IG lists), for a display the sender left out.
ROUTE_DISPLAYS: dict[str, str] = {
    "ID": "Intradermal",
    "IM": "Intramuscular",
    "IV": "Intravenous",
    "NS": "Nasal",
    "PO": "Oral",
    "SC": "Subcutaneous",
    "TD": "Transdermal",
    "OTH": "Other/Miscellaneous",
}
# Table 0163 administrative site (CDC's subset), likewise.
SITE_DISPLAYS: dict[str, str] = {
    "LA": "Left Arm",
    "LD": "Left Deltoid",
    "LG": "Left Gluteous Medius",
    "LLFA": "Left Lower Forearm",
    "LT": "Left Thigh",
    "LVL": "Left Vastus Lateralis",
    "RA": "Right Arm",
    "RD": "Right Deltoid",
    "RG": "Right Gluteous Medius",
    "RLFA": "Right Lower Forearm",
    "RT": "Right Thigh",
    "RVL": "Right Vastus Lateralis",
}
# NIP001 immunization information source (RXA-9): 00 is a new record, the rest historical.
INFORMATION_SOURCE: dict[str, str] = {
    "00": "New immunization record",
    "01": "Historical information - source unspecified",
    "02": "Historical information - from other provider",
    "03": "Historical information - from parent's written record",
    "04": "Historical information - from parent's recall",
    "05": "Historical information - from other registry",
    "06": "Historical information - from birth certificate",
    "07": "Historical information - from school record",
    "08": "Historical information - from public agency",
}
# ... and the immunization-origin code each historical source is (01, 05, 08 have none).
REPORT_ORIGIN: dict[str, tuple[str, str]] = {
    "02": ("provider", "Other Provider"),
    "03": ("record", "Written Record"),
    "04": ("recall", "Parent/Guardian/Patient Recall"),
    "06": ("record", "Written Record"),
    "07": ("school", "School Record"),
}
# NIP002 substance refusal reason (RXA-18), and its v3 ActReason equivalent.
REFUSAL_REASON: dict[str, str] = {
    "00": "Parental decision",
    "01": "Religious exemption",
    "02": "Other",
    "03": "Patient decision",
}
REFUSAL_ACT_REASON: dict[str, tuple[str, str]] = {
    "00": ("PATOBJ", "patient objection"),
    "01": ("RELIG", "religious objection"),
    "03": ("PATOBJ", "patient objection"),
}
# Table 0064 financial class, the VFC eligibility codes CDC defines in it.
VFC_ELIGIBILITY: dict[str, str] = {
    "V01": "Not VFC eligible",
    "V02": "VFC eligible - Medicaid/Medicaid Managed Care",
    "V03": "VFC eligible - Uninsured",
    "V04": "VFC eligible - American Indian/Alaskan Native",
    "V05": "VFC eligible - Federally Qualified Health Center Patient (under-insured)",
}
_VFC_CODE = re.compile(r"V\d{2}\Z")

# OBX-3 LOINC codes CDC's IG attaches to a dose.
LOINC_VFC_ELIGIBILITY = "64994-7"
LOINC_FUNDING_SOURCE = "30963-3"
LOINC_VIS_PUBLISHED = "29768-9"
LOINC_VIS_PRESENTED = "29769-7"
LOINC_VIS_DOCUMENT = "69764-9"
LOINC_VACCINE_TYPE = "30956-7"
VIS_CODES = frozenset(
    {LOINC_VIS_PUBLISHED, LOINC_VIS_PRESENTED, LOINC_VIS_DOCUMENT, LOINC_VACCINE_TYPE}
)

# CDC's IG: ORC-3 is 9999 when the RXA records a dose that was not given by the sender
# (refusals, some historical records). It is a placeholder, never an identifier.
PLACEHOLDER_ORDER_NUMBERS = frozenset({"9999"})

_ADMINISTERING = {"system": V2_0443, "code": "AP", "display": "Administering Provider"}
_ORDERING = {"system": V2_0443, "code": "OP", "display": "Ordering Provider"}
_FILLER_TYPE = {"system": V2_0203, "code": "FILL", "display": "Filler Identifier"}
_PLACER_TYPE = {"system": V2_0203, "code": "PLAC", "display": "Placer Identifier"}
_PARTIAL_DOSE = {"system": SUBPOTENT_REASON, "code": "partial", "display": "Partial Dose"}
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)\Z")

# ---- coded values -------------------------------------------------------------------------


def local_code_system(facility: str, name: str = "") -> str:
    """urn:conduit:code:<facility>:<name, or "local">: a sender's own codes mean something
    only at that sender, so the system is scoped to it and stable across messages."""
    scope, local = quote(facility, safe="-._~"), quote(name or "local", safe="-._~")
    return f"{LOCAL_CODE_PREFIX}{scope}:{local}"


def coding_system(name: str, facility: str) -> str | None:
    """The FHIR system URI for a v2 coding-system name (CWE.3); None when there is none.

    Names from table 0396 get their registered URI, HL7nnnn the v2 table's code system,
    CDC's NIP001/NIP002 urn:conduit:code:NIPnnn, an OID or URI is used as it is; any other
    name is the sender's own system (`local_code_system`).
    """
    name = dt.present(name)
    if not name:
        return None
    upper = name.upper()
    if upper in ("NIP001", "NIP002"):
        return LOCAL_CODE_PREFIX + upper
    if upper in CODING_SYSTEMS:
        return CODING_SYSTEMS[upper]
    table = _HL7_TABLE_NAME.match(upper)
    if table:
        return HL7_TABLE + table[1]
    if _OID.match(name):
        return f"urn:oid:{name}"
    if _URI.match(name):
        return name
    return local_code_system(facility, name)


def _coding(
    code: str,
    display: str,
    system_name: str,
    facility: str,
    default_system: str | None = None,
    displays: Mapping[str, str] | None = None,
) -> dict | None:
    """One Coding; the field's own table (`default_system`) stands in for a missing CWE.3,
    else the sender's local system. A code of that table is written as the table spells
    it ("normal" -> "Normal"), with the table's display when the sender sent none."""
    code, display = dt.present(code), dt.present(display)
    if not code:
        return None
    system = coding_system(system_name, facility) or default_system
    system = system or local_code_system(facility)
    if displays is not None and system == default_system:
        canonical = next((k for k in displays if k.upper() == code.upper()), None)
        if canonical is not None:
            code, display = canonical, display or displays[canonical]
    return compact({"system": system, "code": code, "display": display})


def cwe_to_concept(
    rep: Repetition | None,
    facility: str,
    default_system: str | None = None,
    displays: Mapping[str, str] | None = None,
) -> dict | None:
    """A CE/CWE as a CodeableConcept: the identifier (CWE.1-3) and the alternate identifier
    (CWE.4-6) as codings, CWE.9 original text as text; None when it holds nothing.

    `default_system` is the table the field is bound to (RXR-1 to 0162, RXA-5 to 0292 =
    CVX): a code sent without CWE.3 is read from it. Without one, such a code is the
    sender's (`local_code_system`); a CWE with text only becomes {"text": ...}.
    """
    if rep is None:
        return None
    primary = _coding(
        rep.value(1), rep.value(2), rep.value(3), facility, default_system, displays
    )
    alternate = _coding(rep.value(4), rep.value(5), rep.value(6), facility)
    codings = [c for c in (primary, alternate) if c]
    if len(codings) == 2 and codings[0] == codings[1]:
        codings = codings[:1]
    text = dt.present(rep.value(9))
    if not codings:
        text = text or dt.present(rep.value(2)) or dt.present(rep.value(5))
    return compact({"coding": codings, "text": text}) or None


def first(segment: Segment | None, field_number: int) -> Repetition | None:
    """The first repetition of a field, or None when the field (or segment) is empty."""
    if segment is None:
        return None
    reps = segment.repetitions(field_number)
    return reps[0] if reps else None


# ---- dose groups --------------------------------------------------------------------------


@dataclass
class DoseGroup:
    """One dose's segments; `path` names its RXA for errors ("RXA" or "RXA[2]")."""

    rxa: Segment
    path: str
    orc: Segment | None = None
    orc_path: str = "ORC"
    rxr: Segment | None = None
    observations: list[tuple[str, Segment]] = field(default_factory=list)  # (path, OBX)
    notes: list[Segment] = field(default_factory=list)

    def field(self, number: int) -> str:
        """The name of one of this RXA's fields, as errors give it: "RXA[2]-5"."""
        return f"{self.path}-{number}"


def dose_groups(message: Hl7Message) -> list[DoseGroup]:
    """The message's doses in order, one per RXA, with the ORC just before it if any
    (v2.3.1 feeds send RXA after RXA without ORC). RXR, OBX and NTE belong to the RXA
    before them. An ORC without an RXA ordered nothing that was given: it yields no dose."""
    groups: list[DoseGroup] = []
    orc: tuple[Segment, str] | None = None
    current: DoseGroup | None = None
    counts: dict[str, int] = {}
    for seg in message:
        counts[seg.name] = n = counts.get(seg.name, 0) + 1
        path = seg.name if n == 1 else f"{seg.name}[{n}]"
        if seg.name == "ORC":
            orc, current = (seg, path), None
        elif seg.name == "RXA":
            current = DoseGroup(rxa=seg, path=path)
            if orc is not None:
                current.orc, current.orc_path = orc
            groups.append(current)
            orc = None
        elif current is None:
            continue
        elif seg.name == "RXR" and current.rxr is None:
            current.rxr = seg
        elif seg.name == "OBX":
            current.observations.append((path, seg))
        elif seg.name == "NTE":
            current.notes.append(seg)
    return groups


# ---- identity -------------------------------------------------------------------------------


def _order_identifier(orc: Segment | None, number: int, facility: str) -> dict | None:
    """ORC-3 (filler) or ORC-2 (placer) as an Identifier; None when empty or 9999."""
    rep = first(orc, number)
    if rep is None:
        return None
    value = dt.present(rep.value(1))
    if not value or value in PLACEHOLDER_ORDER_NUMBERS:
        return None
    system = dt.hd_system(rep.value(2), rep.value(3), rep.value(4)) or dt.hd_system(facility)
    kind = _FILLER_TYPE if number == 3 else _PLACER_TYPE
    return {"type": {"coding": [dict(kind)]}, "system": system, "value": value}


def order_identifiers(group: DoseGroup, facility: str) -> list[dict]:
    """The dose's filler (ORC-3) then placer (ORC-2) order numbers."""
    found = (_order_identifier(group.orc, n, facility) for n in (3, 2))
    return [i for i in found if i]


def immunization_id(group: DoseGroup, facility: str, patient_id: str) -> tuple[str, str]:
    """The Immunization's id and the field it was derived from.

    From the first order number (filler ORC-3, else placer ORC-2) within the sending
    facility, so an update or a delete (RXA-21 U/D) of the dose lands on the same resource.
    Without one (v2.3.1 without ORC, or the 9999 placeholder) the id is derived from the
    patient, RXA-3 as sent and RXA-5's code: the same dose reported again keeps its id.
    """
    identifiers = order_identifiers(group, facility)
    if identifiers:
        key = identifiers[0]
        number = 3 if key["type"]["coding"][0]["code"] == "FILL" else 2
        return resource_id("Immunization", facility, key), f"{group.orc_path}-{number}"
    rxa = group.rxa
    parts = (patient_id, dt.present(rxa.value(3)), dt.present(rxa.value(5, 3)).upper(),
             dt.present(rxa.value(5, 1)))
    key = {"system": "urn:conduit:immunization-key", "value": "|".join(parts)}
    return resource_id("Immunization", facility, key), group.field(3)


# ---- the administration (RXA) ---------------------------------------------------------------


def vaccine_code(group: DoseGroup, facility: str) -> dict:
    """RXA-5 as vaccineCode; a code without a system is CVX (table 0292, the field's)."""
    concept = cwe_to_concept(first(group.rxa, 5), facility, CVX)
    if concept is None:
        raise MappingError("is empty; every dose needs its vaccine", field=group.field(5))
    return concept


def occurrence(group: DoseGroup, sender_offset: str | None) -> str:
    """RXA-3, the administration time, which R4 requires."""
    when = dt.to_fhir_datetime(group.rxa.value(3), group.field(3), sender_offset)
    if when is None:
        raise MappingError("is empty; every dose needs its date", field=group.field(3))
    return when


@dataclass(frozen=True)
class DoseStatus:
    """Immunization.status and what comes with it."""

    code: str
    reason: dict | None = None
    partial: bool = False


def dose_status(group: DoseGroup, facility: str) -> DoseStatus:
    """RXA-21 D (delete) is entered-in-error; else RXA-20 through table 0322 (empty is
    CP). A code outside the tables fails: a wrong status would assert or hide a dose."""
    action = dt.present(group.rxa.value(21)).upper()
    if action and action not in ACTION_CODES:
        raise MappingError("is not a code from HL7 table 0323 (A, U, D)", field=group.field(21))
    if action == "D":
        return DoseStatus("entered-in-error")
    completion = dt.present(group.rxa.value(20)).upper() or "CP"
    if completion not in COMPLETION_STATUS:
        raise MappingError(
            "is not a code from HL7 table 0322 (CP, RE, NA, PA)", field=group.field(20)
        )
    status = COMPLETION_STATUS[completion]
    reason = refusal_reason(group.rxa, facility) if status == "not-done" else None
    return DoseStatus(status, reason, partial=completion == "PA")


def refusal_reason(rxa: Segment, facility: str) -> dict | None:
    """RXA-18 (NIP002) as statusReason, with its v3 ActReason equivalent when it has one."""
    concept = cwe_to_concept(first(rxa, 18), facility, NIP002, REFUSAL_REASON)
    if concept is None:
        return None
    primary = concept.get("coding", [{}])[0]
    act = None
    if primary.get("system") == NIP002:
        act = REFUSAL_ACT_REASON.get(primary.get("code", ""))
    if act:
        concept["coding"].append({"system": V3_ACT_REASON, "code": act[0], "display": act[1]})
    return concept


def recorded(group: DoseGroup, sender_offset: str | None) -> str | None:
    """RXA-22 system entry time, only for an add (RXA-21 A or empty): on an update it is
    the update's time, and `recorded` is when the dose was first recorded."""
    if dt.present(group.rxa.value(21)).upper() not in ("", "A"):
        return None
    return dt.to_fhir_datetime(group.rxa.value(22), group.field(22), sender_offset)


def _is_source(rep: Repetition) -> bool:
    """Whether an RXA-9 repetition is an NIP001 information source code."""
    code, system = dt.present(rep.value(1)), dt.present(rep.value(3)).upper()
    return code in INFORMATION_SOURCE and system in ("", "NIP001")


def information_source(group: DoseGroup, facility: str) -> dict:
    """RXA-9 (NIP001): 00 is primarySource true; 01-08 are historical, primarySource false
    with reportOrigin (the NIP001 code, and the immunization-origin code where one fits).
    Other RXA-9 repetitions are administration notes (see `notes`)."""
    for rep in group.rxa.repetitions(9):
        if _is_source(rep):
            return _source(dt.present(rep.value(1)), rep, facility)
    return {}


def _source(code: str, rep: Repetition, facility: str) -> dict:
    if code == "00":
        return {"primarySource": True}
    origin = cwe_to_concept(rep, facility, NIP001, INFORMATION_SOURCE) or {}
    fhir_origin = REPORT_ORIGIN.get(code)
    if fhir_origin:
        origin.setdefault("coding", []).append(
            {"system": IMMUNIZATION_ORIGIN, "code": fhir_origin[0], "display": fhir_origin[1]}
        )
    return {"primarySource": False, "reportOrigin": origin}


def dose_quantity(group: DoseGroup) -> dict | None:
    """RXA-6 amount with RXA-7 units; 999 (CDC's "amount unknown") is left out. Units get
    a system only when RXA-7 says UCUM: a unit code without a system is not allowed."""
    amount = dt.present(group.rxa.value(6))
    if not amount or amount == "999":
        return None
    if not _NUMBER.match(amount):
        raise MappingError("is not a non-negative number", field=group.field(6))
    quantity: dict = {"value": float(amount) if "." in amount else int(amount)}
    units = first(group.rxa, 7)
    if units is not None:
        code, text = dt.present(units.value(1)), dt.present(units.value(2))
        if code and dt.present(units.value(3)).upper() == "UCUM":
            quantity.update(unit=text or code, system=UCUM, code=code)
        elif text or code:
            quantity["unit"] = text or code
    return quantity


def manufacturer(group: DoseGroup, facility: str) -> dict | None:
    """RXA-17 as a logical reference: the MVX code as identifier, the name as display."""
    rep = first(group.rxa, 17)
    if rep is None:
        return None
    code, name = dt.present(rep.value(1)), dt.present(rep.value(2))
    ref: dict = {"display": name}
    if code:
        ref["identifier"] = {"system": coding_system(rep.value(3), facility) or MVX, "value": code}
    return compact(ref) or None


def administered_at(group: DoseGroup) -> dict | None:
    """RXA-11 (LA2) as a location display: its facility (.4), else its point of care."""
    rxa = group.rxa
    name = dt.present(rxa.value(11, 4)) or dt.present(rxa.value(11, 1))
    return {"display": name} if name else None


def performers(group: DoseGroup) -> list[dict]:
    """RXA-10 (administering, AP) and ORC-12 (ordering, OP) by display name; an entry
    with an id and no name is left out (see `datatypes.xcn_display`)."""
    people = [(_ADMINISTERING, rep) for rep in group.rxa.repetitions(10)]
    if group.orc is not None:
        people += [(_ORDERING, rep) for rep in group.orc.repetitions(12)]
    found = []
    for function, rep in people:
        name = dt.xcn_display(rep)
        if name:
            found.append({"function": {"coding": [dict(function)]}, "actor": {"display": name}})
    return found


def route_and_site(group: DoseGroup, facility: str) -> dict:
    """RXR-1 route (table 0162) and RXR-2 site (table 0163)."""
    return {
        "route": cwe_to_concept(first(group.rxr, 1), facility, V2_0162, ROUTE_DISPLAYS),
        "site": cwe_to_concept(first(group.rxr, 2), facility, V2_0163, SITE_DISPLAYS),
    }


def notes(group: DoseGroup, status: DoseStatus) -> list[dict]:
    """A note saying a dose was partial (RXA-20 PA), the text of RXA-9 administration notes
    that are not NIP001 codes, and NTE-3 comments after the RXA."""
    found = []
    if status.partial:
        found.append({"text": "Partially administered (RXA-20 PA)"})
    for rep in group.rxa.repetitions(9):
        text = dt.present(rep.value(9)) or dt.present(rep.value(2))
        if text and not _is_source(rep):
            found.append({"text": text})
    for nte in group.notes:
        text = "\n".join(t for t in (dt.present(r.value(1)) for r in nte.repetitions(3)) if t)
        if text:
            found.append({"text": text})
    return found


# ---- observations (OBX) ---------------------------------------------------------------------


def observations(group: DoseGroup, facility: str, sender_offset: str | None) -> dict:
    """The dose's OBX that R4 has elements for: programEligibility (64994-7, table 0064),
    fundingSource (30963-3, the first one) and education (one per VIS group of OBX-4
    sub-id). Other observations (contraindications, reactions, dose number) are not
    mapped by this version."""
    eligibility: list[dict] = []
    funding: dict | None = None
    vis: dict[str, dict[str, tuple[str, Segment]]] = {}
    for path, obx in group.observations:
        code = dt.present(obx.value(3, 1))
        value = first(obx, 5)
        if code == LOINC_VFC_ELIGIBILITY:
            concept = cwe_to_concept(value, facility, V2_0064, VFC_ELIGIBILITY)
            if concept:
                eligibility.append(concept)
        elif code == LOINC_FUNDING_SOURCE and funding is None:
            funding = cwe_to_concept(value, facility, CDC_PHIN_VS)
        elif code in VIS_CODES:
            vis.setdefault(dt.present(obx.value(4)), {})[code] = (path, obx)
    education = [e for e in (_education(parts, sender_offset) for parts in vis.values()) if e]
    return {"programEligibility": eligibility, "fundingSource": funding, "education": education}


def _education(parts: dict[str, tuple[str, Segment]], sender_offset: str | None) -> dict | None:
    """One VIS: R4 requires a documentType or reference, so it is the VIS document
    (69764-9, its text else its GDTI code), else "Vaccine Information Statement for
    <vaccine type>" (30956-7), else just "Vaccine Information Statement"."""
    published = _obx_date(parts.get(LOINC_VIS_PUBLISHED), sender_offset)
    presented = _obx_date(parts.get(LOINC_VIS_PRESENTED), sender_offset)
    document = _document_type(parts)
    if not (published or presented or document):
        return None
    return compact({
        "documentType": document or "Vaccine Information Statement",
        "publicationDate": published,
        "presentationDate": presented,
    })


def _document_type(parts: dict[str, tuple[str, Segment]]) -> str:
    if LOINC_VIS_DOCUMENT in parts:
        obx = parts[LOINC_VIS_DOCUMENT][1]
        return dt.present(obx.value(5, 2)) or dt.present(obx.value(5, 1))
    if LOINC_VACCINE_TYPE in parts:
        obx = parts[LOINC_VACCINE_TYPE][1]
        vaccine = dt.present(obx.value(5, 2)) or f"CVX {dt.present(obx.value(5, 1))}"
        return f"Vaccine Information Statement for {vaccine}"
    return ""


def _obx_date(part: tuple[str, Segment] | None, sender_offset: str | None) -> str | None:
    if part is None:
        return None
    path, obx = part
    return dt.to_fhir_datetime(obx.value(5), f"{path}-5", sender_offset)


def visit_eligibility(message: Hl7Message) -> dict | None:
    """VFC eligibility as v2.3.1 senders send it, in PV1-20 (financial class), when the
    code is one of table 0064's V codes."""
    pv1 = message.segment("PV1")
    code = dt.present(pv1.value(20, 1)).upper() if pv1 is not None else ""
    if not _VFC_CODE.match(code):
        return None
    return {"coding": [compact({
        "system": V2_0064, "code": code, "display": VFC_ELIGIBILITY.get(code, ""),
    })]}


# ---- the resource -------------------------------------------------------------------------


def immunization(
    group: DoseGroup,
    *,
    facility: str,
    patient: dict,
    sender_offset: str | None,
    eligibility_from_visit: dict | None = None,
) -> dict:
    """The Immunization for one dose group (see the VXU mapping's docstring for choices)."""
    status = dose_status(group, facility)
    source = information_source(group, facility)
    observed = observations(group, facility, sender_offset)
    if not observed["programEligibility"] and eligibility_from_visit is not None and (
        source.get("primarySource", True)
    ):
        observed["programEligibility"] = [eligibility_from_visit]
    resource = {
        "resourceType": "Immunization",
        "id": immunization_id(group, facility, patient["id"])[0],
        "identifier": order_identifiers(group, facility),
        "status": status.code,
        "statusReason": status.reason,
        "vaccineCode": vaccine_code(group, facility),
        "patient": reference(patient),
        "occurrenceDateTime": occurrence(group, sender_offset),
        "recorded": recorded(group, sender_offset),
        **source,
        "location": administered_at(group),
        "manufacturer": manufacturer(group, facility),
        "lotNumber": dt.present(group.rxa.value(15)),
        "expirationDate": dt.to_fhir_date(group.rxa.value(16), group.field(16)),
        **route_and_site(group, facility),
        "doseQuantity": dose_quantity(group),
        "performer": performers(group),
        "note": notes(group, status),
        "isSubpotent": True if status.partial else None,
        "subpotentReason": [{"coding": [dict(_PARTIAL_DOSE)]}] if status.partial else None,
        **observed,
    }
    return compact(resource)
