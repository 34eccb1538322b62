"""Prior authorization (278) to and from FHIR in the Da Vinci PAS shape: the code systems
and extensions both directions share, so a code written one way reads back the same.

X12 codes are written with the X12 code system of their element, as PAS does
(https://codesystem.x12.org/005010/<element number>): UM01 request category 1525, UM02
certification type 1322, UM03 service type 1365, UM06 level of service 1338, HCR01
action 306, AAA03 reject reason 901, AAA04 follow-up action 889, NM101 entity 98, HSD01
quantity qualifier 673; HCR03 decision reasons are the external list 886. Code systems
the other X12 mappings share (CPT, ICD, NUBC, HL7's) come from x12_codes, and the name
loops a 278 writes (NM1, N3/N4, DMG, PER) from fhir_to_x12.
"""

from __future__ import annotations

from typing import Any

from engine.formats.x12.tokens import Segment
from engine.maplib import x12_codes as codes
from engine.maplib import x12_fhir as xf
from engine.maplib.x12_codes import (
    CDT,
    CPT,
    ICD9CM,
    ICD10CM,
    NDC,
    PLACE_OF_SERVICE,
    TYPE_OF_BILL,
    X12_CODE,
    code_concept,
    relationships,
)

PAS = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"
EXT_CERTIFICATION_TYPE = PAS + "extension-certificationType"
EXT_LEVEL_OF_SERVICE = PAS + "extension-levelOfServiceCode"
EXT_REQUEST_TYPE = PAS + "extension-serviceItemRequestType"
EXT_ITEM_TRACE = PAS + "extension-itemTraceNumber"
EXT_REVIEW_ACTION = PAS + "extension-reviewAction"
EXT_REVIEW_ACTION_CODE = PAS + "extension-reviewActionCode"
EXT_ITEM_PREAUTH_PERIOD = PAS + "extension-itemPreAuthPeriod"
EXT_AUTHORIZED_DETAIL = PAS + "extension-itemAuthorizedDetail"
EXT_DIAGNOSIS = PAS + "extension-communicatedDiagnosis"
# A 278 response's UM03, UM04 and service dates, which PAS's ClaimResponse has no
# element or extension for: Conduit's own, so a response taken to FHIR and back keeps them.
EXT_SERVICE_TYPE = "urn:conduit:fhir:extension:x12-service-type"
EXT_FACILITY = "urn:conduit:fhir:extension:x12-facility"
EXT_SERVICE_DATE = "urn:conduit:fhir:extension:x12-service-date"
# Where in the 278 an AAA (request validation) stood: no PAS element says it, and the
# payer side needs it to answer in the same place.
EXT_X12_LOOP = "urn:conduit:fhir:extension:x12-loop"
SUPPORTING_INFO = "http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASSupportingInfoType"

REQUEST_CATEGORY = "https://codesystem.x12.org/005010/1525"
CERTIFICATION_TYPE = "https://codesystem.x12.org/005010/1322"
SERVICE_TYPE = "https://codesystem.x12.org/005010/1365"
LEVEL_OF_SERVICE = "https://codesystem.x12.org/005010/1338"
ACTION = "https://codesystem.x12.org/005010/306"
REJECT_REASON = "https://codesystem.x12.org/005010/901"
FOLLOW_UP = "https://codesystem.x12.org/005010/889"
ENTITY = "https://codesystem.x12.org/005010/98"
QUANTITY_QUALIFIER = "https://codesystem.x12.org/005010/673"
UNIT = "https://codesystem.x12.org/005010/355"  # SV103/SV204 unit or basis
DECISION_REASON = "https://codesystem.x12.org/external/886"

# HCR01: what the reviewer decided (the PAS reviewActionCode).
ACTIONS = {"A1": "Certified in total", "A2": "Certified - partial", "A3": "Not certified",
           "A4": "Pended", "A6": "Modified", "C": "Cancel", "CT": "Contact payer",
           "NA": "No action required"}
# ClaimResponse.outcome of one decision: a pended or contact-payer review is still open.
OUTCOME = {"A1": "complete", "A2": "complete", "A3": "complete", "A6": "complete",
           "C": "complete", "NA": "complete", "A4": "queued", "CT": "queued"}

# HI qualifiers: ICD-10-CM (AB*) and ICD-9-CM (B*), principal, admitting or other.
DIAGNOSIS = {"ABK": (ICD10CM, "principal"), "ABJ": (ICD10CM, "admitting"),
             "ABF": (ICD10CM, ""), "APR": (ICD10CM, "patientreasonforvisit"),
             "BK": (ICD9CM, "principal"), "BJ": (ICD9CM, "admitting"), "BF": (ICD9CM, ""),
             "PR": (ICD9CM, "patientreasonforvisit")}

# SV101-1 / SV202-1 / SV301-1 procedure code qualifiers and their systems (x12_codes'
# but for HCPCS, which this release names by its OID, and HP, which it does not know).
HCPCS_OID = "urn:oid:2.16.840.1.113883.6.285"
PROCEDURE_SYSTEMS = {"AD": CDT, "N4": NDC, "IV": f"{X12_CODE}IV", "ER": f"{X12_CODE}ER",
                     "WK": f"{X12_CODE}WK", "ZZ": f"{X12_CODE}ZZ"}

# INS02 of a dependent and the Coverage relationship (18 is the subscriber).
RELATIONSHIPS = relationships("18", "01", "19")
RELATIONSHIP_CODES = {"self": "18", "spouse": "01", "child": "19", "other": "G8"}

# UM06 level of service: emergency (03) and urgent (U) are stat, the rest normal.
STAT = frozenset({"03", "U"})

# PER qualifiers a 278 requester's contact reads (its release knows no others).
_PER_KINDS = {"TE": ("phone", None), "FX": ("fax", None), "EM": ("email", None)}

# Event dates (DTP01) as PAS supporting information categories.
EVENT_DATES = {"AAH": "patientEvent", "435": "admissionDates", "096": "dischargeDates"}


def code_of(concept: Any, system: str = "") -> str:
    """The code of a CodeableConcept (of `system` when given), "" when absent."""
    if not isinstance(concept, dict):
        return ""
    for entry in concept.get("coding") or []:
        if isinstance(entry, dict) and (not system or entry.get("system") == system):
            return str(entry.get("code") or "")
    return ""


def extension(url: str, system: str, code: str) -> dict[str, Any] | None:
    concept = code_concept(system, code)
    return {"url": url, "valueCodeableConcept": concept} if concept else None


def find_extension(element: Any, url: str) -> dict[str, Any] | None:
    if not isinstance(element, dict):
        return None
    return next((e for e in element.get("extension") or []
                 if isinstance(e, dict) and e.get("url") == url), None)


def procedure_system(qualifier: str, code: str) -> str:
    """The system of an SV1/SV2/SV3 procedure code (see PROCEDURE_SYSTEMS)."""
    return codes.procedure_system(qualifier, code, hcpcs=HCPCS_OID,
                                  systems=PROCEDURE_SYSTEMS, unknown="unknown")


def procedure_qualifier(system: str) -> str:
    """The SV1/SV2/SV3 qualifier of a procedure code system (HC when unknown)."""
    if system in (CPT, HCPCS_OID):
        return "HC"
    for qualifier, known in PROCEDURE_SYSTEMS.items():
        if known == system:
            return qualifier
    return system.removeprefix(X12_CODE) if system.startswith(X12_CODE) else "HC"


def facility(composite: str, component: str) -> dict[str, Any] | None:
    """UM04 (facility code and its qualifier: B place of service, A UB facility type)."""
    code, _, rest = composite.partition(component)
    qualifier = rest.split(component, 1)[0]
    system = TYPE_OF_BILL if qualifier == "A" else PLACE_OF_SERVICE
    return code_concept(system, code.strip())


def facility_element(concept: Any) -> list[str]:
    """UM04 from item.locationCodeableConcept: [code, qualifier]."""
    code = code_of(concept, PLACE_OF_SERVICE)
    if code:
        return [code, "B"]
    code = code_of(concept, TYPE_OF_BILL)
    return [code, "A"] if code else []


def telecom(per: Segment) -> list[dict[str, Any]]:
    """A requester's PER03..PER08 as ContactPoints: TE phone, FX fax, EM email, EX the
    phone's extension; numbers as sent."""
    return xf.telecom(per, _PER_KINDS, extension=True, strip=False)
