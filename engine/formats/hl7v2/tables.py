"""HL7 v2 code tables that mappings translate into FHIR codes, in one place.

Each table is keyed by the v2 code in upper case, as it appears in the standard. The FHIR
targets follow the HL7 v2-to-FHIR implementation guide's concept maps where it gives one;
where it is silent the choice is written next to the entry. A code that is missing from a
table is not guessed: the caller decides whether to omit it or fail.
"""

from __future__ import annotations

from typing import NamedTuple

# Code system URIs for FHIR codings of v2 and v3 concepts.
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"  # identifier type
V2_0004 = "http://terminology.hl7.org/CodeSystem/v2-0004"  # patient class
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
V3_PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


class Coding(NamedTuple):
    """A FHIR Coding as a table value: system, code, display."""

    system: str
    code: str
    display: str

    def as_fhir(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


# Table 0001 administrative sex -> FHIR administrative-gender (a required binding, so every
# v2 code must land on one of male | female | other | unknown).
ADMINISTRATIVE_SEX: dict[str, str] = {
    "M": "male",
    "F": "female",
    "O": "other",
    "U": "unknown",
    "A": "other",  # ambiguous
    "N": "unknown",  # not applicable
}

# Table 0004 patient class -> Encounter.class. I, O, E and P have v3 ActCode equivalents;
# the IG keeps the others as v2-0004 codes rather than forcing a wrong v3 code (a
# recurring patient is not necessarily ambulatory, an obstetrics patient not necessarily
# inpatient).
PATIENT_CLASS: dict[str, Coding] = {
    "I": Coding(V3_ACT_CODE, "IMP", "inpatient encounter"),
    "O": Coding(V3_ACT_CODE, "AMB", "ambulatory"),
    "E": Coding(V3_ACT_CODE, "EMER", "emergency"),
    "P": Coding(V3_ACT_CODE, "PRENC", "pre-admission"),
    "R": Coding(V2_0004, "R", "Recurring patient"),
    "B": Coding(V2_0004, "B", "Obstetrics"),
    "C": Coding(V2_0004, "C", "Commercial Account"),
    "N": Coding(V2_0004, "N", "Not Applicable"),
    "U": Coding(V2_0004, "U", "Unknown"),
}
# Encounter.class is mandatory in R4; an empty PV1-2 says nothing, so say "unknown".
PATIENT_CLASS_UNKNOWN = Coding(V3_NULL_FLAVOR, "UNK", "unknown")

# Table 0203 identifier type: code -> display, for Identifier.type codings. Only codes that
# are in v2-0203 may use its system URI; others travel as type.text.
IDENTIFIER_TYPE: dict[str, str] = {
    "AN": "Account number",
    "BR": "Birth registry number",
    "DL": "Driver's license number",
    "DN": "Doctor number",
    "EN": "Employer number",
    "MA": "Patient Medicaid number",
    "MC": "Patient's Medicare number",
    "MR": "Medical record number",
    "NI": "National unique individual identifier",
    "NPI": "National provider identifier",
    "PE": "Living Subject Enterprise Number",
    "PI": "Patient internal identifier",
    "PN": "Person number",
    "PPN": "Passport number",
    "PRN": "Provider number",
    "PT": "Patient external identifier",
    "RRI": "Regional registry ID",
    "SB": "Social Beneficiary Identifier",
    "SS": "Social Security number",
    "SR": "State registry ID",
    "U": "Unspecified identifier",
    "VN": "Visit number",
}

# Table 0200 name type -> HumanName.use, per the IG's concept map. Codes the IG leaves
# unmapped (A alias, B birth, C adopted, ...) get no use: FHIR has no "alias" use, and
# "usual" would claim it is the name the patient goes by.
NAME_USE: dict[str, str] = {
    "L": "official",
    "D": "usual",
    "M": "maiden",
    "N": "nickname",
    "S": "anonymous",
    "TEMP": "temp",
    "BAD": "old",
    "NOUSE": "old",
}

# Table 0190 address type -> Address.use / Address.type.
ADDRESS_USE: dict[str, str] = {
    "H": "home",
    "P": "home",  # permanent
    "B": "work",  # firm/business
    "O": "work",  # office
    "C": "temp",  # current or temporary
    "BA": "old",  # bad address
}
ADDRESS_TYPE: dict[str, str] = {
    "M": "postal",  # mailing
    "SH": "physical",  # shipping
}

# Table 0201 telecommunication use code -> ContactPoint.use ("" keeps the field's default,
# home for PID-13 and work for PID-14).
TELECOM_USE: dict[str, str] = {
    "PRN": "home",
    "ORN": "home",
    "VHN": "temp",
    "WPN": "work",
    "ASN": "",
    "EMR": "",
    "NET": "",
    "BPN": "",
}

# Table 0202 telecommunication equipment type -> ContactPoint.system.
TELECOM_SYSTEM: dict[str, str] = {
    "PH": "phone",
    "CP": "phone",  # with use "mobile"
    "FX": "fax",
    "BP": "pager",
    "INTERNET": "email",
    "X.400": "email",
    "MD": "other",  # modem
    "TDD": "other",
    "TTY": "other",
}
