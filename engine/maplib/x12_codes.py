"""Code systems and coded values every X12 mapping shares, one place each, so a
procedure code, a diagnosis or a relationship reads the same from an 837, an 835, a
270/271 or a 278.

- Codings: `coding` and `concept` leave out an empty display; `code_concept` is None
  when there is no code (an element the mapping then leaves out).
- Diagnoses: X12 sends ICD codes without their dot; `icd_code` puts it back (after the
  third character, the fourth for ICD-9-CM E codes), `x12_icd` takes it out again.
- Procedure codes (SV1/SV2/SV3, SVC, EQ/EB composites): HC is HCPCS level II when the
  code starts with a letter, else CPT; AD is CDT, N4 NDC, HP HIPPS; another qualifier
  is urn:conduit:code:x12:<qualifier>. A mapping passes its own table or HCPCS system
  where its release wrote another.
- Individual relationship codes (INS02, SBR02, PAT01, data element 1069) as FHIR's
  subscriber-relationship codes; each mapping reads the codes its release read
  (`relationships`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.maplib.fhir import compact

CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
CDT = "http://www.ada.org/cdt"
NDC = "http://hl7.org/fhir/sid/ndc"
HIPPS = ("https://www.cms.gov/Medicare/Medicare-Fee-for-Service-Payment/"
         "ProspMedicareFeeSvcPmtGen/HIPPSCodes")
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD9CM = "http://hl7.org/fhir/sid/icd-9-cm"
REVENUE = "https://www.nubc.org/CodeSystem/RevenueCodes"
TYPE_OF_BILL = "https://www.nubc.org/CodeSystem/TypeOfBill"
PLACE_OF_SERVICE = ("https://www.cms.gov/Medicare/Coding/place-of-service-codes/"
                    "Place_of_Service_Code_Set")
TAXONOMY = "http://nucc.org/provider-taxonomy"
RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
PRIORITY = "http://terminology.hl7.org/CodeSystem/processpriority"
DIAGNOSIS_TYPE = "http://terminology.hl7.org/CodeSystem/ex-diagnosistype"
ORG_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
MEMBER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
C4BB_ROLE = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBClaimCareTeamRole"
C4BB_SUBTYPE = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBInstitutionalClaimSubType"
X12_CODE = "urn:conduit:code:x12:"  # X12 code lists without a published URI

# Procedure code qualifiers besides HC (see the module docstring).
PROCEDURE_SYSTEMS: Mapping[str, str] = {"AD": CDT, "N4": NDC, "HP": HIPPS}

# Data element 1069 (individual relationship) -> subscriber-relationship: children of
# any kind are child, parents parent, 34 (other adult) other.
INDIVIDUAL_RELATIONSHIPS: Mapping[str, str] = {
    "18": "self", "01": "spouse", "53": "common", "19": "child", "09": "child",
    "10": "child", "17": "child", "03": "parent", "16": "parent", "34": "other"}


def coding(system: str, code: str, display: str = "") -> dict[str, Any]:
    return compact({"system": system, "code": code, "display": display})


def concept(system: str, code: str, display: str = "") -> dict[str, Any]:
    return {"coding": [coding(system, code, display)]}


def code_concept(system: str, code: str, display: str | None = None
                 ) -> dict[str, Any] | None:
    """A CodeableConcept of one code, or None when there is no code."""
    return concept(system, code, display or "") if code else None


def icd_code(system: str, code: str) -> str:
    """An ICD-10-CM or ICD-9-CM diagnosis code with its dot; a code of another system
    (ICD-10-PCS has no dot), or one that has its dot, as sent (stripped)."""
    code = code.strip()
    if "." in code or system not in (ICD10CM, ICD9CM):
        return code
    at = 4 if system == ICD9CM and code.startswith("E") else 3
    return code if len(code) <= at else f"{code[:at]}.{code[at:]}"


def x12_icd(code: str) -> str:
    """A FHIR ICD code as X12 sends it (no dot)."""
    return code.replace(".", "")


def hc_system(code: str, hcpcs: str = HCPCS) -> str:
    """The system of an HC procedure code or modifier: HCPCS level II when it starts
    with a letter, else CPT (digits, with a category II/III letter last)."""
    return hcpcs if code[:1].isalpha() else CPT


def procedure_system(qualifier: str, code: str, *, hcpcs: str = HCPCS,
                     systems: Mapping[str, str] = PROCEDURE_SYSTEMS,
                     unknown: str = "") -> str:
    """The system of a procedure code by its qualifier (see the module docstring);
    `unknown` names the list of a code sent without a qualifier."""
    if qualifier == "HC":
        return hc_system(code, hcpcs)
    return systems.get(qualifier, f"{X12_CODE}{qualifier or unknown}")


def relationships(*codes: str) -> dict[str, str]:
    """The subscriber-relationship of these individual relationship codes."""
    return {code: INDIVIDUAL_RELATIONSHIPS[code] for code in codes}
