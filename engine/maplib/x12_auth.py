"""Prior authorization (278) to and from FHIR in the Da Vinci PAS shape: the code systems
and extensions both directions share, so a code written one way reads back the same.

X12 codes are written with the X12 code system of their element, as PAS does
(https://codesystem.x12.org/005010/<element number>): UM01 request category 1525, UM02
certification type 1322, UM03 service type 1365, UM06 level of service 1338, HCR01
action 306, AAA03 reject reason 901, AAA04 follow-up action 889, NM101 entity 98, HSD01
quantity qualifier 673; HCR03 decision reasons are the external list 886.
"""

from __future__ import annotations

from typing import Any

from engine.maplib.fhir import compact

PAS = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"
EXT_CERTIFICATION_TYPE = PAS + "extension-certificationType"
EXT_LEVEL_OF_SERVICE = PAS + "extension-levelOfServiceCode"
EXT_REQUEST_TYPE = PAS + "extension-serviceItemRequestType"
EXT_ITEM_TRACE = PAS + "extension-itemTraceNumber"
EXT_REVIEW_ACTION = PAS + "extension-reviewAction"
EXT_REVIEW_ACTION_CODE = PAS + "extension-reviewActionCode"
EXT_ITEM_PREAUTH_PERIOD = PAS + "extension-itemPreAuthPeriod"
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
DECISION_REASON = "https://codesystem.x12.org/external/886"
TAXONOMY = "http://nucc.org/provider-taxonomy"
PLACE_OF_SERVICE = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/" \
                   "Place_of_Service_Code_Set"
BILL_FACILITY = "https://www.nubc.org/CodeSystem/TypeOfBill"
REVENUE = "https://www.nubc.org/CodeSystem/RevenueCodes"
ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
PRIORITY = "http://terminology.hl7.org/CodeSystem/processpriority"
RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
DIAGNOSIS_TYPE = "http://terminology.hl7.org/CodeSystem/ex-diagnosistype"

# HCR01: what the reviewer decided (the PAS reviewActionCode).
ACTIONS = {"A1": "Certified in total", "A2": "Certified - partial", "A3": "Not certified",
           "A4": "Pended", "A6": "Modified", "C": "Cancel", "CT": "Contact payer",
           "NA": "No action required"}
# ClaimResponse.outcome of one decision: a pended or contact-payer review is still open.
OUTCOME = {"A1": "complete", "A2": "complete", "A3": "complete", "A6": "complete",
           "C": "complete", "NA": "complete", "A4": "queued", "CT": "queued"}

# HI qualifiers: ICD-10-CM (AB*) and ICD-9-CM (B*), principal, admitting or other.
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
ICD9 = "http://hl7.org/fhir/sid/icd-9-cm"
DIAGNOSIS = {"ABK": (ICD10, "principal"), "ABJ": (ICD10, "admitting"), "ABF": (ICD10, ""),
             "APR": (ICD10, "patientreasonforvisit"), "BK": (ICD9, "principal"),
             "BJ": (ICD9, "admitting"), "BF": (ICD9, ""), "PR": (ICD9, "patientreasonforvisit")}

# SV101-1 / SV202-1 / SV301-1 procedure code qualifiers and their systems.
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "urn:oid:2.16.840.1.113883.6.285"
PROCEDURE_SYSTEMS = {"AD": "http://www.ada.org/cdt", "N4": "http://hl7.org/fhir/sid/ndc",
                     "IV": "urn:conduit:code:x12:IV", "ER": "urn:conduit:code:x12:ER",
                     "WK": "urn:conduit:code:x12:WK", "ZZ": "urn:conduit:code:x12:ZZ"}

# INS02 of a dependent and the Coverage relationship (18 is the subscriber).
RELATIONSHIPS = {"18": "self", "01": "spouse", "19": "child"}
RELATIONSHIP_CODES = {"self": "18", "spouse": "01", "child": "19", "other": "G8"}

# UM06 level of service: emergency (03) and urgent (U) are stat, the rest normal.
STAT = frozenset({"03", "U"})

# Event dates (DTP01) as PAS supporting information categories.
EVENT_DATES = {"AAH": "patientEvent", "435": "admissionDates", "096": "dischargeDates"}


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any] | None:
    """A CodeableConcept of one code, or None when there is no code."""
    if not code:
        return None
    return {"coding": [compact({"system": system, "code": code, "display": display})]}


def code_of(concept: Any, system: str = "") -> str:
    """The code of a CodeableConcept (of `system` when given), "" when absent."""
    if not isinstance(concept, dict):
        return ""
    for entry in concept.get("coding") or []:
        if isinstance(entry, dict) and (not system or entry.get("system") == system):
            return str(entry.get("code") or "")
    return ""


def extension(url: str, system: str, code: str) -> dict[str, Any] | None:
    concept = coding(system, code)
    return {"url": url, "valueCodeableConcept": concept} if concept else None


def find_extension(element: Any, url: str) -> dict[str, Any] | None:
    if not isinstance(element, dict):
        return None
    return next((e for e in element.get("extension") or []
                 if isinstance(e, dict) and e.get("url") == url), None)


def icd_code(qualifier: str, code: str) -> str:
    """An X12 ICD-10-CM code (no dot) as FHIR writes it: E119 is E11.9."""
    code = code.strip()
    if qualifier.startswith("AB") or qualifier == "APR":
        return code[:3] + "." + code[3:] if len(code) > 3 and "." not in code else code
    if qualifier in ("BK", "BJ", "BF", "PR") and len(code) > 3 and "." not in code:
        cut = 4 if code.startswith("E") else 3
        return code[:cut] + "." + code[cut:] if len(code) > cut else code
    return code


def x12_icd(code: str) -> str:
    """A FHIR ICD code as X12 sends it (no dot)."""
    return code.replace(".", "")


def procedure_system(qualifier: str, code: str) -> str:
    """The system of an SV1/SV2/SV3 procedure code: HC is CPT for codes of digits (with
    a category II/III letter last), HCPCS level II for codes led by a letter."""
    if qualifier == "HC":
        return HCPCS if code[:1].isalpha() else CPT
    return PROCEDURE_SYSTEMS.get(qualifier, f"urn:conduit:code:x12:{qualifier or 'unknown'}")


def procedure_qualifier(system: str) -> str:
    if system in (CPT, HCPCS):
        return "HC"
    for qualifier, known in PROCEDURE_SYSTEMS.items():
        if known == system:
            return qualifier
    prefix = "urn:conduit:code:x12:"
    return system.removeprefix(prefix) if system.startswith(prefix) else "HC"


def facility(composite: str, component: str) -> dict[str, Any] | None:
    """UM04 (facility code and its qualifier: B place of service, A UB facility type)."""
    code, _, rest = composite.partition(component)
    qualifier = rest.split(component, 1)[0]
    system = BILL_FACILITY if qualifier == "A" else PLACE_OF_SERVICE
    return coding(system, code.strip())


def facility_element(concept: Any) -> list[str]:
    """UM04 from item.locationCodeableConcept: [code, qualifier]."""
    code = code_of(concept, PLACE_OF_SERVICE)
    if code:
        return [code, "B"]
    code = code_of(concept, BILL_FACILITY)
    return [code, "A"] if code else []


def telecom(per: Any) -> list[dict[str, Any]]:
    """PER03..PER08 (qualifier and number pairs: TE phone, FX fax, EM email; EX is the
    phone's extension) as ContactPoints."""
    out: list[dict[str, Any]] = []
    for index in (3, 5, 7):
        qualifier, value = per.element(index), per.element(index + 1)
        kind = {"TE": "phone", "FX": "fax", "EM": "email"}.get(qualifier)
        if kind and value:
            out.append({"system": kind, "value": value})
        elif qualifier == "EX" and value and out and out[-1]["system"] == "phone":
            out[-1]["value"] += f" x{value}"
    return out


def per_elements(points: Any) -> list[str]:
    """ContactPoints as PER03.. pairs (at most three, as PER holds)."""
    out: list[str] = []
    for point in points or []:
        if not isinstance(point, dict):
            continue
        qualifier = {"phone": "TE", "fax": "FX", "email": "EM"}.get(point.get("system", ""))
        value = str(point.get("value") or "")
        if not qualifier or not value:
            continue
        number, _, ext = value.partition(" x")
        out += [qualifier, number]
        if ext and len(out) < 6:
            out += ["EX", ext]
        if len(out) >= 6:
            break
    return out[:6]


# ---- writing X12 from FHIR: the name loops ----------------------------------------------

_QUALIFIERS = {"http://hl7.org/fhir/sid/us-npi": "XX", "urn:oid:2.16.840.1.113883.4.4": "FI",
               "http://hl7.org/fhir/sid/us-ssn": "34"}
_X12_GENDER = {"male": "M", "female": "F", "unknown": "U"}


def id_elements(resource: dict[str, Any], own: str) -> list[str]:
    """NM108/NM109 from a resource's first identifier: NPI XX, EIN FI, SSN 34, a payer's
    own id `own` (MI for a member, PI for a payer)."""
    for ident in resource.get("identifier") or []:
        if not isinstance(ident, dict) or not ident.get("value"):
            continue
        system = str(ident.get("system") or "")
        qualifier = _QUALIFIERS.get(system)
        if qualifier is None:
            suffix = system.removeprefix("urn:conduit:id:x12:")
            qualifier = suffix if system != suffix and len(suffix) == 2 and \
                suffix.isupper() else own
        return [qualifier, str(ident["value"])]
    return []


def nm1(entity: str, resource: dict[str, Any], own: str) -> list[Any]:
    """NM1 for a Patient, Practitioner (NM102 1) or Organization (2)."""
    ids = id_elements(resource, own)
    if resource.get("resourceType") == "Organization":
        names = [str(resource.get("name") or ""), "", "", "", ""]
        kind = "2"
    else:
        name = next((n for n in resource.get("name") or [] if isinstance(n, dict)), {})
        given = [str(g) for g in name.get("given") or []]
        names = [str(name.get("family") or ""), given[0] if given else "",
                 given[1] if len(given) > 1 else "",
                 " ".join(name.get("prefix") or []), " ".join(name.get("suffix") or [])]
        kind = "1"
    return ["NM1", entity, kind, *names, *ids]


def address_segments(resource: dict[str, Any]) -> list[list[Any]]:
    """N3 and N4 from the resource's first address."""
    found = next((a for a in resource.get("address") or [] if isinstance(a, dict)), None)
    if found is None:
        return []
    lines = [str(line) for line in found.get("line") or []][:2]
    out: list[list[Any]] = [["N3", *lines]] if lines else []
    place = [str(found.get(k) or "") for k in ("city", "state", "postalCode", "country")]
    if any(place):
        out.append(["N4", *place])
    return out


def dmg(patient: dict[str, Any]) -> list[list[Any]]:
    birth = str(patient.get("birthDate") or "").replace("-", "")
    gender = _X12_GENDER.get(str(patient.get("gender") or ""), "")
    if len(birth) != 8 and not gender:
        return []
    return [["DMG", "D8" if len(birth) == 8 else "", birth if len(birth) == 8 else "",
             gender]]
