"""HL7 v2 immunization segments as parts of a FHIR R4 Immunization, and the code tables
they need.

A VXU^V04 carries each dose as an order group: ORC (optional before v2.5), RXA (the
administration), RXR (route and site) and the OBX observations that CDC's HL7 2.5.1
immunization implementation guide attaches (VFC eligibility, funding source, VIS). This
module reads those groups; `mappings/hl7v2-vxu-to-fhir` assembles the Bundle.

Coded values (CE/CWE) become CodeableConcepts through `v2_codes`, which reads a code sent
without a system from the table its field is bound to (RXA-5 CVX, RXR-1 0162, RXA-18
NIP002, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Repetition, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib.fhir import compact, reference, resource_id
from engine.maplib.v2_codes import Bound, coding_system, cwe_to_codeable_concept, first_concept
from engine.maplib.v2_fhir import nte_text

V3_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
IMMUNIZATION_ORIGIN = "http://terminology.hl7.org/CodeSystem/immunization-origin"
SUBPOTENT_REASON = "http://terminology.hl7.org/CodeSystem/immunization-subpotent-reason"

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

# The tables the coded fields of a dose are bound to; CDC's IG binds them, so every code
# sent without a coding system is read in the field's table, listed here or not.
VACCINE = Bound(tables.CVX)  # RXA-5, table 0292
REFUSAL = Bound(tables.NIP002, REFUSAL_REASON, every_code=True)  # RXA-18
SOURCE = Bound(tables.NIP001, INFORMATION_SOURCE, every_code=True)  # RXA-9
ROUTE = Bound(tables.V2_0162, tables.ROUTE_OF_ADMINISTRATION, every_code=True)  # RXR-1
SITE = Bound(tables.V2_0163, tables.ADMINISTRATIVE_SITE, every_code=True)  # RXR-2
ELIGIBILITY = Bound(tables.V2_0064, VFC_ELIGIBILITY, every_code=True)  # OBX-5 of 64994-7
FUNDING = Bound(tables.CDC_PHIN_VS)  # OBX-5 of 30963-3

_ADMINISTERING = {"system": tables.V2_0443, "code": "AP", "display": "Administering Provider"}
_ORDERING = {"system": tables.V2_0443, "code": "OP", "display": "Ordering Provider"}
_PARTIAL_DOSE = {"system": SUBPOTENT_REASON, "code": "partial", "display": "Partial Dose"}

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
    kind = tables.FILLER_IDENTIFIER if number == 3 else tables.PLACER_IDENTIFIER
    identifier = dt.ei_to_identifier(dt.first_rep(orc, number), facility, kind)
    if identifier is None or identifier["value"] in PLACEHOLDER_ORDER_NUMBERS:
        return None
    return identifier


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
    concept = first_concept(group.rxa, 5, facility, VACCINE)
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
    concept = first_concept(rxa, 18, facility, REFUSAL)
    if concept is None:
        return None
    primary = concept.get("coding", [{}])[0]
    act = None
    if primary.get("system") == REFUSAL.system:
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
    origin = cwe_to_codeable_concept(rep, facility, SOURCE) or {}
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
    value = dt.parse_nm(amount)
    if value is None or value < 0:
        raise MappingError("is not a non-negative number", field=group.field(6))
    quantity: dict = {"value": value}
    units = dt.first_rep(group.rxa, 7)
    if units is not None:
        code, text = dt.present(units.value(1)), dt.present(units.value(2))
        if code and dt.present(units.value(3)).upper() == "UCUM":
            quantity.update(unit=text or code, system=tables.UCUM, code=code)
        elif text or code:
            quantity["unit"] = text or code
    return quantity


def manufacturer(group: DoseGroup, facility: str) -> dict | None:
    """RXA-17 as a logical reference: the MVX code as identifier, the name as display."""
    rep = dt.first_rep(group.rxa, 17)
    if rep is None:
        return None
    code, name, system = (dt.present(rep.value(i)) for i in (1, 2, 3))
    ref: dict = {"display": name}
    if code:
        system = coding_system(system, facility) if system else tables.MVX
        ref["identifier"] = {"system": system, "value": code}
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
        "route": first_concept(group.rxr, 1, facility, ROUTE),
        "site": first_concept(group.rxr, 2, facility, SITE),
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
    found += [{"text": t} for t in map(nte_text, group.notes) if t]
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
        value = dt.first_rep(obx, 5)
        if code == LOINC_VFC_ELIGIBILITY:
            concept = cwe_to_codeable_concept(value, facility, ELIGIBILITY)
            if concept:
                eligibility.append(concept)
        elif code == LOINC_FUNDING_SOURCE and funding is None:
            funding = cwe_to_codeable_concept(value, facility, FUNDING)
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
        "system": tables.V2_0064, "code": code, "display": VFC_ELIGIBILITY.get(code, ""),
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
