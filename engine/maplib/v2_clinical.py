"""The clinical and administrative segments of an ADT as FHIR R4: NK1 as RelatedPerson,
AL1 as AllergyIntolerance, DG1 as Condition, IN1 as Coverage, and PID-10/PID-22 as the
US Core race and ethnicity extensions.

Each resource gets a deterministic id (uuid5, see `engine.maplib.fhir.resource_id`) scoped
to the sending facility and keyed on the fields that stay put from one message about the
same patient to the next, so a later A08 updates what an A01 wrote:

| resource           | keyed on                                                         |
| ------------------ | ---------------------------------------------------------------- |
| RelatedPerson      | the Patient's id + NK1-1 set id (else the NK1's position)        |
| AllergyIntolerance | the Patient's id + AL1-3 allergen (system and code, else text)   |
| Condition          | the Encounter's id (else the Patient's) + DG1-3 (system and code) |
| Coverage           | the Patient's id + IN1-2 plan id + IN1-36 policy (else IN1-49)   |

Code tables follow the HL7 v2-to-FHIR IG's concept maps; where the IG is silent the choice
is written next to the table. The tables here are only these resources'; the shared ones
are in `formats/hl7v2/tables.py`. Coded values are read by `v2_codes`, as in every other
v2 mapping (a sender's local codes get the system urn:conduit:code:<facility>:<name or
local>), so a code reads the same from an ADT and an ORU; in DG1, I10 and I9 mean
ICD-10-CM and ICD-9-CM (`tables.DIAGNOSIS_CODING_SYSTEMS`).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from engine.errors import MappingError
from engine.formats.hl7v2 import Repetition, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_codes import Bound, coding_system, cwe_to_codeable_concept
from engine.maplib.v2_fhir import administrative_gender

US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
US_CORE_ETHNICITY = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
V3_ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
SUBSCRIBER_RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"

# Table 0063 relationship -> display (the v2-0063 coding every NK1 relationship keeps).
RELATIONSHIP: dict[str, str] = {
    "ASC": "Associate", "BRO": "Brother", "CGV": "Care giver", "CHD": "Child",
    "DEP": "Handicapped dependent", "DOM": "Life partner", "EMC": "Emergency contact",
    "EME": "Employee", "EMR": "Employer", "EXF": "Extended family", "FCH": "Foster child",
    "FND": "Friend", "FTH": "Father", "GCH": "Grandchild", "GRD": "Guardian",
    "GRP": "Grandparent", "MGR": "Manager", "MTH": "Mother", "NCH": "Natural child",
    "NON": "None", "OAD": "Other adult", "OTH": "Other", "OWN": "Owner", "PAR": "Parent",
    "SCH": "Stepchild", "SEL": "Self", "SIB": "Sibling", "SIS": "Sister", "SPO": "Spouse",
    "TRA": "Trainer", "UNK": "Unknown", "WRD": "Ward of court",
}
# Table 0063 -> the IG's second coding: v3-RoleCode for family relations, v2-0131 for the
# four codes that are contact roles. Codes it maps to themselves keep only v2-0063.
RELATIONSHIP_ROLE: dict[str, tables.Coding] = {
    "SEL": tables.Coding(V3_ROLE_CODE, "ONESELF", "self"),
    "SPO": tables.Coding(V3_ROLE_CODE, "SPS", "spouse"),
    "DOM": tables.Coding(V3_ROLE_CODE, "SIGOTHR", "significant other"),
    "CHD": tables.Coding(V3_ROLE_CODE, "CHILD", "child"),
    "GCH": tables.Coding(V3_ROLE_CODE, "GRNDCHILD", "grandchild"),
    "NCH": tables.Coding(V3_ROLE_CODE, "NCHILD", "natural child"),
    "SCH": tables.Coding(V3_ROLE_CODE, "STPCHLD", "step child"),
    "FCH": tables.Coding(V3_ROLE_CODE, "CHLDFOST", "foster child"),
    "PAR": tables.Coding(V3_ROLE_CODE, "PRN", "parent"),
    "MTH": tables.Coding(V3_ROLE_CODE, "MTH", "mother"),
    "FTH": tables.Coding(V3_ROLE_CODE, "FTH", "father"),
    "GRP": tables.Coding(V3_ROLE_CODE, "GRPRN", "grandparent"),
    "EXF": tables.Coding(V3_ROLE_CODE, "EXT", "extended family member"),
    "SIB": tables.Coding(V3_ROLE_CODE, "SIB", "sibling"),
    "BRO": tables.Coding(V3_ROLE_CODE, "BRO", "brother"),
    "SIS": tables.Coding(V3_ROLE_CODE, "SIS", "sister"),
    "FND": tables.Coding(V3_ROLE_CODE, "FRND", "unrelated friend"),
    "EMR": tables.Coding(tables.V2_0131, "E", "Employer"),
    "EMC": tables.Coding(tables.V2_0131, "C", "Emergency Contact"),
    "UNK": tables.Coding(tables.V2_0131, "U", "Unknown"),
    "OTH": tables.Coding(tables.V2_0131, "O", "Other"),
}
# Table 0131 contact role (NK1-7), a second relationship of the RelatedPerson.
CONTACT_ROLE: dict[str, str] = {
    "C": "Emergency Contact", "E": "Employer", "F": "Federal Agency", "I": "Insurance Company",
    "N": "Next-of-Kin", "O": "Other", "S": "State Agency", "U": "Unknown",
}
# Table 0063 -> Coverage.relationship. Our choice (the IG leaves IN1-17 to v2-0063): the
# children and parents fold into child / parent, a life partner is "common" (law spouse),
# and every other 0063 code is "other". A code outside 0063 keeps only its text.
SUBSCRIBER: dict[str, tuple[str, str]] = {
    "SEL": ("self", "Self"), "SPO": ("spouse", "Spouse"), "DOM": ("common", "Common Law Spouse"),
    "CHD": ("child", "Child"), "NCH": ("child", "Child"), "SCH": ("child", "Child"),
    "FCH": ("child", "Child"), "PAR": ("parent", "Parent"), "MTH": ("parent", "Parent"),
    "FTH": ("parent", "Parent"),
}

# Table 0127 allergen type -> AllergyIntolerance.category (IG; MA and MC have none).
ALLERGY_CATEGORY: dict[str, str] = {
    "DA": "medication", "FA": "food", "EA": "environment", "AA": "biologic",
    "PA": "environment", "LA": "environment",
}
ALLERGY_TYPES = frozenset({"DA", "FA", "MA", "EA", "AA", "PA", "LA"})  # type "allergy"
# Table 0128 allergy severity -> criticality. The IG maps SV and MI; MO (moderate) is low
# here too, since "high" means a risk of a life-threatening reaction, which moderate is not.
CRITICALITY: dict[str, str] = {"SV": "high", "MO": "low", "MI": "low", "U": "unable-to-assess"}
# "No known allergy" statements that senders put where the allergen belongs. Written as
# the SNOMED CT situations FHIR uses for them, so no receiver shows an allergy to "NKA".
NO_KNOWN_ALLERGY: dict[str, tables.Coding] = {
    "NKA": tables.Coding(tables.SNOMED, "716186003", "No known allergy"),
    "NO KNOWN ALLERGIES": tables.Coding(tables.SNOMED, "716186003", "No known allergy"),
    "NKDA": tables.Coding(tables.SNOMED, "409137002", "No known drug allergy"),
    "NO KNOWN DRUG ALLERGIES": tables.Coding(tables.SNOMED, "409137002", "No known drug allergy"),
    "NKFA": tables.Coding(tables.SNOMED, "429625007", "No known food allergy"),
    "NO KNOWN FOOD ALLERGIES": tables.Coding(tables.SNOMED, "429625007", "No known food allergy"),
}
_ALLERGY_ACTIVE = {
    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
    "code": "active",
    "display": "Active",
}
# AL1 says nothing about verification (IAM does, from v2.6): "unconfirmed" claims no more.
_ALLERGY_UNCONFIRMED = {
    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
    "code": "unconfirmed",
    "display": "Unconfirmed",
}

# Table 0052 diagnosis type: display, and the verification status it implies (our choice:
# an admitting or working diagnosis is provisional, a final one confirmed).
DIAGNOSIS_TYPE: dict[str, tuple[str, str]] = {
    "A": ("Admitting", "provisional"),
    "W": ("Working", "provisional"),
    "F": ("Final", "confirmed"),
}
_VERIFICATION_DISPLAY = {"provisional": "Provisional", "confirmed": "Confirmed"}
_ENCOUNTER_DIAGNOSIS = {
    "coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
        "code": "encounter-diagnosis",
        "display": "Encounter Diagnosis",
    }]
}
_CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"

# CDC race & ethnicity: the OMB categories US Core puts in ombCategory.
OMB_RACE: dict[str, str] = {
    "1002-5": "American Indian or Alaska Native",
    "2028-9": "Asian",
    "2054-5": "Black or African American",
    "2076-8": "Native Hawaiian or Other Pacific Islander",
    "2106-3": "White",
}
OMB_ETHNICITY: dict[str, str] = {"2135-2": "Hispanic or Latino", "2186-5": "Not Hispanic or Latino"}
# v2.5's table 0189 ethnic group (H, N, U) in CDC codes; U is the null flavor UNK.
ETHNIC_GROUP: dict[str, str] = {"H": "2135-2", "N": "2186-5", "U": "UNK"}
RACE_NULL_FLAVORS: dict[str, str] = {"UNK": "unknown", "ASKU": "asked but unknown"}
_CDC_NAMES = frozenset({"CDCREC", "HL70005", "HL70189", "2.16.840.1.113883.6.238"})
_CDC_CODE = re.compile(r"\d{4}-\d\Z")


# ---- coded elements ---------------------------------------------------------------------


def text_or_concept(rep: Repetition | None, facility: str) -> dict | None:
    """A field that is coded for some senders and free text for others (AL1-3 "Allergen
    Code/Mnemonic/Description", AL1-5 reaction, ST until v2.6): a value without components
    is text, since a bare "PENICILLIN" or "Hives" names no code system to code it in."""
    if rep is not None and len(rep.components()) == 1:
        text = dt.present(rep.value(1))
        return {"text": text} if text else None
    return cwe_to_codeable_concept(rep, facility)


def _code(segment: Segment, field: int) -> str:
    """The code (component 1) of a coded field, upper case, "" when empty."""
    return dt.present(segment.value(field)).upper()


def _key(concept: dict) -> str:
    """What identifies a coded thing: its first coding's system and code, else its text."""
    for coding in concept.get("coding", []):
        return f"{coding.get('system', '')}|{coding['code']}"
    return "text|" + concept.get("text", "").upper()


def _patient_ref(patient_id: str) -> dict:
    return {"reference": f"urn:uuid:{patient_id}"}


# ---- PID-10 / PID-22: US Core race and ethnicity ----------------------------------------


def race_and_ethnicity(pid: Segment) -> list[dict]:
    """The US Core race (PID-10) and ethnicity (PID-22) extensions that PID carries.

    CDC codes (CDCREC, HL70005/HL70189, or a bare NNNN-N code) that are OMB categories go
    to ombCategory, other CDC codes to detailed (rolling detailed codes up to their OMB
    category needs the CDC hierarchy, which is not here); v2.5's ethnic group H/N/U is
    translated. Local codes are kept only in the text, which US Core requires: the sender's
    texts, else the codes' displays.
    """
    found = [_us_core_extension(RACE, pid.repetitions(10)),
             _us_core_extension(ETHNICITY, pid.repetitions(22))]
    return [e for e in found if e]


class _UsCore(NamedTuple):
    """One US Core extension: its url, its OMB categories, whether it takes several of
    them, and the v2 table (name, codes -> CDC codes) a sender may code it in instead."""

    url: str
    omb: dict[str, str]
    many_omb: bool
    v2_table: tuple[str, dict[str, str]] = ("", {})


RACE = _UsCore(US_CORE_RACE, OMB_RACE, many_omb=True)
ETHNICITY = _UsCore(US_CORE_ETHNICITY, OMB_ETHNICITY, many_omb=False,
                    v2_table=("HL70189", ETHNIC_GROUP))


def _us_core_extension(kind: _UsCore, reps: list[Repetition]) -> dict | None:
    """One US Core extension: ombCategory codings, detailed codings, then the text."""
    omb: list[dict] = []
    detailed: list[dict] = []
    texts: list[str] = []
    for rep in reps:
        text = dt.present(rep.value(9)) or dt.present(rep.value(2))
        coding, is_omb = _cdc_coding(rep, kind)
        if coding is not None and coding not in omb + detailed:
            (omb if is_omb else detailed).append(coding)
        label = text or (coding or {}).get("display", "") or dt.present(rep.value(1))
        if label and label not in texts:
            texts.append(label)
    if not texts:
        return None
    real = [c for c in omb if c["system"] == tables.CDC_RACE_ETHNICITY]
    omb = real or omb[:1]  # US Core: UNK/ASKU only when no category is known
    omb = omb if kind.many_omb else omb[:1]
    parts = [{"url": "ombCategory", "valueCoding": c} for c in omb]
    parts += [{"url": "detailed", "valueCoding": c} for c in detailed]
    parts.append({"url": "text", "valueString": ", ".join(texts)})
    return {"url": kind.url, "extension": parts}


def _cdc_coding(rep: Repetition, kind: _UsCore) -> tuple[dict | None, bool]:
    """A CWE as a CDC race & ethnicity coding (or a null flavor), and whether it is an OMB
    category; (None, False) for a code of another system."""
    code, name = dt.present(rep.value(1)), dt.present(rep.value(3)).upper()
    table, translated = kind.v2_table
    if table and name in ("", table) and code.upper() in translated:
        code = translated[code.upper()]
    if code.upper() in RACE_NULL_FLAVORS:
        return _null_flavor(code.upper()), True
    if not _is_cdc(code, name):
        return None, False
    display = kind.omb.get(code) or dt.present(rep.value(2))
    return compact({"system": tables.CDC_RACE_ETHNICITY, "code": code, "display": display}), (
        code in kind.omb
    )


def _is_cdc(code: str, system_name: str) -> bool:
    return bool(_CDC_CODE.match(code)) and (not system_name or system_name in _CDC_NAMES)


def _null_flavor(code: str) -> dict:
    return {"system": tables.V3_NULL_FLAVOR, "code": code, "display": RACE_NULL_FLAVORS[code]}


# ---- NK1: RelatedPerson -----------------------------------------------------------------


def related_person(
    nk1: Segment, position: int, facility: str, patient_id: str, offset: str | None
) -> dict | None:
    """The RelatedPerson of an NK1; None for a placeholder NK1 that names nobody.

    NK1-3 relationship keeps its v2-0063 coding and gains the IG's v3-RoleCode (or
    v2-0131) one; NK1-7 contact role is a second relationship; NK1-5 home and NK1-6
    business numbers; NK1-8/9 the period of the relationship.
    """
    names = [n for n in map(dt.xpn_to_human_name, nk1.repetitions(2)) if n]
    telecom = [dt.xtn_to_contact_point(rep, "home") for rep in nk1.repetitions(5)]
    telecom += [dt.xtn_to_contact_point(rep, "work") for rep in nk1.repetitions(6)]
    relationship = [
        r for r in (_relationship(nk1, facility), _contact_role(nk1, facility)) if r
    ]
    person = {
        "name": names,
        "relationship": relationship,
        "telecom": [t for t in telecom if t],
        "address": [a for a in map(dt.xad_to_address, nk1.repetitions(4)) if a],
    }
    if not compact(person):
        return None
    set_id = dt.present(nk1.value(1)) or str(position)
    key = {"system": f"Patient/{patient_id}", "value": f"NK1|{set_id}"}
    resource = {
        "resourceType": "RelatedPerson",
        "id": resource_id("RelatedPerson", facility, key),
        "patient": _patient_ref(patient_id),
        **person,
        "gender": administrative_gender(nk1, 15),
        "birthDate": dt.to_fhir_date(nk1.value(16), "NK1-16"),
        "period": compact({
            "start": dt.to_fhir_datetime(nk1.value(8), "NK1-8", offset),
            "end": dt.to_fhir_datetime(nk1.value(9), "NK1-9", offset),
        }),
    }
    return compact(resource)


def _relationship(nk1: Segment, facility: str) -> dict | None:
    """NK1-3 through table 0063; a local code (0063 names it, or it is not in 0063) is
    kept as the sender coded it."""
    rep = dt.first_rep(nk1, 3)
    code, name = _code(nk1, 3), dt.present(nk1.value(3, 3)).upper()
    if rep is None or code not in RELATIONSHIP or name not in ("", "HL70063"):
        return cwe_to_codeable_concept(rep, facility)
    codings = [{"system": tables.V2_0063, "code": code, "display": RELATIONSHIP[code]}]
    if code in RELATIONSHIP_ROLE:
        codings.append(RELATIONSHIP_ROLE[code].as_fhir())
    return {"coding": codings}


def _contact_role(nk1: Segment, facility: str) -> dict | None:
    """NK1-7 through table 0131."""
    code = _code(nk1, 7)
    if code in CONTACT_ROLE:
        display = CONTACT_ROLE[code]
        return {"coding": [{"system": tables.V2_0131, "code": code, "display": display}]}
    return cwe_to_codeable_concept(dt.first_rep(nk1, 7), facility)


# ---- AL1: AllergyIntolerance ------------------------------------------------------------


def allergy(al1: Segment, facility: str, patient_id: str, offset: str | None) -> dict:
    """The AllergyIntolerance of an AL1; fails naming AL1-3 when it names no allergen.

    clinicalStatus is active (an ADT lists current allergies) and verificationStatus
    unconfirmed; AL1-2 gives category (and type "allergy"), AL1-4 criticality, AL1-5 the
    manifestations of one reaction, AL1-6 the onset.
    """
    substance = text_or_concept(dt.first_rep(al1, 3), facility)
    if substance is None:
        raise MappingError("names no allergen, so the allergy cannot be recorded",
                           field="AL1-3")
    statement = _no_known_allergy(substance)
    kind = _code(al1, 2)
    key = {"system": f"Patient/{patient_id}", "value": _key(substance)}
    manifestations = [c for c in (text_or_concept(r, facility) for r in al1.repetitions(5)) if c]
    resource = {
        "resourceType": "AllergyIntolerance",
        "id": resource_id("AllergyIntolerance", facility, key),
        "clinicalStatus": {"coding": [dict(_ALLERGY_ACTIVE)]},
        "verificationStatus": {"coding": [dict(_ALLERGY_UNCONFIRMED)]},
        "type": "allergy" if kind in ALLERGY_TYPES else None,
        "category": [ALLERGY_CATEGORY[kind]] if kind in ALLERGY_CATEGORY else [],
        "criticality": None if statement else CRITICALITY.get(_code(al1, 4)),
        "code": statement or substance,
        "patient": _patient_ref(patient_id),
        "onsetDateTime": dt.to_fhir_datetime(al1.value(6), "AL1-6", offset),
        "reaction": [] if statement or not manifestations else [
            {"manifestation": manifestations}
        ],
    }
    return compact(resource)


def _no_known_allergy(substance: dict) -> dict | None:
    """The SNOMED CT "no known ... allergy" concept for an AL1-3 that states there is
    none, keeping the sender's coding beside it; None for a real allergen."""
    words = [substance.get("text", "")]
    words += [c.get(k, "") for c in substance.get("coding", []) for k in ("code", "display")]
    for word in words:
        found = NO_KNOWN_ALLERGY.get(word.strip().upper())
        if found is not None:
            return {"coding": [found.as_fhir(), *substance.get("coding", [])],
                    "text": found.display}
    return None


# ---- DG1: Condition ---------------------------------------------------------------------


def condition(
    dg1: Segment, facility: str, patient_id: str, encounter_id: str | None, offset: str | None
) -> dict:
    """The Condition (an encounter diagnosis) of a DG1; fails naming DG1-3 when neither
    DG1-3 nor DG1-4 says what the diagnosis is.

    DG1-3 is coded in DG1-2's system when it names none, with I10/I9 read as ICD-10-CM /
    ICD-9-CM; DG1-4 is its text. DG1-6 type is a second category (v2-0052) and sets
    verificationStatus; DG1-5 is recordedDate.
    """
    code = cwe_to_codeable_concept(dt.first_rep(dg1, 3), facility, _coding_method(dg1, facility),
                                   tables.DIAGNOSIS_CODING_SYSTEMS)
    description = dt.present(dg1.value(4))
    if code is None and not description:
        raise MappingError("has no diagnosis code, nor a description in DG1-4", field="DG1-3")
    code = code or {}
    if description and "text" not in code:
        code["text"] = description
    scope = f"Encounter/{encounter_id}" if encounter_id else f"Patient/{patient_id}"
    kind = _code(dg1, 6)
    known = DIAGNOSIS_TYPE.get(kind)
    resource = {
        "resourceType": "Condition",
        "id": resource_id("Condition", facility, {"system": scope, "value": _key(code)}),
        "verificationStatus": _verification(known[1]) if known else None,
        "category": [dict(_ENCOUNTER_DIAGNOSIS), *_diagnosis_type(dg1, kind, facility)],
        "code": code,
        "subject": _patient_ref(patient_id),
        "encounter": {"reference": f"urn:uuid:{encounter_id}"} if encounter_id else None,
        "recordedDate": dt.to_fhir_datetime(dg1.value(5), "DG1-5", offset),
    }
    return compact(resource)


def _coding_method(dg1: Segment, facility: str) -> Bound | None:
    """DG1-2 (diagnosis coding method, withdrawn in v2.5) as the system of a DG1-3 code
    sent without one."""
    method = dt.present(dg1.value(2))
    if not method:
        return None
    return Bound(coding_system(method, facility, tables.DIAGNOSIS_CODING_SYSTEMS))


def _verification(code: str) -> dict:
    return {"coding": [{"system": _CONDITION_VERIFICATION, "code": code,
                        "display": _VERIFICATION_DISPLAY[code]}]}


def _diagnosis_type(dg1: Segment, kind: str, facility: str) -> list[dict]:
    if kind in DIAGNOSIS_TYPE:
        return [{"coding": [{"system": tables.V2_0052, "code": kind,
                             "display": DIAGNOSIS_TYPE[kind][0]}]}]
    other = cwe_to_codeable_concept(dt.first_rep(dg1, 6), facility)
    return [other] if other else []


# ---- IN1: Coverage ----------------------------------------------------------------------


def coverage(in1: Segment, facility: str, patient_id: str) -> dict:
    """The Coverage of an IN1; fails naming IN1-3 when neither IN1-3 (company id) nor
    IN1-4 (company name) says who pays, since a Coverage must name its payor.

    The payor is a display (IN1-4) and identifier (IN1-3) only, no Organization resource;
    identifiers are IN1-36 policy number (type SN, system urn:conduit:id:<IN1-3 company
    id>: policy numbers are the company's) and IN1-49 insured's ids; subscriberId is
    IN1-36, else IN1-49's first; IN1-17 relationship; the beneficiary is the Patient; class
    is IN1-2 plan and IN1-8/9 group; order is IN1-22 priority, else the IN1-1 set id.
    """
    company = _payor(in1, facility)
    policy = dt.present(in1.value(36))
    member_ids = [i for i in (dt.cx_to_identifier(r, facility) for r in in1.repetitions(49)) if i]
    plan = dt.present(in1.value(2))
    key = {"system": f"Patient/{patient_id}",
           "value": f"{plan}|{policy or (member_ids[0]['value'] if member_ids else '')}"}
    relationship = _subscriber_relationship(in1)
    resource = {
        "resourceType": "Coverage",
        "id": resource_id("Coverage", facility, key),
        "identifier": [i for i in (_policy_identifier(in1, policy), *member_ids) if i],
        "status": "active",
        "type": cwe_to_codeable_concept(dt.first_rep(in1, 15), facility),
        "subscriber": _subscriber(in1, relationship, patient_id),
        "subscriberId": policy or (member_ids[0]["value"] if member_ids else None),
        "beneficiary": _patient_ref(patient_id),
        "relationship": relationship,
        "period": compact({
            "start": dt.to_fhir_date(in1.value(12), "IN1-12"),
            "end": dt.to_fhir_date(in1.value(13), "IN1-13"),
        }),
        "payor": [company],
        "class": _coverage_classes(in1),
        "order": _order(in1),
    }
    return compact(resource)


def _payor(in1: Segment, facility: str) -> dict:
    ident = next((i for i in (dt.cx_to_identifier(r, facility) for r in in1.repetitions(3))
                  if i), None)
    name = dt.present(in1.value(4))
    if ident is None and not name:
        raise MappingError("is empty and so is IN1-4: the coverage names no insurance "
                           "company (payor)", field="IN1-3")
    return compact({"identifier": ident, "display": name})


def _policy_identifier(in1: Segment, policy: str) -> dict | None:
    if not policy:
        return None
    company = dt.present(in1.value(3))
    ident = {
        "type": {"coding": [tables.SUBSCRIBER_NUMBER.as_fhir()]},
        "system": dt.hd_system(company) if company else None,
        "value": policy,
    }
    return compact(ident)


def _subscriber_relationship(in1: Segment) -> dict | None:
    """IN1-17 as subscriber-relationship plus its v2-0063 coding; a code outside table
    0063 (v2.3 senders' numeric codes, say) keeps only its text, since guessing its
    meaning could name the wrong policy holder."""
    code = _code(in1, 17)
    if not code:
        return None
    if code not in RELATIONSHIP:
        return {"text": dt.present(in1.value(17, 2)) or dt.present(in1.value(17))}
    target, display = SUBSCRIBER.get(code, ("other", "Other"))
    return {"coding": [
        {"system": SUBSCRIBER_RELATIONSHIP, "code": target, "display": display},
        {"system": tables.V2_0063, "code": code, "display": RELATIONSHIP[code]},
    ]}


def _subscriber(in1: Segment, relationship: dict | None, patient_id: str) -> dict | None:
    """The Patient when the insured is the patient (IN1-17 SEL), else IN1-16's name."""
    codes = [c["code"] for c in (relationship or {}).get("coding", [])]
    if "self" in codes:
        return _patient_ref(patient_id)
    rep = dt.first_rep(in1, 16)
    name = dt.xpn_to_human_name(rep) if rep is not None else None
    if not name:
        return None
    return {"display": " ".join([*name.get("given", []), name.get("family", "")]).strip()}


def _coverage_classes(in1: Segment) -> list[dict]:
    """IN1-2 plan (id and name) and IN1-8/IN1-9 group (number and name)."""
    found = []
    for kind, value, name in (
        ("plan", in1.value(2), in1.value(2, 2)),
        ("group", in1.value(8), in1.value(9)),
    ):
        if dt.present(value):
            found.append(compact({
                "type": {"coding": [{"system": COVERAGE_CLASS, "code": kind,
                                     "display": kind.capitalize()}]},
                "value": dt.present(value),
                "name": dt.present(name),
            }))
    return found


def _order(in1: Segment) -> int | None:
    for value in (in1.value(22), in1.value(1)):
        text = dt.present(value)
        if text.isdecimal() and 0 < int(text) < 2**31:  # FHIR's positiveInt is 32-bit
            return int(text)
    return None
