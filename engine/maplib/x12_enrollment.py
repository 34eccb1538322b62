"""834 enrollment as FHIR R4: the plan sponsor and payer Organizations, a Patient per
member (INS with its 2100A name loop) and a Coverage per health coverage (HD).

Each builder reads one loop of the set's structure (sets/x834.py). What cannot be read
(a date that is not a date, a code outside the lists) is left out, never failing the
file; the mapping's docstring lists the choices a receiver will notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.formats.x12.structure import Node
from engine.formats.x12.tokens import Segment
from engine.maplib import x12_fhir as xf
from engine.maplib.fhir import compact, reference, resource_id
from engine.maplib.x12_codes import (
    COVERAGE_CLASS,
    INDIVIDUAL_RELATIONSHIPS,
    MEMBER_TYPE,
    ORG_TYPE,
    RELATIONSHIP,
    concept,
)

MARITAL = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
# HD03, an X12 code list without a published URI.
INSURANCE_LINE = "urn:conduit:code:x12:insurance-line"

LINES = {"AG": "Preventative care/wellness", "AH": "24 hour care",
         "AJ": "Medicare risk", "AK": "Mental health", "DCP": "Dental capitation",
         "DEN": "Dental", "EPO": "Exclusive provider organization", "FAC": "Facility",
         "HE": "Hearing", "HLT": "Health", "HMO": "Health maintenance organization",
         "LTC": "Long-term care", "LTD": "Long-term disability", "MM": "Major medical",
         "MOD": "Mail order drug", "PDG": "Prescription drug", "POS": "Point of service",
         "PPO": "Preferred provider organization", "PRA": "Practitioners",
         "STD": "Short-term disability", "UR": "Utilization review", "VIS": "Vision"}
# DMG04 -> v3 marital status.
MARITAL_STATUS = {"M": "M", "D": "D", "W": "W", "X": "L", "S": "L", "B": "T", "I": "S",
                  "U": "U", "R": "UNK"}
ENDED = ("024", "002")  # termination/cancellation, deletion


@dataclass(frozen=True)
class Parties:
    """The file's sponsor, payer and the scope of member ids (the payer's id)."""

    sponsor: dict[str, Any] | None
    payer: dict[str, Any]
    scope: str


def organization(node: Node, kind: str) -> dict[str, Any]:
    """1000A or 1000B N1 as an Organization: N102 name, N103/N104 its id (FI tax id, XV
    CMS plan id, 94 code assigned by the sender), of organization type `kind`."""
    org = xf.organization(xf.as_nm1(node.segments[0]), node.segments, payer=kind == "pay")
    return {**org, "type": [concept(ORG_TYPE, kind)]}


def member_refs(member: Node) -> dict[str, str]:
    """The member level's REF ids by qualifier (the first of each)."""
    out: dict[str, str] = {}
    for ref in member.segs("REF"):
        if ref.element(2).strip():
            out.setdefault(ref.element(1), ref.element(2).strip())
    return out


def is_subscriber(member: Node) -> bool:
    return member.segments[0].element(1) == "Y"


def member_key(member: Node, name: Node | None, scope: str) -> dict[str, str]:
    """What a member's Patient id comes from. A subscriber: its subscriber number
    (REF*0F) as a member id of the payer, the key 270/271/837 give the same member. A
    dependent: its own id (NM109), else its client/member REF (23, 17, ZZ), else the
    subscriber number with its name and birth date."""
    refs = member_refs(member)
    nm1 = name.segments[0] if name is not None else None
    if is_subscriber(member) and refs.get("0F"):
        return xf.identifier("MI", refs["0F"], scope) or {}
    if nm1 is not None and nm1.element(9).strip():
        return xf.identifier(nm1.element(8), nm1.element(9), scope) or {}
    for qualifier in ("23", "17", "ZZ"):
        if refs.get(qualifier):
            return xf.identifier(qualifier, refs[qualifier], scope) or {}
    birth = ""
    if name is not None and (dmg := name.seg("DMG")) is not None:
        birth = dmg.element(2)
    family = nm1.element(3) if nm1 is not None else ""
    given = nm1.element(4) if nm1 is not None else ""
    return {"system": f"urn:conduit:x12:dependent:{scope}",
            "value": "|".join((refs.get("0F", ""), family, given, birth))}


def patient(member: Node, scope: str) -> dict[str, Any]:
    """A member as a Patient: name, birth date, gender and home address (2100A), the
    mailing address (2100C), phone and email (PER), marital status (DMG04), death
    (INS12), and its ids: NM109, the subscriber number for a subscriber, the member
    level's other REF ids."""
    name = next(iter(member.kids("2100A")), None)
    refs = member_refs(member)
    nm1 = name.segments[0] if name is not None else Segment(
        ["NM1", "IL", "1"], member.segments[0].delimiters)
    base = xf.patient(nm1, name.segments if name is not None else [], scope)
    idents: list[dict[str, Any]] = []
    own = xf.identifier(nm1.element(8), nm1.element(9), scope)
    if own:
        idents.append(base["identifier"][0] if base.get("identifier") else own)
    subscriber_id = xf.identifier("MI", refs.get("0F", ""), scope)
    if is_subscriber(member) and subscriber_id:
        idents.append({**subscriber_id, "type": concept(MEMBER_TYPE, "MB", "Member Number")})
    for qualifier, value in refs.items():
        if qualifier not in ("0F", "1L", "38") and (ident := xf.identifier(qualifier, value)):
            idents.append(ident)
    addresses = list(base.get("address", []))
    mailing = next(iter(member.kids("2100C")), None)
    if mailing is not None and (postal := xf.address(mailing.segments)):
        addresses.append({**postal, "type": "postal"})
    dmg = name.seg("DMG") if name is not None else None
    marital = MARITAL_STATUS.get(dmg.element(4)) if dmg is not None else None
    ins = member.segments[0]
    died = xf.x12_date(ins.element(12)) if ins.element(11) == "D8" else None
    deduped = []
    for ident in idents:
        if ident not in deduped:
            deduped.append(ident)
    return compact({
        **base,
        "id": resource_id("Patient", "x12", member_key(member, name, scope)),
        "identifier": deduped,
        "telecom": xf.telecom(name.seg("PER") if name is not None else None),
        "address": addresses,
        "maritalStatus": concept(MARITAL, marital) if marital else None,
        "deceasedDateTime": died,
    })


def status(coverage: Node, member: Node) -> str:
    """cancelled when HD01 or INS03 terminates or deletes (024, 002), else active."""
    codes = (coverage.segments[0].element(1), member.segments[0].element(3))
    return "cancelled" if any(c in ENDED for c in codes) else "active"


def period(coverage: Node, member: Node) -> dict[str, str] | None:
    """Benefit begin/end (DTP*348/349), else the member's eligibility begin/end
    (DTP*356/357)."""
    start = xf.dtp(coverage.segments, "348") or xf.dtp(member.segments, "356")
    end = xf.dtp(coverage.segments, "349") or xf.dtp(member.segments, "357")
    out = compact({"start": start["start"] if start else None,
                   "end": end["end"] if end else None})
    return out or None


def coverage(coverage_node: Node, member: Node, rid: str, beneficiary: dict[str, Any],
             subscriber: dict[str, Any] | None, parties: Parties,
             group_default: str = "") -> dict[str, Any]:
    """One health coverage (2300) of a member as a Coverage; `group_default` is the
    subscriber's group number (REF*1L), which dependents' records often leave out."""
    hd = coverage_node.segments[0]
    line = hd.element(3).strip()
    refs = member_refs(member)
    group = (coverage_node.value("REF[1L]02").strip() or refs.get("1L", "")
             or group_default)
    classes = [compact({"type": concept(COVERAGE_CLASS, "plan"), "value": hd.element(4).strip()}),
               compact({"type": concept(COVERAGE_CLASS, "group"), "value": group})]
    relationship = INDIVIDUAL_RELATIONSHIPS.get(member.segments[0].element(2).strip(), "other")
    return compact({
        "resourceType": "Coverage",
        "id": rid,
        "status": status(coverage_node, member),
        "type": concept(INSURANCE_LINE, line, LINES.get(line, "")) if line else None,
        "policyHolder": reference(parties.sponsor) if parties.sponsor else None,
        "subscriber": reference(subscriber) if subscriber else None,
        "subscriberId": refs.get("0F"),
        "beneficiary": reference(beneficiary),
        "relationship": concept(RELATIONSHIP, relationship),
        "period": period(coverage_node, member),
        "payor": [reference(parties.payer)],
        "class": [c for c in classes if "value" in c],
    })


def coverage_key(member_patient: dict[str, Any], coverage_node: Node, scope: str
                 ) -> dict[str, str]:
    """A Coverage's id comes from the member, the payer and the insurance line (HD03),
    so an add, its changes and its termination all update the same Coverage."""
    return {"system": f"urn:conduit:id:x12:{scope}",
            "value": f"{member_patient['id']}|{coverage_node.segments[0].element(3)}"}
