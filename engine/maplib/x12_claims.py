"""837 claims (professional, institutional, dental) as FHIR R4 Claim with the Patient,
Practitioner, Organization, Location and Coverage resources they point at.

One builder per part of a claim (diagnoses, procedures, care team, items, coverage,
supporting information), each reading the loops of the set's structure (sets/x837.py),
so "the rendering provider" is the 2310B loop whatever came before it. What cannot be
read (an unreal date, an amount that is not a number, a pointer to no diagnosis) is
left out, never failing the claim; the mapping's docstring lists these choices.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.formats.x12.message import X12Message
from engine.formats.x12.structure import Node
from engine.formats.x12.tokens import Segment
from engine.maplib import x12_claim_cob as cob
from engine.maplib import x12_claim_info as info
from engine.maplib import x12_claim_refs as refs
from engine.maplib import x12_fhir as xf
from engine.maplib.fhir import compact, reference, resource_id
from engine.maplib.x12_codes import (
    C4BB_ROLE,
    C4BB_SUBTYPE,
    CLAIM_TYPE,
    COVERAGE_CLASS,
    CPT,
    DIAGNOSIS_TYPE,
    HCPCS,
    ICD9CM,
    ICD10CM,
    NDC,
    PLACE_OF_SERVICE,
    PRIORITY,
    RELATIONSHIP,
    REVENUE,
    TAXONOMY,
    TYPE_OF_BILL,
    concept,
    icd_code,
    procedure_system,
    relationships,
)

ICD10PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
TOOTH = "http://terminology.hl7.org/CodeSystem/ADAUniversalToothDesignationSystem"
ORAL_AREA = "http://terminology.hl7.org/CodeSystem/ADAAreaOralCavitySystem"
SURFACE = "http://terminology.hl7.org/CodeSystem/FDI-surface"
UCUM = "http://unitsofmeasure.org"
C4BB_INFO = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType"
C4BB_DIAGNOSIS = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBClaimDiagnosisType"
CARE_ROLE = "http://terminology.hl7.org/CodeSystem/claimcareteamrole"
ON_ADMISSION = "http://terminology.hl7.org/CodeSystem/ex-diagnosis-on-admission"
PROCEDURE_TYPE = "http://terminology.hl7.org/CodeSystem/ex-procedure-type"
RELATED_CLAIM = "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
FILING = "urn:conduit:code:x12:claim-filing-indicator"

# The implementation convention's guide number -> the variant and its FHIR claim type.
VARIANTS = {"X222": ("P", "professional"), "X223": ("I", "institutional"),
            "X224": ("D", "oral")}
# HI qualifiers: (kind, coding system) for diagnoses; principal and other diagnoses are
# what line pointers count (SV107, SV311).
_DIAGNOSES = {"ABK": ("principal", ICD10CM), "BK": ("principal", ICD9CM),
              "ABF": ("other", ICD10CM), "BF": ("other", ICD9CM),
              "ABJ": ("admitting", ICD10CM), "BJ": ("admitting", ICD9CM),
              "APR": ("patientreasonforvisit", ICD10CM), "PR": ("patientreasonforvisit", ICD9CM),
              "ABN": ("externalcauseofinjury", ICD10CM), "BN": ("externalcauseofinjury", ICD9CM)}
_POINTED = ("principal", "other")
_PROCEDURES = {"BBR": ("primary", ICD10PCS), "BR": ("primary", ICD9CM),
               "BBQ": ("secondary", ICD10PCS), "BQ": ("secondary", ICD9CM)}
# SBR02 / PAT01 codes this release reads (another is other).
_RELATIONSHIP = relationships("18", "01", "19", "53")
# NM101 of a provider loop -> care team role (CARIN's where it has one, else core).
_ROLES = {"71": (C4BB_ROLE, "attending"), "DN": (C4BB_ROLE, "referring"),
          "P3": (C4BB_ROLE, "referring"), "72": (C4BB_ROLE, "operating"),
          "ZZ": (C4BB_ROLE, "otheroperating"), "82": (C4BB_ROLE, "rendering"),
          "DQ": (CARE_ROLE, "supervisor"), "DD": (CARE_ROLE, "assist"),
          "DK": (CARE_ROLE, "other"), "QB": (CARE_ROLE, "other")}
_FACILITY = ("77", "FA")
_UNITS = {"UN": ("1", "unit"), "MJ": ("min", "minute"), "DA": ("d", "day"),
          "F2": ("[iU]", "international unit"), "ME": ("mg", "milligram"),
          "ML": ("mL", "milliliter"), "GR": ("g", "gram")}
_SURFACES = {"M", "O", "I", "D", "B", "V", "L"}
_ORDER = {"P": 1, "S": 2, "T": 3, "A": 4, "B": 5, "C": 6, "D": 7, "E": 8, "F": 9, "G": 10,
          "H": 11}


def variant_of(message: X12Message) -> tuple[str, str] | None:
    """("P", "professional"), ("I", ...) or ("D", ...) from ST03/GS08; None otherwise."""
    convention = message.convention
    return next((v for k, v in VARIANTS.items() if k in convention), None)


def _composites(node: Node, seg_id: str) -> list[list[str]]:
    """Every composite element (split in components) of a loop's segments of one id."""
    out = []
    for seg in node.segs(seg_id):
        for index in range(1, len(seg) + 1):
            if seg.element(index):
                out.append([seg.element(index, c) for c in range(1, 10)])
    return out


def _period(qualifier: str, value: str) -> dict[str, str] | None:
    return xf.x12_period(qualifier, value) if qualifier in ("D8", "RD8", "DT") else None


def _when(period: dict[str, str] | None) -> dict[str, Any]:
    """A Period as servicedDate (one day) or servicedPeriod."""
    if not period:
        return {}
    if period.get("start") and period.get("start") == period.get("end"):
        return {"servicedDate": period["start"]}
    return {"servicedPeriod": period}


def _quantity(value: str, unit: str = "") -> dict[str, Any] | None:
    number = xf.amount(value)
    if number is None:
        return None
    code, name = _UNITS.get(unit, ("", ""))
    return compact({"value": number, "unit": name, "system": UCUM if code else None,
                    "code": code})


# ---- parties -----------------------------------------------------------------------------


def _with_ids(resource: dict[str, Any], node: Node, qualifiers: tuple[str, ...] = ("EI",)
              ) -> dict[str, Any]:
    """A provider's tax id (REF*EI) as a second identifier."""
    # REF*EI is an EIN: asked as FI, the NM108 code x12_fhir knows it by.
    extra = [xf.identifier("FI" if q == "EI" else q, ref.element(2))
             for q in qualifiers for ref in node.segs("REF", q)]
    idents = resource.get("identifier", []) + [i for i in extra if i]
    return {**resource, "identifier": idents} if idents else resource


def provider_key(node: Node) -> str:
    """Who assigns the billing provider's patient control numbers: its NPI, else its tax
    id, else its name (the scope of CLM01)."""
    return (node.value("NM109") or node.value("REF[EI]02") or node.value("NM103")
            or "unknown").strip()


def name_of(node: Node | None) -> Segment | None:
    """A name loop's NM1; None when the loop is absent or was opened without it (the
    reader opens a loop whose NM1 is missing when its other segments come)."""
    return node.seg("NM1") if node is not None else None


def location(nm1: Segment, node: Node) -> dict[str, Any]:
    """A service facility (2310C/E, 2420C...) as a Location, by NPI when it has one."""
    ident = xf.identifier(nm1.element(8), nm1.element(9))
    key = ident or {"system": "urn:conduit:x12:name", "value": nm1.element(3)}
    addr = xf.address(node.segments)
    return compact({"resourceType": "Location",
                    "id": resource_id("Location", "x12", key),
                    "identifier": [ident] if ident else [],
                    "name": nm1.element(3), "address": addr})


# ---- coverage ----------------------------------------------------------------------------


def coverage(sbr: Segment, member: Segment | None, payer: dict[str, Any],
             beneficiary: dict[str, Any], subscriber: dict[str, Any], scope: str,
             relationship_code: str) -> dict[str, Any]:
    """The coverage a claim is billed to: the member id at a payer for a beneficiary."""
    member_id = member.element(9).strip() if member is not None else ""
    key = {"system": f"urn:conduit:id:x12:{scope}",
           "value": f"{member_id}|{beneficiary['id']}"}
    relationship = _RELATIONSHIP.get(relationship_code, "other" if relationship_code else "")
    group = compact({"type": concept(COVERAGE_CLASS, "group"), "value": sbr.element(3),
                     "name": sbr.element(4)})
    return compact({
        "resourceType": "Coverage",
        "id": resource_id("Coverage", "x12", key),
        "status": "active",
        "type": concept(FILING, sbr.element(9)) if sbr.element(9) else None,
        "subscriber": reference(subscriber) if subscriber is not beneficiary else None,
        "subscriberId": member_id,
        "beneficiary": reference(beneficiary),
        "relationship": concept(RELATIONSHIP, relationship) if relationship else None,
        "payor": [reference(payer)],
        "class": [group] if "value" in group else [],
        "order": _ORDER.get(sbr.element(1)),
    })


# ---- the claim's parts -------------------------------------------------------------------


@dataclass
class Diagnoses:
    entries: list[dict[str, Any]]
    pointers: dict[int, int]  # a line's pointer (1-12) -> diagnosis sequence


def diagnoses(claim: Node) -> Diagnoses:
    """HI diagnoses: principal and other first, in the order sent (what line pointers
    count), then admitting, reason for visit and external cause."""
    pointed: list[list[str]] = []
    others: list[list[str]] = []
    for comp in _composites(claim, "HI"):
        kind = _DIAGNOSES.get(comp[0], ("", ""))[0]
        if kind and comp[1]:
            (pointed if kind in _POINTED else others).append(comp)
    entries, pointers = [], {}
    for index, comp in enumerate(pointed + others, start=1):
        kind, system = _DIAGNOSES[comp[0]]
        if index <= len(pointed):
            pointers[index] = index
        type_system = DIAGNOSIS_TYPE if kind in ("principal", "admitting") else C4BB_DIAGNOSIS
        poa = comp[8].lower()
        entries.append(compact({
            "sequence": index,
            "diagnosisCodeableConcept": concept(system, icd_code(system, comp[1].upper())),
            "type": [concept(type_system, kind)],
            "onAdmission": concept(ON_ADMISSION, poa) if poa in ("y", "n", "u", "w") else None,
        }))
    return Diagnoses(entries, pointers)


def procedures(claim: Node) -> list[dict[str, Any]]:
    """HI principal (BBR/BR) and other (BBQ/BQ) procedures with their dates."""
    out: list[dict[str, Any]] = []
    for comp in _composites(claim, "HI"):
        if comp[0] not in _PROCEDURES or not comp[1]:
            continue
        kind, system = _PROCEDURES[comp[0]]
        date = xf.x12_date(comp[3]) if comp[2] == "D8" else None
        out.append(compact({"sequence": len(out) + 1, "type": [concept(PROCEDURE_TYPE, kind)],
                            "date": date,
                            "procedureCodeableConcept": concept(system, comp[1].upper())}))
    return out


def _info(category: tuple[str, str], sequence: int, **value: Any) -> dict[str, Any]:
    return compact({"sequence": sequence, "category": concept(*category), **value})


def supporting_info(variant: str, claim: Node) -> list[dict[str, Any]]:
    """Institutional facts (type of bill, admission, admission type and source, discharge
    status, DRG), claim dates, UB-04 codes, contract, patient paid, attachments and
    claim notes (NTE), in that order (x12_claim_info)."""
    out: list[dict[str, Any]] = []

    def add(category: tuple[str, str], **value: Any) -> None:
        out.append(_info(category, len(out) + 1, **value))

    if variant == "I":
        facility, frequency = claim.value("CLM05-1"), claim.value("CLM05-3")
        if facility:
            add((C4BB_INFO, "typeofbill"),
                code=concept(TYPE_OF_BILL, f"0{facility}{frequency}"))
        admission = claim.seg("DTP", "435")
        start = xf.x12_date(admission.element(3)) if admission is not None else None
        if start:
            add((C4BB_INFO, "admissionperiod"), timingPeriod={"start": start})
        cl1 = claim.seg("CL1")
        if cl1 is not None:
            for index, (code, system) in enumerate((
                    ("admtype", "https://www.nubc.org/CodeSystem/PriorityTypeOfAdmitOrVisit"),
                    ("pointoforigin", "https://www.nubc.org/CodeSystem/PointOfOrigin"),
                    ("discharge-status", "https://www.nubc.org/CodeSystem/PatDischargeStatus"),
            ), start=1):
                if cl1.element(index):
                    add((C4BB_INFO, code), code=concept(system, cl1.element(index)))
        for comp in _composites(claim, "HI"):
            if comp[0] == "DR" and comp[1]:
                add((C4BB_INFO, "drg"), code=concept(
                    "https://www.cms.gov/Medicare/Medicare-Fee-for-Service-Payment/"
                    "AcuteInpatientPPS/MS-DRG-Classifications-and-Software", comp[1]))
    facts = info.dates(variant, claim) + (info.ub04_codes(claim) if variant == "I" else [])
    facts += info.contract(claim) + info.patient_paid(claim) + info.attachments(claim)
    out += [{"sequence": len(out) + n, **fact} for n, fact in enumerate(facts, start=1)]
    for nte in claim.segs("NTE"):
        if nte.element(2):
            add((info.INFO_CATEGORY, "info"), valueString=nte.element(2))
    return out


class CareTeam:
    """The claim's care team: each provider once, by resource, with its role; line
    providers join it and their lines point at them."""

    def __init__(self) -> None:
        self.members: list[dict[str, Any]] = []
        self.resources: list[dict[str, Any]] = []
        self._seen: dict[tuple[str, str], int] = {}

    def add(self, node: Node) -> int | None:
        nm1 = name_of(node)
        role = _ROLES.get(nm1.element(1)) if nm1 is not None else None
        if role is None:
            return None
        assert nm1 is not None
        resource = xf.party(nm1, node.segments)
        key = (resource["id"], role[1])
        if key not in self._seen:
            self._seen[key] = len(self.members) + 1
            prv = node.seg("PRV")
            taxonomy = prv.element(3) if prv is not None else ""
            self.members.append(compact({
                "sequence": self._seen[key], "provider": reference(resource),
                "role": concept(*role),
                "qualification": concept(TAXONOMY, taxonomy)
                if taxonomy else None}))
            self.resources.append(resource)
        return self._seen[key]


def _procedure_code(comp: list[str]) -> dict[str, Any] | None:
    """SV101 / SV202 / SV301 composite: the code and its modifiers (components 3-6)."""
    qualifier, code = comp[0], comp[1].strip().upper()
    if not code:
        return None
    return concept(procedure_system(qualifier, code), code, comp[6] if len(comp) > 6 else "")


def _modifiers(comp: list[str]) -> list[dict[str, Any]]:
    out = []
    for mod in comp[2:6]:
        mod = mod.strip().upper()
        if mod:
            out.append(concept(CPT if mod.isdecimal() else HCPCS, mod))
    return out


def _unit_price(net: Decimal | None, quantity: Decimal | None) -> Decimal | None:
    """The charge per unit when the charge divides into whole cents."""
    if net is None or not quantity:
        return None
    unit = net / quantity
    return unit if unit == unit.quantize(Decimal("0.01")) else None


def _line_service(variant: str, line: Node) -> dict[str, Any]:
    """The service segment of a line (SV1, SV2, SV3) as Claim.item elements."""
    if variant == "P":
        sv = line.seg("SV1")
        if sv is None:
            return {}
        comp = [sv.element(1, c) for c in range(1, 9)]
        return {"product": _procedure_code(comp), "modifier": _modifiers(comp),
                "net": xf.amount(sv.element(2)),
                "quantity": _quantity(sv.element(4), sv.element(3)),
                "place": sv.element(5),
                "pointers": [sv.element(7, c) for c in range(1, 5)]}
    if variant == "I":
        sv = line.seg("SV2")
        if sv is None:
            return {}
        comp = [sv.element(2, c) for c in range(1, 9)]
        return {"revenue": sv.element(1), "product": _procedure_code(comp),
                "modifier": _modifiers(comp), "net": xf.amount(sv.element(3)),
                "quantity": _quantity(sv.element(5), sv.element(4))}
    sv = line.seg("SV3")
    if sv is None:
        return {}
    comp = [sv.element(1, c) for c in range(1, 9)]
    return {"product": _procedure_code(comp), "modifier": _modifiers(comp),
            "net": xf.amount(sv.element(2)), "place": sv.element(3),
            "areas": [sv.element(4, c) for c in range(1, 6)],
            "quantity": _quantity(sv.element(6) or "1", "UN"),
            "pointers": [sv.element(11, c) for c in range(1, 5)]}


def _teeth(line: Node, areas: list[str]) -> dict[str, Any]:
    """TOO tooth numbers (bodySite: the first tooth, every tooth named in its text) and
    surfaces (subSite); without a tooth, the oral cavity area of SV304."""
    teeth = [too for too in line.segs("TOO") if too.element(2)]
    if not teeth:
        area = next((a for a in areas if a), "")
        return {"bodySite": concept(ORAL_AREA, area)} if area else {}
    numbers = [too.element(2) for too in teeth]
    site = concept(TOOTH, numbers[0])
    if len(numbers) > 1:
        site["text"] = "teeth " + ", ".join(numbers)
    surfaces: list[str] = []
    for too in teeth:
        for c in range(1, 6):
            surface = too.element(3, c).upper()
            if surface and surface not in surfaces:
                surfaces.append(surface)
    return compact({"bodySite": site, "subSite": [
        concept(SURFACE if s in _SURFACES else "urn:conduit:code:x12:tooth-surface", s)
        for s in surfaces]})


def _drug(line: Node) -> list[dict[str, Any]]:
    """2410 LIN (NDC) with its CTP quantity as the line's detail."""
    out: list[dict[str, Any]] = []
    for drug in line.kids("2410"):
        code = drug.value("LIN03")
        if not code:
            continue
        qualifier = drug.value("LIN02")
        system = NDC if qualifier == "N4" else f"urn:conduit:code:x12:{qualifier}"
        ctp = drug.seg("CTP")
        quantity = _quantity(ctp.element(4), ctp.element(5, 1)) if ctp is not None else None
        out.append(compact({"sequence": len(out) + 1,
                            "productOrService": concept(system, code),
                            "quantity": quantity}))
    return out


def line_numbers(lines: list[Node]) -> list[int]:
    """Each line's item sequence: LX01 when every line has its own positive number,
    else the lines' order (some senders send LX*1 on every line)."""
    sent = [line.value("LX01") for line in lines]
    if all(n.isdecimal() and int(n) > 0 for n in sent) and len({int(n) for n in sent}) == \
            len(sent):
        return [int(n) for n in sent]
    return list(range(1, len(lines) + 1))


def item(variant: str, line: Node, sequence: int, claim_place: str, diag: Diagnoses,
         team: CareTeam, claim_dates: dict[str, Any]) -> dict[str, Any]:
    """One service line (2400) as Claim.item."""
    service = _line_service(variant, line)
    product = service.get("product") or concept(ABSENT, "not-applicable")
    net = service.get("net")
    quantity = service.get("quantity")
    pointers = []
    for pointer in service.get("pointers", []):
        if pointer.isdecimal() and int(pointer) in diag.pointers:
            sequence_of = diag.pointers[int(pointer)]
            if sequence_of not in pointers:
                pointers.append(sequence_of)
    place = service.get("place") or claim_place
    date = line.seg("DTP", "472")
    when = _when(_period(date.element(2), date.element(3))) if date is not None else {}
    care = [n for n in (team.add(p) for p in line.children if p.id.startswith("2420")) if n]
    revenue = service.get("revenue")
    extra = _teeth(line, service.get("areas", [])) if variant == "D" else {}
    return compact({
        "sequence": sequence,
        "careTeamSequence": care,
        "diagnosisSequence": pointers,
        "revenue": concept(REVENUE, revenue) if revenue else None,
        "productOrService": product,
        "modifier": service.get("modifier", []),
        **(when or claim_dates),
        "locationCodeableConcept": concept(PLACE_OF_SERVICE, place)
        if place and variant != "I" else None,
        "quantity": quantity,
        "unitPrice": xf.money(str(u)) if (u := _unit_price(
            net, quantity.get("value") if quantity else Decimal(1))) is not None else None,
        "net": {"value": net, "currency": "USD"} if net is not None else None,
        **extra,
        "detail": _drug(line),
    })


def billable_period(variant: str, claim: Node, lines: list[Node]) -> dict[str, str] | None:
    """DTP*434 statement dates (837I), else DTP*472 on the claim, else the span of the
    lines' service dates."""
    for qualifier in ("434", "472"):
        seg = claim.seg("DTP", qualifier)
        if seg is not None and (found := _period(seg.element(2), seg.element(3))):
            return found
    days = []
    for line in lines:
        seg = line.seg("DTP", "472")
        if seg is not None and (found := _period(seg.element(2), seg.element(3))):
            days += [d for d in (found.get("start"), found.get("end")) if d]
    return {"start": min(days), "end": max(days)} if days else None


# ---- the set ------------------------------------------------------------------------------


@dataclass
class Subscriber:
    """A subscriber level (2000B) read once: the payer, the subscriber as a Patient."""

    node: Node
    payer: dict[str, Any]
    person: dict[str, Any]
    scope: str


def _related(claim: Node, scope: str) -> list[dict[str, Any]]:
    """REF*F8, the payer's number of the claim this one replaces or voids."""
    original = claim.value("REF[F8]02")
    if not original:
        return []
    return [{"claim": {"identifier": {"system": f"urn:conduit:id:x12:{scope}",
                                      "value": original}},
             "relationship": concept(RELATED_CLAIM, "prior")}]


def _accident(claim: Node) -> dict[str, Any] | None:
    """CLM11 related causes with DTP*439 (the accident date, which FHIR requires)."""
    seg = claim.seg("DTP", "439")
    date = xf.x12_date(seg.element(3)) if seg is not None else None
    if not date:
        return None
    causes = [claim.value(f"CLM11-{c}") for c in range(1, 4)]
    kind = "MVA" if "AA" in causes else "WPA" if "EM" in causes else ""
    return compact({"date": date, "type": concept(ACT_CODE, kind) if kind else None})


def _other_payers(claim: Node, beneficiary: dict[str, Any], head: dict[str, Any],
                  lines: list[Node], numbers: list[int]
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """2320/2330A/2330B: the other payers' coverage (resources, insurance entries), each
    with what that payer decided as its ClaimResponse (x12_claim_cob); `head` is the
    Claim's id, identifier, type, patient and created."""
    resources, insurance = [], []
    found = [o for o in claim.kids("2320") if o.seg("SBR") is not None
             and name_of(next(iter(o.kids("2330B")), None)) is not None]
    for other in found:
        member_node = next(iter(other.kids("2330A")), None)
        payer_node = other.kids("2330B")[0]
        payer_nm1, member = name_of(payer_node), name_of(member_node)
        assert payer_nm1 is not None
        payer = xf.organization(payer_nm1, payer_node.segments, payer=True)
        scope = payer_node.value("NM109") or payer_node.value("NM103")
        relationship = other.value("SBR02")
        holder = beneficiary
        if member_node is not None and member is not None and relationship != "18":
            holder = xf.patient(member, member_node.segments, scope)
            resources.append(holder)
        cov = coverage(other.segs("SBR")[0], member, payer, beneficiary, holder, scope,
                       relationship)
        resources += [payer, cov]
        response = cob.prior_response(other, payer_node, payer, len(found) == 1, head,
                                      lines, numbers)
        resources += [response] if response else []
        insurance.append({"coverage": cov, "claimResponse": response})
    return resources, insurance


def claim_resources(message: X12Message, variant: str, claim_type: str, created: str,
                    billing: Node, subscriber: Subscriber, patient_level: Node | None,
                    claim: Node, occurrence: int = 1, version: int = 1
                    ) -> list[dict[str, Any]]:
    """One CLM as a Claim and the resources it points at; `occurrence`: this is the
    n-th claim of the set under its billing provider's CLM01 (practice systems that number
    claims by the patient's account send two visits so), keyed apart from the first.
    `version` 2 adds what x12-837-to-fhir@2 reads besides (x12_claim_refs); 1 is @1's
    output, which never changes."""
    name = billing.first("2010AA")
    billing_nm1 = name_of(name)
    assert name is not None and billing_nm1 is not None, "checked by the mapping"
    provider = _with_ids(xf.party(billing_nm1, name.segments), name)
    resources: list[dict[str, Any]] = [provider, subscriber.payer, subscriber.person]
    sbr = subscriber.node.seg("SBR")
    assert sbr is not None
    member = subscriber.node.first("2010BA")
    patient = subscriber.person
    relationship = sbr.element(2) or "18"
    if patient_level is not None:
        who = patient_level.first("2010CA")
        who_nm1 = name_of(who)
        if who is not None and who_nm1 is not None:
            patient = xf.patient(who_nm1, who.segments, subscriber.scope)
            resources.append(patient)
        relationship = patient_level.value("PAT01") or "G8"
    cov = coverage(sbr, name_of(member),
                   subscriber.payer, patient, subscriber.person, subscriber.scope,
                   relationship)
    resources.append(cov)

    team = CareTeam()
    facility = None
    for child in claim.children:
        if not child.id.startswith("2310"):
            continue
        nm1 = name_of(child)
        if nm1 is not None and nm1.element(1) in _FACILITY:
            facility = location(nm1, child)
        else:
            team.add(child)
    diag = diagnoses(claim)
    lines = claim.kids("2400")
    claim_place = claim.value("CLM05-1") if variant != "I" else ""
    claim_dates = {}
    if variant == "D" and (seg := claim.seg("DTP", "472")) is not None:
        claim_dates = _when(_period(seg.element(2), seg.element(3)))
    items = [item(variant, line, number, claim_place, diag, team, claim_dates)
             for number, line in zip(line_numbers(lines), lines, strict=True)]
    supporting = supporting_info(variant, claim)
    scope = provider_key(name)
    if version >= 2:
        for line, entry in zip(lines, items, strict=True):
            entry.update(compact({"extension": refs.line_trace(line, scope)}))
        facts = refs.hours(claim) if variant == "I" else []
        supporting += [{"sequence": len(supporting) + n, **fact}
                       for n, fact in enumerate(facts, start=1)]
    for line, entry in zip(lines, items, strict=True):
        for fact in info.attachments(line):  # line PWK: the item points at its own
            supporting.append({"sequence": len(supporting) + 1, **fact})
            entry.setdefault("informationSequence", []).append(len(supporting))
    pcn = claim.value("CLM01")
    ident = {"system": f"urn:conduit:id:x12:{scope}", "value": pcn}
    key = ident if occurrence == 1 else {**ident, "value": f"{pcn}#{occurrence}"}
    idents = [ident, *(refs.intermediary_ids(message, claim) if version >= 2 else [])]
    head = {"resourceType": "Claim", "id": resource_id("Claim", "x12", key),
            "identifier": idents, "type": concept(CLAIM_TYPE, claim_type),
            "patient": reference(patient), "created": created}
    others, other_insurance = _other_payers(claim, patient, head, lines,
                                            line_numbers(lines))
    resources += team.resources + ([facility] if facility else []) + others
    prior_auth = [claim.value("REF[G1]02")] if claim.value("REF[G1]02") else []
    # In coordination-of-benefits order (SBR01: P, S, T...), which Claim.insurance's
    # sequence conveys: a claim sent to the secondary payer lists the primary first.
    covered = sorted([(cov, None), *((e["coverage"], e) for e in other_insurance)],
                     key=lambda pair: pair[0].get("order") or len(_ORDER) + 1)
    insurance = [compact({"sequence": number, "focal": other is None,
                          "coverage": reference(c),
                          "preAuthRef": prior_auth if other is None else None,
                          "claimResponse": reference(other["claimResponse"])
                          if other and other["claimResponse"] else None})
                 for number, (c, other) in enumerate(covered, start=1)]
    subtype = None
    if variant == "I" and claim.value("CLM05-1"):
        inpatient = claim.value("CLM05-1")[-1:] in ("1", "2")
        subtype = concept(C4BB_SUBTYPE, "inpatient" if inpatient else "outpatient")
    total = xf.money(claim.value("CLM02"))
    resources.append(compact({
        **head,
        "status": "cancelled" if claim.value("CLM05-3") == "8" else "active",
        "type": concept(CLAIM_TYPE, claim_type),
        "subType": subtype,
        "use": "claim",
        "patient": reference(patient),
        "billablePeriod": billable_period(variant, claim, lines),
        "created": created,
        "insurer": reference(subscriber.payer),
        "provider": reference(provider),
        "priority": concept(PRIORITY, "normal"),
        "related": _related(claim, subscriber.scope),
        "facility": reference(facility) if facility else None,
        "careTeam": team.members,
        "supportingInfo": supporting,
        "diagnosis": diag.entries,
        "procedure": procedures(claim) if variant == "I" else [],
        "insurance": insurance,
        "accident": _accident(claim),
        "item": items,
        "total": total,
    }))
    return resources


def subscriber_of(message: X12Message, node: Node) -> Subscriber | None:
    """A 2000B's payer and subscriber, or None without a subscriber name (2010BA)."""
    member = node.first("2010BA")
    payer_node = next(iter(node.kids("2010BB")), None)
    member_nm1, payer_nm1 = name_of(member), name_of(payer_node)
    if member is None or member_nm1 is None or payer_node is None or payer_nm1 is None \
            or node.seg("SBR") is None:
        return None
    payer = xf.organization(payer_nm1, payer_node.segments, payer=True)
    scope = xf.payer_scope(message, payer_node.value("NM109") or payer_node.value("NM103"))
    return Subscriber(node, payer, xf.patient(member_nm1, member.segments, scope), scope)


def claims_of(tree: Node) -> list[tuple[Node, Node, Node | None, Node]]:
    """Every claim of a set with its billing provider, subscriber and patient levels
    (None when the patient is the subscriber), in the order sent; a claim loop read
    without its CLM (reported as IK3 3) is no claim."""
    out: list[tuple[Node, Node, Node | None, Node]] = []
    for billing in tree.kids("2000A"):
        for sub in billing.kids("2000B"):
            out += [(billing, sub, None, claim) for claim in sub.kids("2300")]
            for pat in sub.kids("2000C"):
                out += [(billing, sub, pat, claim) for claim in pat.kids("2300")]
    return [found for found in out if found[3].seg("CLM") is not None]
