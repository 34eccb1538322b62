"""X12 to FHIR building blocks every X12 mapping shares: dates (DTP, DTM), names (NM1,
and N1 read as one) as Patient, Organization or Practitioner, addresses (N3/N4),
demographics (DMG), contacts (PER), identifier systems, amounts and money (USD unless a
CUR says otherwise), and the set's timestamp. Code systems are in x12_codes.

Identifier systems (one rule, so a member or a provider reads the same from every set):
- NPI (NM108 XX): http://hl7.org/fhir/sid/us-npi;
- EIN (FI, and REF*EI): urn:oid:2.16.840.1.113883.4.4;
- a payer's own ids (member id NM108 MI, payer id PI, CMS plan id XV, ...):
  urn:conduit:id:x12:<who assigns it>, where who assigns it is the payer's id (the
  2100A NM109, else the interchange partner's ISA id): member ids are only unique within
  one payer;
- anything else: urn:conduit:id:x12:<qualifier>.

Ids are `maplib.fhir.resource_id` of the resource type, the scope "x12" and the
identifier, so the same member of the same payer is the same Patient from a 270, a 271,
an 834 or an 837.

Dates: D8 CCYYMMDD is a FHIR date, RD8 CCYYMMDD-CCYYMMDD a Period, DT CCYYMMDDHHMM a
dateTime without a zone (X12 carries none, so only the date is kept: a local time
without an offset is not a valid FHIR dateTime); an unreadable date is left out and the
mapping warns through its own rule, never fails the whole set.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.formats.x12.message import X12Message
from engine.formats.x12.tokens import Segment
from engine.maplib.fhir import compact, resource_id
from engine.maplib.x12_codes import MEMBER_TYPE, ORG_TYPE

NPI = "http://hl7.org/fhir/sid/us-npi"
EIN = "urn:oid:2.16.840.1.113883.4.4"
_SYSTEMS = {"XX": NPI, "FI": EIN, "24": EIN, "EI": EIN, "34": "http://hl7.org/fhir/sid/us-ssn"}
_OWN = {"MI", "PI", "XV", "II", "NI", "46", "SV", "PP", "ZZ", "1L", "1W", "6P"}
# DMG03 and INS/2100 gender codes (M, F, U) as FHIR administrative gender.
_GENDER = {"M": "male", "F": "female", "U": "unknown"}
# PER03/05/07 communication number qualifiers -> ContactPoint system and use.
PER_TELECOM: Mapping[str, tuple[str, str | None]] = {
    "TE": ("phone", None), "HP": ("phone", "home"), "WP": ("phone", "work"),
    "CP": ("phone", "mobile"), "BN": ("pager", None), "FX": ("fax", None),
    "EM": ("email", None)}


def x12_date(value: str) -> str | None:
    """CCYYMMDD (D8) as a FHIR date; None when it is not a real date."""
    value = value.strip()[:8]
    try:
        return datetime.datetime.strptime(value, "%Y%m%d").date().isoformat()
    except ValueError:
        return None


def x12_period(qualifier: str, value: str) -> dict[str, str] | None:
    """A DTP/DTM date as a Period: RD8 start-end, D8 (and DT's date) one day."""
    if qualifier == "RD8" and "-" in value:
        start, end = value.split("-", 1)
        return compact({"start": x12_date(start), "end": x12_date(end)}) or None
    day = x12_date(value)
    return {"start": day, "end": day} if day else None


def dated(dtp: Segment | None, element: str) -> dict[str, Any]:
    """A DTP as FHIR's `element`Date (D8, DT) or `element`Period (RD8), as in
    servicedDate/servicedPeriod; {} without the DTP or a real date."""
    period = x12_period(dtp.element(2), dtp.element(3)) if dtp is not None else None
    if dtp is None or period is None:
        return {}
    return {f"{element}Period": period} if dtp.element(2) == "RD8" else \
        {f"{element}Date": period["start"]}


def dtp(segments: Sequence[Segment], qualifier: str) -> dict[str, str] | None:
    """The Period of the first DTP with DTP01 = qualifier among `segments`."""
    for seg in segments:
        if seg.id == "DTP" and seg.element(1) == qualifier:
            return x12_period(seg.element(2), seg.element(3))
    return None


def amount(value: str) -> Decimal | None:
    """An X12 R (decimal) element as a Decimal with the digits sent; None when empty or
    not a number."""
    value = value.strip()
    if not value:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


def money(value: str, currency: str = "USD") -> dict[str, Any] | None:
    """An amount as Money: USD unless the set's CUR names another currency."""
    number = amount(value)
    return {"value": number, "currency": currency} if number is not None else None


def gender_of(code: str) -> str | None:
    """A DMG03 (or 834 member) gender code as FHIR administrative gender; None for a
    code outside M, F and U."""
    return _GENDER.get(code)


def as_nm1(n1: Segment) -> Segment:
    """An N1 (N102 name, N103/N104 id) read as an NM1 of a non-person, so the NM1
    builders make the same Organization from it as from an NM1 elsewhere."""
    elements = ["NM1", n1.element(1), "2", n1.element(2), "", "", "", "",
                n1.element(3), n1.element(4)]
    return Segment(elements, n1.delimiters)


def dtm_date(segment: Segment | None) -> str | None:
    """A DTM's date (DTM02, CCYYMMDD); None without the DTM or a real date."""
    return x12_date(segment.element(2)) if segment is not None else None


def telecom(per: Segment | None,
            kinds: Mapping[str, tuple[str, str | None]] = PER_TELECOM, *,
            extension: bool = False, strip: bool = True) -> list[dict[str, Any]]:
    """PER03..PER08 (qualifier and number pairs) as ContactPoints, of the qualifiers in
    `kinds`; with `extension`, an EX pair is the extension of the phone before it
    (written "number xEXT"); `strip` trims the numbers."""
    if per is None:
        return []
    out: list[dict[str, Any]] = []
    for start in (3, 5, 7):
        qualifier, value = per.element(start), per.element(start + 1)
        value = value.strip() if strip else value
        kind = kinds.get(qualifier)
        if kind and value:
            out.append(compact({"system": kind[0], "value": value, "use": kind[1]}))
        elif extension and qualifier == "EX" and value and out and \
                out[-1]["system"] == "phone":
            out[-1]["value"] += f" x{value}"
    return out


def payer_scope(message: X12Message, payer_id: str = "") -> str:
    """Who assigns member ids in this set: the payer's id given, else the interchange
    partner that is a payer (ISA06 of what the payer sends, ISA08 of what it receives)."""
    return payer_id or message.isa.element(6).strip()


def identifier(qualifier: str, value: str, scope: str = "") -> dict[str, Any] | None:
    """NM108/NM109 (or REF01/REF02) as an Identifier (see the module docstring)."""
    value = value.strip()
    if not value:
        return None
    system = _SYSTEMS.get(qualifier)
    if system is None:
        system = f"urn:conduit:id:x12:{scope}" if qualifier in _OWN and scope else \
            f"urn:conduit:id:x12:{qualifier or 'unknown'}"
    return {"system": system, "value": value}


def human_name(nm1: Segment) -> dict[str, Any]:
    """NM103 last, NM104 first, NM105 middle, NM106 prefix, NM107 suffix."""
    given = [g for g in (nm1.element(4), nm1.element(5)) if g]
    return compact({"family": nm1.element(3), "given": given,
                    "prefix": [nm1.element(6)] if nm1.element(6) else [],
                    "suffix": [nm1.element(7)] if nm1.element(7) else []})


def address(segments: Sequence[Segment]) -> dict[str, Any] | None:
    """N3 (lines) and N4 (city, state, postal code, country) among `segments`."""
    n3 = next((s for s in segments if s.id == "N3"), None)
    n4 = next((s for s in segments if s.id == "N4"), None)
    if n3 is None and n4 is None:
        return None
    lines = [x for x in (n3.element(1), n3.element(2)) if x] if n3 is not None else []
    out = compact({"line": lines,
                   "city": n4.element(1) if n4 is not None else "",
                   "state": n4.element(2) if n4 is not None else "",
                   "postalCode": n4.element(3) if n4 is not None else "",
                   "country": n4.element(4) if n4 is not None else ""})
    return out or None


def patient(nm1: Segment, segments: Sequence[Segment], scope: str) -> dict[str, Any]:
    """A Patient from a person's name loop: NM1 (name, member id), N3/N4, DMG (birth
    date, gender). Its id comes from the member id, else from name and birth date."""
    ident = identifier(nm1.element(8), nm1.element(9), scope)
    dmg = next((s for s in segments if s.id == "DMG"), None)
    birth = x12_date(dmg.element(2)) if dmg is not None and dmg.element(1) == "D8" else None
    gender = gender_of(dmg.element(3)) if dmg is not None else None
    key = ident or {"system": "urn:conduit:x12:demographics",
                    "value": "|".join((nm1.element(3), nm1.element(4), birth or ""))}
    addr = address(segments)
    return compact({
        "resourceType": "Patient",
        "id": resource_id("Patient", "x12", key),
        "identifier": [_member(ident)] if ident else [],
        "name": [human_name(nm1)] if nm1.element(3) else [],
        "birthDate": birth,
        "gender": gender,
        "address": [addr] if addr else [],
    })


def _member(ident: dict[str, Any]) -> dict[str, Any]:
    if ident["system"].startswith("urn:conduit:id:x12:"):
        return {**ident, "type": {"coding": [{
            "system": MEMBER_TYPE, "code": "MB", "display": "Member Number"}]}}
    return ident


def organization(nm1: Segment, segments: Sequence[Segment] = (), *,
                 payer: bool = False) -> dict[str, Any]:
    """An Organization from NM1 (NM103 name, NM108/NM109 id): a payer (type pay) or a
    provider organization (type prov)."""
    ident = identifier(nm1.element(8), nm1.element(9))
    key = ident or {"system": "urn:conduit:x12:name", "value": nm1.element(3)}
    addr = address(list(segments))
    kind = "pay" if payer else "prov"
    return compact({
        "resourceType": "Organization",
        "id": resource_id("Organization", "x12", key),
        "identifier": [ident] if ident else [],
        "type": [{"coding": [{"system": ORG_TYPE, "code": kind}]}],
        "name": nm1.element(3),
        "address": [addr] if addr else [],
    })


def practitioner(nm1: Segment, segments: Sequence[Segment] = ()) -> dict[str, Any]:
    """A Practitioner from a person NM1 (NM102 = 1), by NPI when it has one."""
    ident = identifier(nm1.element(8), nm1.element(9))
    key = ident or {"system": "urn:conduit:x12:name",
                    "value": "|".join((nm1.element(3), nm1.element(4)))}
    addr = address(list(segments))
    return compact({
        "resourceType": "Practitioner",
        "id": resource_id("Practitioner", "x12", key),
        "identifier": [ident] if ident else [],
        "name": [human_name(nm1)] if nm1.element(3) else [],
        "address": [addr] if addr else [],
    })


def party(nm1: Segment, segments: Sequence[Segment] = (), *,
          payer: bool = False) -> dict[str, Any]:
    """NM1 as a Practitioner (NM102 1, a person) or an Organization (2, or unsaid)."""
    if nm1.element(2) == "1" and not payer:
        return practitioner(nm1, segments)
    return organization(nm1, segments, payer=payer)


def set_timestamp(message: X12Message) -> str | None:
    """BHT04/BHT05 (else GS04/GS05) as a FHIR date: X12 times carry no zone, so only the
    date is kept (a Bundle.timestamp needs a zone and is left out)."""
    bht = message.find("BHT")
    if bht is not None and x12_date(bht.element(4)):
        return x12_date(bht.element(4))
    return x12_date(message.gs.element(4))
