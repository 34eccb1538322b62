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

# Table 0203 codes (and one vendor spelling) that name the record number a facility keeps
# for its patient, best first: what keys the Patient under the patient-key rule of
# hl7v2-to-fhir@2 (`engine.maplib.v2_to_fhir.patient_key`). MRN is not a table 0203
# code, but many senders type their medical record number so; MRT (a temporary record
# number) ranks below the permanent ones, PE (an enterprise-wide number) last.
LOCAL_RECORD_NUMBER_TYPES: tuple[str, ...] = ("MR", "MRN", "PI", "PT", "PN", "MRT", "PE")
# Table 0203 codes of numbers another body issues (a state, a payer, a bank) or that name
# an account or visit rather than the patient's record: never the Patient's key while
# PID-3 holds any other identifier. Codes starting NN (national person id, NNxxx per
# country) are of this kind too (`is_foreign_identifier_type`).
FOREIGN_IDENTIFIER_TYPES = frozenset({
    "SS", "DL", "DS", "PPN", "NI", "NH", "HC", "JHN", "NPI", "SB", "SR", "RRI", "BR",
    "MA", "MC", "MCD", "MCR", "MB", "SN", "AN", "ANC", "AND", "ANT", "VN",
    "BC", "AM", "DI", "MS", "VS", "CZ", "WP", "CY", "EI", "EN", "DN", "PRN",
})


def is_foreign_identifier_type(code: str) -> bool:
    """A CX-5 identifier type of `FOREIGN_IDENTIFIER_TYPES`, or a national person
    identifier (NNxxx)."""
    code = code.upper()
    return code in FOREIGN_IDENTIFIER_TYPES or (code.startswith("NN") and len(code) == 5)


def identifier_rank(type_code: str) -> int:
    """Lower is better as the patient's key: a local record number by its place in
    LOCAL_RECORD_NUMBER_TYPES, then any other type (or none), then a number another body
    issued."""
    code = type_code.strip().upper()
    if code in LOCAL_RECORD_NUMBER_TYPES:
        return LOCAL_RECORD_NUMBER_TYPES.index(code)
    other = len(LOCAL_RECORD_NUMBER_TYPES)
    return other + 1 if is_foreign_identifier_type(code) else other


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


# ---- coding systems (table 0396) ------------------------------------------------------------

# Published code system URIs, for the systems v2 senders name in CWE.3.
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
NDC = "http://hl7.org/fhir/sid/ndc"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
MVX = "http://hl7.org/fhir/sid/mvx"
CPT = "http://www.ama-assn.org/go/cpt"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD9 = "http://hl7.org/fhir/sid/icd-9"
ICD9CM = "http://hl7.org/fhir/sid/icd-9-cm"
UNII = "http://fdasis.nlm.nih.gov"
NCI_THESAURUS = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
CDC_RACE_ETHNICITY = "urn:oid:2.16.840.1.113883.6.238"
# THO's canonical URL for CDC's PHIN VS local coding system (OID 2.16.840.1.114222.4.5.274).
CDC_PHIN_VS = "https://phinvads.cdc.gov/vads/ViewCodeSystem.action?id=2.16.840.1.114222.4.5.274"
# CDC's immunization tables NIP001 (information source) and NIP002 (refusal reason) have no
# FHIR URI; they get one of Conduit's, not scoped to a sender (they are CDC's, not local).
NIP001 = "urn:conduit:code:NIP001"
NIP002 = "urn:conduit:code:NIP002"

# An HL7 table's code system is V2_SYSTEM + its four digits (HL70162 -> .../v2-0162).
V2_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-"
V2_0052 = V2_SYSTEM + "0052"  # diagnosis type
V2_0063 = V2_SYSTEM + "0063"  # relationship
V2_0064 = V2_SYSTEM + "0064"  # financial class
V2_0074 = V2_SYSTEM + "0074"  # diagnostic service section
V2_0078 = V2_SYSTEM + "0078"  # abnormal flags
V2_0131 = V2_SYSTEM + "0131"  # contact role
V2_0162 = V2_SYSTEM + "0162"  # route of administration
V2_0163 = V2_SYSTEM + "0163"  # administrative site
V2_0167 = V2_SYSTEM + "0167"  # substitution status
V2_0443 = V2_SYSTEM + "0443"  # provider role
V3_ROUTE = "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"

# Table 0396 (name of coding system, CWE.3) and the spellings senders use for it -> FHIR
# system URI. Only systems with a published URI are here; any other name is the sender's
# own system (see `engine.maplib.v2_codes`). The first name of each system is the one a
# FHIR-to-v2 mapping writes back.
CODING_SYSTEMS: dict[str, str] = {
    "LN": LOINC,
    "LOINC": LOINC,
    "SCT": SNOMED,
    "SNOMED": SNOMED,
    "SNOMEDCT": SNOMED,
    "SNOMED-CT": SNOMED,
    "SCT2": SNOMED,
    "SNM": SNOMED,  # SNOMED International (v2.3 era); today's senders mean SNOMED CT
    "SNM3": SNOMED,
    "RXNORM": RXNORM,
    "RXN": RXNORM,
    "NDC": NDC,
    "CVX": CVX,
    "MVX": MVX,
    "UNII": UNII,
    "UCUM": UCUM,
    "ANS+": UCUM,  # the v2.5 name of UCUM in table 0396
    "I10": ICD10,
    "I10C": ICD10CM,
    "ICD10CM": ICD10CM,
    "ICD-10-CM": ICD10CM,
    "I9": ICD9,
    "I9CDX": ICD9CM,
    "I9C": ICD9CM,
    "I9CM": ICD9CM,
    "ICD-9-CM": ICD9CM,
    "C4": CPT,
    "CPT": CPT,
    "NCIT": NCI_THESAURUS,
    "CDCREC": CDC_RACE_ETHNICITY,
    "CDCPHINVS": CDC_PHIN_VS,
    "NIP001": NIP001,
    "NIP002": NIP002,
    "NULLFL": V3_NULL_FLAVOR,
}
# The same systems when a sender names them by OID (allowed in CWE.3 from v2.7).
CODING_SYSTEM_OIDS: dict[str, str] = {
    "2.16.840.1.113883.6.1": LOINC,
    "2.16.840.1.113883.6.96": SNOMED,
    "2.16.840.1.113883.6.69": NDC,
    "2.16.840.1.113883.6.88": RXNORM,
    "2.16.840.1.113883.6.8": UCUM,
    "2.16.840.1.113883.12.292": CVX,
}
# In DG1 a US sender's "I10"/"I9" mean the clinical modifications (ICD-10-CM, ICD-9-CM),
# the only ICD editions US diagnoses are coded in; elsewhere I10 keeps meaning WHO ICD-10.
DIAGNOSIS_CODING_SYSTEMS: dict[str, str] = {
    **CODING_SYSTEMS,
    "I10": ICD10CM,
    "ICD10": ICD10CM,
    "I9": ICD9CM,
    "ICD9": ICD9CM,
}

# ---- identifier types (table 0203) that are not CX.5 codes ----------------------------------

# Identifier.type of the numbers mappings read from EI fields (orders, appointments) and
# of an insurance policy number. Kept apart from IDENTIFIER_TYPE, the CX.5 codes, so that
# a CX typed PLAC keeps the type text it has always had.
PLACER_IDENTIFIER = Coding(V2_0203, "PLAC", "Placer Identifier")
FILLER_IDENTIFIER = Coding(V2_0203, "FILL", "Filler Identifier")
PLACER_GROUP_NUMBER = Coding(V2_0203, "PGN", "Placer Group Number")
SUBSCRIBER_NUMBER = Coding(V2_0203, "SN", "Subscriber Number")
VISIT_NUMBER = Coding(V2_0203, "VN", IDENTIFIER_TYPE["VN"])

# ---- orders -----------------------------------------------------------------------------

# Table 0485 (and the TQ priority component) -> ServiceRequest / MedicationRequest
# priority. P (preop), C (callback), T (timing critical) and PRN say when, not how
# urgently, so they are left out.
PRIORITY: dict[str, str] = {
    "S": "stat", "STAT": "stat", "A": "asap", "ASAP": "asap", "R": "routine",
    "ROUTINE": "routine",
}

# Table 0074 diagnostic service section -> display; the IG maps each code to itself in
# v2-0074. The sections in LAB_SECTIONS are laboratory sections.
SERVICE_SECTIONS: dict[str, str] = {
    "AU": "Audiology", "BG": "Blood Gases", "BLB": "Blood Bank", "CG": "Cytogenetics",
    "CH": "Chemistry", "CP": "Cytopathology", "CT": "CAT Scan", "CTH": "Cardiac Catheterization",
    "CUS": "Cardiac Ultrasound", "EC": "Electrocardiac (e.g., EKG,  EEC, Holter)",
    "EN": "Electroneuro (EEG, EMG,EP,PSG)", "GE": "Genetics", "HM": "Hematology",
    "ICU": "Bedside ICU Monitoring", "IMM": "Immunology", "LAB": "Laboratory",
    "MB": "Microbiology", "MCB": "Mycobacteriology", "MYC": "Mycology",
    "NMR": "Nuclear Magnetic Resonance", "NMS": "Nuclear Medicine Scan",
    "NRS": "Nursing Service Measures", "OSL": "Outside Lab", "OT": "Occupational Therapy",
    "OTH": "Other", "OUS": "OB Ultrasound", "PF": "Pulmonary Function", "PHR": "Pharmacy",
    "PHY": "Physician (Hx. Dx, admission note, etc.)", "PT": "Physical Therapy",
    "RAD": "Radiology", "RC": "Respiratory Care (therapy)", "RT": "Radiation Therapy",
    "RUS": "Radiology Ultrasound", "RX": "Radiograph", "SP": "Surgical Pathology",
    "SR": "Serology", "TX": "Toxicology", "VR": "Virology", "VUS": "Vascular Ultrasound",
    "XRC": "Cineradiograph",
}
LAB_SECTIONS = frozenset(
    {"BG", "BLB", "CG", "CH", "CP", "GE", "HM", "IMM", "LAB", "MB", "MCB", "MYC", "OSL",
     "SP", "SR", "TX", "VR"}
)

# ---- administration (pharmacy, immunization) ----------------------------------------------

# Table 0162 route of administration.
ROUTE_OF_ADMINISTRATION: dict[str, str] = {
    "AP": "Apply Externally", "B": "Buccal", "DT": "Dental", "EP": "Epidural",
    "ET": "Endotrachial Tube", "GTT": "Gastrostomy Tube", "GU": "GU Irrigant",
    "IA": "Intra-arterial", "IB": "Intrabursal", "IC": "Intracardiac",
    "ICV": "Intracervical (uterus)", "ID": "Intradermal", "IH": "Inhalation",
    "IHA": "Intrahepatic Artery", "IM": "Intramuscular", "IMR": "Immerse (Soak) Body Part",
    "IN": "Intranasal", "IO": "Intraocular", "IP": "Intraperitoneal", "IS": "Intrasynovial",
    "IT": "Intrathecal", "IU": "Intrauterine", "IV": "Intravenous", "MM": "Mucous Membrane",
    "MTH": "Mouth/Throat", "NG": "Nasogastric", "NP": "Nasal Prongs", "NS": "Nasal",
    "NT": "Nasotrachial Tube", "OP": "Ophthalmic", "OT": "Otic", "OTH": "Other/Miscellaneous",
    "PF": "Perfusion", "PO": "Oral", "PR": "Rectal", "RM": "Rebreather Mask",
    "SC": "Subcutaneous", "SD": "Soaked Dressing", "SL": "Sublingual", "TD": "Transdermal",
    "TL": "Translingual", "TP": "Topical", "TRA": "Tracheostomy", "UR": "Urethral",
    "VG": "Vaginal", "VM": "Ventimask", "WND": "Wound",
}
# The v3 RouteOfAdministration equivalents the v2-to-FHIR guide gives.
ROUTE_V3: dict[str, Coding] = {
    "ID": Coding(V3_ROUTE, "IDINJ", "Injection, intradermal"),
    "IM": Coding(V3_ROUTE, "IM", "Injection, intramuscular"),
    "IV": Coding(V3_ROUTE, "IVINJ", "Injection, intravenous"),
    "PO": Coding(V3_ROUTE, "PO", "Swallow, oral"),
    "SC": Coding(V3_ROUTE, "SQ", "Injection, subcutaneous"),
    "TD": Coding(V3_ROUTE, "TRNSDERM", "Transdermal"),
}
# Table 0163 administrative site, with the table's own spellings ("Gluteous").
ADMINISTRATIVE_SITE: dict[str, str] = {
    "BE": "Bilateral Ears", "BN": "Bilateral Nares", "BU": "Buttock", "CT": "Chest Tube",
    "LA": "Left Arm", "LAC": "Left Anterior Chest", "LACF": "Left Antecubital Fossa",
    "LD": "Left Deltoid", "LE": "Left Ear", "LEJ": "Left External Jugular", "LF": "Left Foot",
    "LG": "Left Gluteous Medius", "LH": "Left Hand", "LIJ": "Left Internal Jugular",
    "LLAQ": "Left Lower Abd Quadrant", "LLFA": "Left Lower Forearm",
    "LMFA": "Left Mid Forearm", "LN": "Left Naris", "LPC": "Left Posterior Chest",
    "LSC": "Left Subclavian", "LT": "Left Thigh", "LUA": "Left Upper Arm",
    "LUAQ": "Left Upper Abd Quadrant", "LUFA": "Left Upper Forearm",
    "LVG": "Left Ventragluteal", "LVL": "Left Vastus Lateralis", "NB": "Nebulized",
    "OD": "Right Eye", "OS": "Left Eye", "OU": "Bilateral Eyes", "PA": "Perianal",
    "PERIN": "Perineal", "RA": "Right Arm", "RAC": "Right Anterior Chest",
    "RACF": "Right Antecubital Fossa", "RD": "Right Deltoid", "RE": "Right Ear",
    "REJ": "Right External Jugular", "RF": "Right Foot", "RG": "Right Gluteous Medius",
    "RH": "Right Hand", "RIJ": "Right Internal Jugular", "RLAQ": "Rt Lower Abd Quadrant",
    "RLFA": "Right Lower Forearm", "RMFA": "Right Mid Forearm", "RN": "Right Naris",
    "RPC": "Right Posterior Chest", "RSC": "Right Subclavian", "RT": "Right Thigh",
    "RUA": "Right Upper Arm", "RUAQ": "Right Upper Abd Quadrant",
    "RUFA": "Right Upper Forearm", "RVG": "Right Ventragluteal",
    "RVL": "Right Vastus Lateralis",
}

# ---- units of time --------------------------------------------------------------------------

# Units of time as senders write them (CQ units, TQ.3 and table 0335 letters, ISO+ and ANSI
# words) -> the UCUM code FHIR's UnitsOfTime uses. M is minutes, as in TQ (a month is L).
TIME_UNITS: dict[str, str] = {
    **dict.fromkeys(("S", "SEC", "SECS", "SECOND", "SECONDS"), "s"),
    **dict.fromkeys(("M", "MIN", "MINS", "MINUTE", "MINUTES"), "min"),
    **dict.fromkeys(("H", "HR", "HRS", "HOUR", "HOURS"), "h"),
    **dict.fromkeys(("D", "DAY", "DAYS"), "d"),
    **dict.fromkeys(("W", "WK", "WKS", "WEEK", "WEEKS"), "wk"),
    **dict.fromkeys(("L", "MO", "MON", "MONTH", "MONTHS"), "mo"),
    **dict.fromkeys(("A", "Y", "YR", "YEAR", "YEARS"), "a"),
}
