"""Eligibility (270/271) building blocks the three eligibility mappings share: the code
lists they read and write, trace numbers as identifiers, procedure codes both ways, the
dependent's relationship, and the parts of a 270 and a 271 read alike (the payer, provider,
subscriber and dependent levels, the member id, coverage classes from REF).

Code systems:
- service type codes (EQ01, EB03): https://x12.org/codes/service-type-codes, the code
  list X12 publishes under that address;
- X12's own element code lists (EB01, EB02, EB06, AAA03, AAA04, EB04, EB09, which have no
  published URI): urn:conduit:code:x12:<data element number> (1390, 1207, 615, 901,
  889, 1336, 673), with the code's name as display where this module knows it;
- procedure codes (EQ02, EB13), in x12_codes' systems: HC as CPT when it starts with a
  digit, else HCPCS; AD as CDT; N4 as NDC; another qualifier as
  urn:conduit:code:x12:235:<qualifier>.

Trace numbers: a TRN (TRN02 the number, TRN03 who assigned it) is the Identifier
{system urn:conduit:id:x12:trn:<TRN03>, value TRN02}. The 271 echoes the 270's TRN, so
a response names the same identifier its request was given. Without a TRN, BHT03 (the
submitter's reference, which a 271 also echoes) stands in:
urn:conduit:id:x12:bht.
"""

from __future__ import annotations

from typing import Any

from engine.formats.x12.message import X12Message
from engine.formats.x12.structure import Node
from engine.formats.x12.tokens import Segment
from engine.maplib import x12_fhir as xf
from engine.maplib.fhir import compact
from engine.maplib.x12_codes import (
    CDT,
    COVERAGE_CLASS,
    CPT,
    HCPCS,
    NDC,
    RELATIONSHIP,
    relationships,
)

SERVICE_TYPES = "https://x12.org/codes/service-type-codes"
TRACE = "urn:conduit:id:x12:trn"
BHT_TRACE = "urn:conduit:id:x12:bht"
HEALTH_PLAN = "30"  # health benefit plan coverage: the general inquiry

# Service type codes a mapping names (the list has some 200; a code not here is kept
# without a display).
SERVICE_TYPE_NAMES = {
    "1": "Medical Care", "2": "Surgical", "3": "Consultation", "4": "Diagnostic X-Ray",
    "5": "Diagnostic Lab", "6": "Radiation Therapy", "7": "Anesthesia",
    "12": "Durable Medical Equipment Purchase", "18": "Durable Medical Equipment Rental",
    "23": "Diagnostic Dental", "30": "Health Benefit Plan Coverage",
    "33": "Chiropractic", "35": "Dental Care", "42": "Home Health Care", "45": "Hospice",
    "47": "Hospital", "48": "Hospital - Inpatient", "50": "Hospital - Outpatient",
    "51": "Hospital - Emergency Accident", "52": "Hospital - Emergency Medical",
    "53": "Hospital - Ambulatory Surgical", "62": "MRI/CAT Scan", "68": "Well Baby Care",
    "73": "Diagnostic Medical", "76": "Dialysis", "78": "Chemotherapy",
    "80": "Immunizations", "81": "Routine Physical", "86": "Emergency Services",
    "88": "Pharmacy", "93": "Podiatry", "98": "Professional (Physician) Visit - Office",
    "A4": "Psychiatric", "A6": "Psychotherapy", "AD": "Occupational Therapy",
    "AE": "Physical Medicine", "AF": "Speech Therapy", "AG": "Skilled Nursing Care",
    "AI": "Substance Abuse", "AL": "Vision (Optometry)", "BZ": "Physician Visit - Office: Sick",
    "MH": "Mental Health", "PT": "Physical Therapy", "UC": "Urgent Care",
}

# EB01, eligibility or benefit information (data element 1390).
BENEFIT_CODES = {
    "1": "Active Coverage", "2": "Active - Full Risk Capitation",
    "3": "Active - Services Capitated",
    "4": "Active - Services Capitated to Primary Care Physician",
    "5": "Active - Pending Investigation", "6": "Inactive",
    "7": "Inactive - Pending Eligibility Update", "8": "Inactive - Pending Investigation",
    "A": "Co-Insurance", "B": "Co-Payment", "C": "Deductible", "CB": "Coverage Basis",
    "D": "Benefit Description", "E": "Exclusions", "F": "Limitations",
    "G": "Out of Pocket (Stop Loss)", "H": "Unlimited", "I": "Non-Covered",
    "J": "Cost Containment", "K": "Reserve", "L": "Primary Care Provider",
    "M": "Pre-existing Condition", "MC": "Managed Care Coordinator",
    "N": "Services Restricted to Following Provider", "O": "Not Deemed a Medical Necessity",
    "P": "Benefit Disclaimer", "Q": "Second Surgical Opinion Required",
    "R": "Other or Additional Payor", "S": "Prior Year(s) History",
    "T": "Card(s) Reported Lost/Stolen",
    "U": "Contact Following Entity for Eligibility or Benefit Information",
    "V": "Cannot Process", "W": "Other Source of Data", "X": "Health Care Facility",
    "Y": "Spend Down",
}
ACTIVE = frozenset({"1", "2", "3", "4", "5"})
INACTIVE = frozenset({"6", "7", "8"})

# EB02, coverage level (1207).
COVERAGE_LEVELS = {
    "CHD": "Children Only", "DEP": "Dependents Only", "ECH": "Employee and Children",
    "EMP": "Employee Only", "ESP": "Employee and Spouse", "FAM": "Family",
    "IND": "Individual", "SPC": "Spouse and Children", "SPO": "Spouse Only",
}
# EB06, time period qualifier (615).
TIME_PERIODS = {
    "6": "Hour", "7": "Day", "13": "24 Hours", "21": "Years", "22": "Service Year",
    "23": "Calendar Year", "24": "Year to Date", "25": "Contract", "26": "Episode",
    "27": "Visit", "28": "Outlier", "29": "Remaining", "30": "Exceeded",
    "31": "Not Exceeded", "32": "Lifetime", "33": "Lifetime Remaining",
    "34": "Month", "35": "Week", "36": "Admission",
}
# AAA03, reject reason (901), and AAA04, follow-up action (889).
REJECT_REASONS = {
    "04": "Authorized Quantity Exceeded", "15": "Required application data missing",
    "33": "Input Errors", "41": "Authorization/Access Restrictions",
    "42": "Unable to Respond at Current Time", "43": "Invalid/Missing Provider Identification",
    "44": "Invalid/Missing Provider Name", "45": "Invalid/Missing Provider Specialty",
    "46": "Invalid/Missing Provider Phone Number", "47": "Invalid/Missing Provider State",
    "48": "Invalid/Missing Referring Provider Identification Number",
    "49": "Provider is Not Primary Care Physician", "50": "Provider Ineligible for Inquiries",
    "51": "Provider Not on File", "52": "Service Dates Not Within Provider Plan Enrollment",
    "53": "Inquired Benefit Inconsistent with Provider Type",
    "54": "Inappropriate Product/Service ID Qualifier", "55": "Inappropriate Product/Service ID",
    "56": "Inappropriate Date", "57": "Invalid/Missing Date(s) of Service",
    "58": "Invalid/Missing Date-of-Birth", "60": "Date of Birth Follows Date(s) of Service",
    "61": "Date of Death Precedes Date(s) of Service",
    "62": "Date of Service Not Within Allowable Inquiry Period",
    "63": "Date of Service in Future", "64": "Invalid/Missing Patient ID",
    "65": "Invalid/Missing Patient Name", "66": "Invalid/Missing Patient Gender Code",
    "67": "Patient Not Found", "68": "Duplicate Patient ID Number",
    "69": "Inconsistent with Patient's Age", "70": "Inconsistent with Patient's Gender",
    "71": "Patient Birth Date Does Not Match That for the Patient on the Database",
    "72": "Invalid/Missing Subscriber/Insured ID", "73": "Invalid/Missing Subscriber/Insured Name",
    "74": "Invalid/Missing Subscriber/Insured Gender Code",
    "75": "Subscriber/Insured Not Found", "76": "Duplicate Subscriber/Insured ID Number",
    "77": "Subscriber Found, Patient Not Found",
    "78": "Subscriber/Insured Not in Group/Plan Identified",
    "79": "Invalid Participant Identification",
    "80": "No Response received - Transaction Terminated",
    "97": "Invalid or Missing Provider Address", "T4": "Payer Name or Identifier Missing",
}
FOLLOW_UPS = {
    "C": "Please Correct and Resubmit", "N": "Resubmission Not Allowed",
    "P": "Please Resubmit Original Transaction", "R": "Resubmission Allowed",
    "S": "Do Not Resubmit; Inquiry Initiated to a Third Party",
    "W": "Please Wait 30 Days and Resubmit", "X": "Please Wait 10 Days and Resubmit",
    "Y": "Do Not Resubmit; We Will Hand Deliver the Response",
}
# REF01 of a subscriber or dependent that names a Coverage.class (plan, group).
COVERAGE_CLASSES = {"18": "plan", "6P": "group", "1L": "group"}
# NM108 of a subscriber whose NM109 is its member id.
_MEMBER_QUALIFIERS = ("MI", "II")
# INS02 of a dependent (1069) and FHIR's subscriber relationship, both ways: a 270/271
# dependent is a spouse, a child or other (34).
_INS_RELATIONSHIP = relationships("01", "19", "34")
_RELATIONSHIP_INS = {"spouse": "01", "child": "19", "parent": "34", "common": "34",
                     "other": "34", "injured": "34"}


def x12_system(element: str) -> str:
    """The code system of one of X12's own element code lists."""
    return f"urn:conduit:code:x12:{element}"


def coding(system: str, code: str, names: dict[str, str] | None = None) -> dict[str, str]:
    """A Coding with its display from `names`; an empty code is kept (x12_codes.coding
    would drop it)."""
    out = {"system": system, "code": code}
    display = (names or {}).get(code)
    if display:
        out["display"] = display
    return out


def service_type(code: str) -> dict[str, Any]:
    """A service type code as a CodeableConcept."""
    return {"coding": [coding(SERVICE_TYPES, code, SERVICE_TYPE_NAMES)]}


def repetitions(segment: Segment, index: int) -> list[str]:
    """Every non-empty repetition of an element (EQ01 and EB03 repeat)."""
    if index >= len(segment.elements):
        return []
    raw, separator = segment.elements[index], segment.delimiters.repetition
    return [value for value in (raw.split(separator) if separator else [raw]) if value]


def trace_identifier(trn: Segment) -> dict[str, str] | None:
    """A TRN as an Identifier (see the module docstring)."""
    value = trn.element(2).strip()
    if not value:
        return None
    origin = trn.element(3).strip()
    return {"system": f"{TRACE}:{origin}" if origin else TRACE, "value": value}


def trace_origin(identifier: dict[str, Any]) -> str:
    """TRN03 back from an identifier this module made; "" for another system."""
    system = str(identifier.get("system", ""))
    return system[len(TRACE) + 1:] if system.startswith(f"{TRACE}:") else ""


def traces(node: Node, trace_type: str = "") -> list[dict[str, str]]:
    """The trace identifiers of a person's level (TRN01 = `trace_type` when given)."""
    found = [trace_identifier(trn) for trn in node.segs("TRN")
             if not trace_type or trn.element(1) == trace_type]
    return [t for t in found if t is not None]


def bht_trace(reference: str) -> dict[str, str] | None:
    return {"system": BHT_TRACE, "value": reference} if reference.strip() else None


def procedure(composite: Segment, index: int) -> dict[str, Any] | None:
    """EQ02/EB13 (qualifier:code:modifiers) as a CodeableConcept; None when empty."""
    qualifier = composite.element(index, 1)
    code = composite.element(index, 2)
    if not code:
        return None
    if qualifier == "HC":
        system = CPT if code[:1].isdecimal() else HCPCS
    else:
        system = {"AD": CDT, "N4": NDC}.get(qualifier, f"{x12_system('235')}:{qualifier}")
    return {"coding": [{"system": system, "code": code}]}


def procedure_qualifier(system: str) -> str | None:
    """The EQ02 qualifier of a procedure code system this module writes; None when the
    system has no X12 qualifier here."""
    if system in (CPT, HCPCS):
        return "HC"
    if system == CDT:
        return "AD"
    if system == NDC:
        return "N4"
    prefix = f"{x12_system('235')}:"
    return system[len(prefix):] if system.startswith(prefix) else None


def relationship(ins: Segment | None, dependent: bool) -> dict[str, Any] | None:
    """Coverage.relationship: self for the subscriber, the INS02 relationship of a
    dependent (none when it is not said)."""
    if not dependent:
        return {"coding": [{"system": RELATIONSHIP, "code": "self"}]}
    code = _INS_RELATIONSHIP.get(ins.element(2)) if ins is not None else None
    return {"coding": [{"system": RELATIONSHIP, "code": code}]} if code else None


def ins_relationship(code: str) -> str | None:
    """INS02 of a FHIR subscriber relationship other than self."""
    return _RELATIONSHIP_INS.get(code)


def payer_of(message: X12Message, source: Node) -> tuple[dict[str, Any], str] | None:
    """An information source (2000A) as its payer Organization (2100A) and the scope of
    its member ids; None when the loop has no name."""
    loop = source.first("2100A")
    nm1 = loop.seg("NM1") if loop is not None else None
    if loop is None or nm1 is None:
        return None
    return (xf.organization(nm1, loop.segments, payer=True),
            xf.payer_scope(message, nm1.element(9)))


def provider_of(receiver: Node) -> dict[str, Any] | None:
    """An information receiver (2000B) as a Practitioner or Organization (2100B)."""
    loop = receiver.first("2100B")
    nm1 = loop.seg("NM1") if loop is not None else None
    return xf.party(nm1, loop.segments) if nm1 is not None and loop is not None else None


def person_of(level: Node, loop_id: str, scope: str) -> tuple[Node, dict[str, Any]] | None:
    """A level's subscriber (2100C) or dependent (2100D) name loop and its Patient; None
    when the loop or its NM1 is missing."""
    loop = level.first(loop_id)
    nm1 = loop.seg("NM1") if loop is not None else None
    if loop is None or nm1 is None:
        return None
    return loop, xf.patient(nm1, loop.segments, scope)


def member_id(subscriber_loop: Node) -> str:
    """The subscriber's member id (2100C NM109 qualified MI or II), else ""."""
    nm1 = subscriber_loop.seg("NM1")
    return nm1.element(9) if nm1 is not None and nm1.element(8) in _MEMBER_QUALIFIERS \
        else ""


def coverage_class(kind: str, value: str, name: str) -> dict[str, Any]:
    """A Coverage.class of type `kind` (plan, group)."""
    return compact({"type": {"coding": [{"system": COVERAGE_CLASS, "code": kind}]},
                    "value": value, "name": name})
