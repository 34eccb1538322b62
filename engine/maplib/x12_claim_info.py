"""837 claim facts that FHIR R4 Claim keeps in supportingInfo: claim dates beyond the
billable period, PWK attachments, the CN1 contract, AMT*F5 (what the patient paid) and
the 837I occurrence, occurrence span, value and condition codes (HI BH/BE/BG/BI).

Categories are claiminformationcategory's where it names the fact (onset, hospitalized,
employmentimpacted, attachment), else its catch-all `info` with a code saying what the
fact is: the X12 date qualifier, the NUBC code, CARIN's adjudication code
`paidbypatient`. Unreadable dates and amounts are left out, never failing the claim.
"""

from __future__ import annotations

from typing import Any

from engine.formats.x12.structure import Node
from engine.maplib import x12_fhir as xf
from engine.maplib.fhir import compact
from engine.maplib.x12_codes import concept
from engine.maplib.x12_remit import C4BB_ADJUDICATION

INFO_CATEGORY = "http://terminology.hl7.org/CodeSystem/claiminformationcategory"
DATE_QUALIFIER = "urn:conduit:code:x12:date-qualifier"
REPORT_TYPE = "urn:conduit:code:x12:attachment-report-type"
TRANSMISSION = "urn:conduit:code:x12:attachment-transmission"
CONTRACT_TYPE = "urn:conduit:code:x12:contract-type"
NUBC = "https://www.nubc.org/CodeSystem/"
# HI qualifiers of the 837I's UB-04 codes -> the NUBC code system and whether the
# composite carries a date (D8), a span (RD8) or an amount.
NUBC_CODES = {"BH": ("OccurrenceCodes", "date"), "BI": ("OccurrenceSpanCodes", "span"),
              "BE": ("ValueCodes", "amount"), "BG": ("ConditionCodes", "")}
# Claim DTP qualifiers read elsewhere: billablePeriod (434, 472), accident (439); the
# 837I's 435 is admissionperiod and its 096 a discharge hour, not a date.
_READ_ELSEWHERE = {"P": {"434", "472", "439"}, "I": {"434", "472", "439", "435", "096"},
                   "D": {"434", "472", "439"}}
# Dates a clinician or payer reads by name (displays are ours, not a guide's).
_DATES = {"431": "Onset of current illness or symptom", "454": "Initial treatment",
          "304": "Last seen", "453": "Acute manifestation", "438": "Last menstrual period",
          "455": "Last X-ray", "471": "Hearing and vision prescription",
          "360": "Disability from", "361": "Disability to", "297": "Last worked",
          "296": "Authorized return to work", "090": "Assumed care",
          "091": "Relinquished care", "444": "First visit or consultation",
          "050": "Repricer received", "452": "Appliance placement",
          "441": "Prior placement", "446": "Replacement", "196": "Treatment start",
          "198": "Treatment completion", "435": "Admission", "096": "Discharge"}
# Pairs that make one period under claiminformationcategory (start, end).
_SPANS = {"hospitalized": ("435", "096"), "employmentimpacted": ("297", "296")}


def _date_of(node: Node, qualifier: str) -> dict[str, str] | None:
    seg = node.seg("DTP", qualifier)
    if seg is None or seg.element(2) not in ("D8", "RD8"):
        return None
    return xf.x12_period(seg.element(2), seg.element(3))


def _timing(period: dict[str, str]) -> dict[str, Any]:
    if period.get("start") and period.get("start") == period.get("end"):
        return {"timingDate": period["start"]}
    return {"timingPeriod": period}


def _usd(value: str) -> dict[str, Any] | None:
    number = xf.amount(value)
    return {"value": number, "unit": "USD", "system": "urn:iso:std:iso:4217",
            "code": "USD"} if number is not None else None


def dates(variant: str, claim: Node) -> list[dict[str, Any]]:
    """Claim DTPs (category, code, timing) in the order sent, except those read
    elsewhere: 431 is `onset`, 435/096 (837P) `hospitalized`, 297/296
    `employmentimpacted`, the others `info` coded by their qualifier."""
    out: list[dict[str, Any]] = []
    spanned: set[str] = set()
    for seg in claim.segs("DTP"):
        qualifier = seg.element(1)
        if qualifier in _READ_ELSEWHERE[variant] or qualifier in spanned:
            continue
        span = next((k for k, pair in _SPANS.items() if qualifier in pair), None)
        if span and variant != "I":
            start, end = _date_of(claim, _SPANS[span][0]), _date_of(claim, _SPANS[span][1])
            spanned.update(_SPANS[span])
            period = compact({"start": start["start"] if start else None,
                              "end": (end.get("end") or end.get("start")) if end else None})
            if period:
                out.append({"category": concept(INFO_CATEGORY, span),
                            "timingPeriod": period})
            continue
        period = _date_of(claim, qualifier)
        if period is None:
            continue
        category = "onset" if qualifier == "431" else "info"
        out.append({"category": concept(INFO_CATEGORY, category),
                    "code": concept(DATE_QUALIFIER, qualifier, _DATES.get(qualifier, "")),
                    **_timing(period)})
    return out


def attachments(node: Node) -> list[dict[str, Any]]:
    """PWK: the report type as code, how it is sent (PWK02: mail, fax, electronically,
    already sent...) as reason, its control number (PWK06) as the referenced document."""
    out = []
    for pwk in node.segs("PWK"):
        if not pwk.element(1):
            continue
        control = pwk.element(6).strip()
        out.append(compact({
            "category": concept(INFO_CATEGORY, "attachment"),
            "code": concept(REPORT_TYPE, pwk.element(1)),
            "valueReference": {"identifier": {"system": "urn:conduit:id:x12:attachment",
                                              "value": control}} if control else None,
            "reason": concept(TRANSMISSION, pwk.element(2)) if pwk.element(2) else None}))
    return out


def contract(node: Node) -> list[dict[str, Any]]:
    """CN1: the contract type as code (its contract code CN104 as the code's text), the
    contract amount (CN102), else percent (CN103), as value."""
    cn1 = node.seg("CN1")
    if cn1 is None or not cn1.element(1):
        return []
    code = concept(CONTRACT_TYPE, cn1.element(1))
    if cn1.element(4):
        code["text"] = cn1.element(4)
    percent = xf.amount(cn1.element(3))
    value = _usd(cn1.element(2)) or ({"value": percent, "unit": "%", "system":
                                      "http://unitsofmeasure.org", "code": "%"}
                                     if percent is not None else None)
    return [compact({"category": concept(INFO_CATEGORY, "info"), "code": code,
                     "valueQuantity": value})]


def patient_paid(claim: Node) -> list[dict[str, Any]]:
    """AMT*F5, what the patient has paid on the claim (R4 Claim has no patientPaid)."""
    value = _usd(claim.value("AMT[F5]02"))
    return [{"category": concept(INFO_CATEGORY, "info"),
             "code": concept(C4BB_ADJUDICATION, "paidbypatient"),
             "valueQuantity": value}] if value else []


def ub04_codes(claim: Node) -> list[dict[str, Any]]:
    """HI BH occurrence (with its date), BI occurrence span (with its period), BE value
    (with its amount) and BG condition codes, in the order sent, each with its NUBC code
    system."""
    out = []
    for seg in claim.segs("HI"):
        for index in range(1, len(seg) + 1):
            qualifier, code = seg.element(index, 1), seg.element(index, 2).strip()
            if qualifier not in NUBC_CODES or not code:
                continue
            system, kind = NUBC_CODES[qualifier]
            entry: dict[str, Any] = {"category": concept(INFO_CATEGORY, "info"),
                                     "code": concept(NUBC + system, code)}
            if kind in ("date", "span") and seg.element(index, 3) in ("D8", "RD8"):
                period = xf.x12_period(seg.element(index, 3), seg.element(index, 4))
                entry |= _timing(period) if period else {}
            elif kind == "amount" and (value := xf.amount(seg.element(index, 5))) is not None:
                # a value code's number is money for most codes, a count for some
                # (covered days): kept without a unit rather than guessed.
                entry["valueQuantity"] = {"value": value}
            out.append(entry)
    return out
