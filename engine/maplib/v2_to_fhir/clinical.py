"""Clinical facts most message types carry: AL1/IAM allergies, DG1 diagnoses, PR1
procedures and PRB problems, each a resource about the message's Patient.

AL1 and DG1 keep the resources (and ids) of `engine.maplib.v2_clinical`, which released
ADT mappings make, so a BAR or DFT updates what the ADT feed wrote; what those mappings
left out (DG1 onset, diagnosing clinician, action code, ...) is added here. IAM, PR1 and
PRB are read only here. Ids are deterministic: an allergy is keyed on its allergen (or
IAM-7), a procedure on PR1-19 (else code and date), a problem on PRB-4 (else its code).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from engine.errors import MappingError
from engine.formats.hl7v2 import Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import tolerate
from engine.maplib import v2_clinical as v2c
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_codes import Bound, coding_system, cwe_to_codeable_concept
from engine.maplib.v2_to_fhir import people
from engine.maplib.v2_to_fhir.frame import Build

_ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
_ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
_CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
_DIAGNOSIS_ROLE = "http://terminology.hl7.org/CodeSystem/diagnosis-role"
ICD10PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
HCPCS = "urn:oid:2.16.840.1.113883.6.285"
V2_0230 = tables.V2_SYSTEM + "0230"  # procedure functional type

_DISPLAY = {
    "active": "Active", "inactive": "Inactive", "resolved": "Resolved",
    "recurrence": "Recurrence", "relapse": "Relapse", "remission": "Remission",
    "confirmed": "Confirmed", "unconfirmed": "Unconfirmed", "provisional": "Provisional",
    "differential": "Differential", "refuted": "Refuted",
    "entered-in-error": "Entered in Error",
}


def _status(system: str, code: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": _DISPLAY[code]}]}


def _when(b: Build, segment: Segment, number: int, component: int = 1) -> str | None:
    """A DTM field as a FHIR dateTime in the sender's zone (a bad one is a warning)."""
    return dt.to_fhir_datetime(segment.value(number, component),
                               f"{segment.name}-{number}", b.offset)


def _practitioners(b: Build, segment: Segment, number: int) -> list[dict]:
    """The Practitioner of every repetition of an XCN field."""
    found = (people.practitioner(b, rep) for rep in segment.repetitions(number))
    return [p for p in found if p]


def notes_after(b: Build, segment: Segment) -> list[dict]:
    """The NTE segments that follow `segment` (its comments), as Annotations with NTE-5
    who entered them (a Practitioner) and NTE-6 when."""
    notes: list[dict] = []
    for nte in following(b, segment, "NTE"):
        text = "\n".join(dt.present(r.value(1)) for r in nte.repetitions(3)).strip()
        if not text:
            continue
        author = people.practitioner(b, dt.first_rep(nte, 5))
        notes.append(compact({
            "authorReference": b.ref(author) if author else None,
            "time": dt.to_fhir_datetime(nte.value(6), "NTE-6", b.offset),
            "text": text,
        }))
    return notes


def following(b: Build, segment: Segment, name: str) -> list[Segment]:
    """The `name` segments right after `segment` (its NTE, its ROL), up to another."""
    segments = b.message.segments
    start = next((i for i, s in enumerate(segments) if s is segment), len(segments))
    found: list[Segment] = []
    for s in segments[start + 1:]:
        if s.name != name:
            break
        found.append(s)
    return found


# ---- AL1 / IAM: AllergyIntolerance ------------------------------------------------------

# Table 0436 sensitivity to causative agent -> AllergyIntolerance.type.
SENSITIVITY_TYPE = {"AL": "allergy", "IN": "intolerance", "AD": "intolerance",
                    "SE": "intolerance"}
# Table 0128 severity -> reaction.severity (U, unknown, gives none).
REACTION_SEVERITY = {"SV": "severe", "MO": "moderate", "MI": "mild"}
# Table 0438 allergy clinical status -> verificationStatus (and clinicalStatus inactive
# for I). P pending, S suspect and D "doubt raised" claim no more than unconfirmed.
ALLERGY_STATUS = {"C": "confirmed", "I": "confirmed", "U": "unconfirmed", "P": "unconfirmed",
                  "S": "unconfirmed", "D": "unconfirmed", "E": "entered-in-error"}


def allergies(b: Build) -> list[dict]:
    """One AllergyIntolerance per AL1 (as released ADT mappings make it) and per IAM; the
    same allergen twice makes one."""
    assert b.patient is not None
    pid = b.patient["id"]
    found = b.each("AL1", lambda al1, n: v2c.allergy(al1, b.facility, pid, b.offset))
    found += b.each("IAM", lambda iam, n: _iam(b, iam))
    return [b.add(r) for r in found]


def _iam(b: Build, iam: Segment) -> dict:
    """The AllergyIntolerance of an IAM (v2.4+ allergy with its own identity and status);
    fails naming IAM-3 when it names no allergen."""
    assert b.patient is not None
    substance = v2c.text_or_concept(dt.first_rep(iam, 3), b.facility)
    if substance is None:
        raise MappingError("names no allergen, so the allergy cannot be recorded",
                           field="IAM-3")
    statement = v2c._no_known_allergy(substance)
    kind = dt.present(iam.value(2)).upper()
    identifier = dt.first_ei(iam, 7, b.facility)
    key = ({"system": identifier["system"], "value": identifier["value"]} if identifier
           else {"system": f"Patient/{b.patient['id']}", "value": v2c._key(substance)})
    verification = _allergy_verification(iam)
    severity = dt.present(iam.value(4)).upper()
    manifestations = [c for c in (v2c.text_or_concept(r, b.facility)
                                  for r in iam.repetitions(5)) if c]
    reaction = compact({"manifestation": manifestations,
                        "severity": REACTION_SEVERITY.get(severity)}) if manifestations else None
    onset = dt.to_fhir_date(iam.value(11), "IAM-11")
    recorder = next(iter(_practitioners(b, iam, 23) or _practitioners(b, iam, 18)), None)
    notes = [{"text": dt.present(iam.value(8))}] if dt.present(iam.value(8)) else []
    return compact({
        "resourceType": "AllergyIntolerance",
        "id": resource_id("AllergyIntolerance", b.facility, key),
        "identifier": [identifier] if identifier else None,
        "clinicalStatus": _allergy_clinical(iam, verification),
        "verificationStatus": _status(_ALLERGY_VERIFICATION, verification),
        "type": (SENSITIVITY_TYPE.get(dt.present(iam.value(9)).upper())
                 or ("allergy" if kind in v2c.ALLERGY_TYPES else None)),
        "category": [v2c.ALLERGY_CATEGORY[kind]] if kind in v2c.ALLERGY_CATEGORY else None,
        "criticality": None if statement else v2c.CRITICALITY.get(severity),
        "code": statement or substance,
        "patient": b.patient_ref(),
        "encounter": b.encounter_ref(),
        "onsetDateTime": onset,
        "onsetString": None if onset else dt.present(iam.value(12)) or None,
        "recordedDate": _when(b, iam, 13) or _when(b, iam, 24),
        "recorder": b.ref(recorder) if recorder else None,
        "asserter": _reporter(b, iam),
        "note": notes + notes_after(b, iam),
        "reaction": [reaction] if reaction and not statement else None,
    })


def _allergy_verification(iam: Segment) -> str:
    """IAM-6 action D (delete) or IAM-17 status E is entered-in-error; else IAM-17."""
    if dt.present(iam.value(6)).upper() == "D":
        return "entered-in-error"
    status = dt.present(iam.value(17)).upper()
    return ALLERGY_STATUS.get(status, "unconfirmed")


def _allergy_clinical(iam: Segment, verification: str) -> dict | None:
    """Active, or inactive for IAM-17 I; none for an entry in error (FHIR ait-2)."""
    if verification == "entered-in-error":
        return None
    inactive = dt.present(iam.value(17)).upper() == "I" or dt.present(iam.value(22))
    return _status(_ALLERGY_CLINICAL, "inactive" if inactive else "active")


def _reporter(b: Build, iam: Segment) -> dict | None:
    """IAM-14 reported by, with IAM-15 relationship: the Patient for SEL, else a
    RelatedPerson (the one this message already names so, else keyed on the name)."""
    assert b.patient is not None
    name = next((n for n in map(dt.xpn_to_human_name, iam.repetitions(14)) if n), None)
    if dt.present(iam.value(15)).upper() == "SEL":
        return b.patient_ref()
    if name is None:
        return None
    key = {"system": f"Patient/{b.patient['id']}", "value": f"reporter|{name_key(name)}"}
    person = same_person(b, compact({
        "resourceType": "RelatedPerson",
        "id": resource_id("RelatedPerson", b.facility, key),
        "patient": b.patient_ref(),
        "relationship": [r for r in (relationship(b, iam, 15),) if r],
        "name": [name],
    }))
    return b.ref(person)


def relationship(b: Build, segment: Segment, number: int) -> dict | None:
    """A table 0063 relationship with the v3-RoleCode (or v2-0131) coding the HL7
    v2-to-FHIR IG adds, as NK1-3 reads; another code as sent."""
    code = dt.present(segment.value(number)).upper()
    if code in v2c.RELATIONSHIP and dt.present(segment.value(number, 3)).upper() in (
            "", "HL70063"):
        codings = [{"system": tables.V2_0063, "code": code, "display": v2c.RELATIONSHIP[code]}]
        if code in v2c.RELATIONSHIP_ROLE:
            codings.append(v2c.RELATIONSHIP_ROLE[code].as_fhir())
        return {"coding": codings}
    return cwe_to_codeable_concept(dt.first_rep(segment, number), b.facility)


def name_key(name: dict) -> str:
    """A HumanName as one upper-case key: given names then family."""
    return " ".join([*name.get("given", []), name.get("family", "")]).strip().upper()


_MANY = ("identifier", "relationship", "telecom", "address")


def same_person(b: Build, person: dict) -> dict:
    """Keep a RelatedPerson, or, when the message already made one with the same name
    (the NK1 who is also the guarantor or the insured), add to that one what it lacked
    (other relationships, ids, numbers) and return it: one person, one resource."""
    names = {name_key(n) for n in person.get("name", [])}
    for kept in b.resources("RelatedPerson"):
        if kept["id"] != person["id"] and names & {name_key(n) for n in kept.get("name", [])}:
            for key, value in person.items():
                if key in _MANY and key in kept:
                    kept[key] += [v for v in value if v not in kept[key]]
                else:
                    kept.setdefault(key, value)
            return kept
    found = b.add(person, merge=True)
    assert found is not None
    return found


# ---- DG1: Condition (encounter diagnosis) -----------------------------------------------


def conditions(b: Build) -> list[dict]:
    """One Condition (an encounter diagnosis) per DG1, the released ADT mappings' resource
    plus onset (DG1-5), recordedDate (DG1-19), identifier (DG1-20), the diagnosing
    clinician (DG1-16), action D (DG1-21) and the Encounter's diagnosis list."""
    assert b.patient is not None
    pid = b.patient["id"]
    visit = b.encounter["id"] if b.encounter is not None else None

    def one(dg1: Segment, n: int) -> dict:
        resource = v2c.condition(dg1, b.facility, pid, visit, b.offset)
        return _diagnosis_details(b, dg1, resource)

    found = [b.add(r) for r in b.each("DG1", one)]
    return found


def _diagnosis_details(b: Build, dg1: Segment, resource: dict) -> dict:
    onset = resource.pop("recordedDate", None)
    identifier = dt.first_ei(dg1, 20, b.facility)
    clinician = next(iter(_practitioners(b, dg1, 16)), None)
    deleted = dt.present(dg1.value(21)).upper() == "D"
    resource.update(compact({
        "identifier": [identifier] if identifier else None,
        "onsetDateTime": onset,
        "recordedDate": _when(b, dg1, 19) or onset,
        "asserter": b.ref(clinician) if clinician else None,
    }))
    if deleted:
        resource["verificationStatus"] = _status(_CONDITION_VERIFICATION, "entered-in-error")
        resource.pop("clinicalStatus", None)
    ordered = ["resourceType", "id", "identifier", "clinicalStatus", "verificationStatus",
               "category", "code", "subject", "encounter", "onsetDateTime", "recordedDate",
               "asserter"]
    resource = {k: resource[k] for k in ordered if k in resource} | resource
    _encounter_diagnosis(b, dg1, resource, deleted)
    return resource


# Table 0052 diagnosis type -> Encounter.diagnosis.use (A admitting, F final = discharge).
_DIAGNOSIS_USE = {"A": ("AD", "Admission diagnosis"), "F": ("DD", "Discharge diagnosis")}


def _encounter_diagnosis(b: Build, dg1: Segment, condition: dict, deleted: bool) -> None:
    """List the diagnosis on the visit's Encounter, ranked by DG1-15 priority."""
    if b.encounter is None or deleted or "encounter" not in condition:
        return
    ref = b.ref(condition)
    listed = b.encounter.setdefault("diagnosis", [])
    if any(d["condition"] == ref for d in listed):
        return
    use = _DIAGNOSIS_USE.get(dt.present(dg1.value(6)).upper())
    rank = dt.present(dg1.value(15))
    listed.append(compact({
        "condition": ref,
        "use": {"coding": [{"system": _DIAGNOSIS_ROLE, "code": use[0], "display": use[1]}]}
        if use else None,
        "rank": int(rank) if rank.isdecimal() and int(rank) > 0 else None,
    }))


# ---- PR1: Procedure ---------------------------------------------------------------------

PROCEDURE_CODING_SYSTEMS: dict[str, str] = {
    **tables.DIAGNOSIS_CODING_SYSTEMS,
    "I10P": ICD10PCS, "ICD10PCS": ICD10PCS, "ICD-10-PCS": ICD10PCS,
    "I9C": tables.ICD9CM, "I9CP": tables.ICD9CM, "C5": tables.CPT, "CPT4": tables.CPT,
    "CPT-4": tables.CPT, "HCPCS": HCPCS, "HCPC": HCPCS, "HPC": HCPCS,
}
# Table 0230 procedure functional type.
FUNCTIONAL_TYPE = {"A": "Anesthesia", "P": "Procedure for treatment (therapeutic, including "
                   "operations)", "I": "Invasive procedure not classified elsewhere (I.V., "
                   "catheter, etc.)", "D": "Diagnostic procedure"}
_PARTICIPATION = tables.V3_PARTICIPATION_TYPE


def procedures(b: Build) -> list[dict]:
    """One Procedure (completed) per PR1."""
    assert b.patient is not None
    made = b.each("PR1", lambda pr1, n: (pr1, b.add(_procedure(b, pr1))))
    found = getattr(b, "procedure_of", {})
    found.update({id(pr1): procedure for pr1, procedure in made})
    b.procedure_of = found  # type: ignore[attr-defined]
    return [procedure for _, procedure in made]


def procedure_of(b: Build, pr1: Segment) -> dict | None:
    """The Procedure `procedures` made of this PR1, if it made one."""
    return getattr(b, "procedure_of", {}).get(id(pr1))


def _procedure(b: Build, pr1: Segment) -> dict:
    """The Procedure of a PR1; fails naming PR1-3 when neither PR1-3 nor PR1-4 says
    which procedure it was."""
    assert b.patient is not None
    method = dt.present(pr1.value(2))
    bound = Bound(coding_system(method, b.facility, PROCEDURE_CODING_SYSTEMS)) if method else None
    code = cwe_to_codeable_concept(dt.first_rep(pr1, 3), b.facility, bound,
                                   PROCEDURE_CODING_SYSTEMS)
    description = dt.present(pr1.value(4))
    if code is None and not description:
        raise MappingError("has no procedure code, nor a description in PR1-4", field="PR1-3")
    code = code or {}
    if description and "text" not in code:
        code["text"] = description
    identifier = dt.first_ei(pr1, 19, b.facility)
    start = _when(b, pr1, 5)
    key = ({"system": identifier["system"], "value": identifier["value"]} if identifier
           else procedure_key(b, code, start))
    deleted = dt.present(pr1.value(20)).upper() == "D"
    location = _treating_unit(b, pr1)
    return compact({
        "resourceType": "Procedure",
        "id": resource_id("Procedure", b.facility, key),
        "identifier": [identifier] if identifier else None,
        "status": "entered-in-error" if deleted else "completed",
        "category": _functional_type(b, pr1),
        "code": code,
        "subject": b.patient_ref(),
        "encounter": b.encounter_ref(),
        **_performed(b, pr1, start),
        "performer": _performers(b, pr1),
        "location": b.ref(location) if location else None,
        "reasonCode": [c for c in (cwe_to_codeable_concept(r, b.facility, None,
                                                           tables.DIAGNOSIS_CODING_SYSTEMS)
                                   for r in pr1.repetitions(15)) if c],
        "note": notes_after(b, pr1),
    })


def procedure_key(b: Build, code: dict, performed: str | None) -> dict:
    """What identifies a procedure without PR1-19: its code and when, in the visit (else
    the patient), so an FT1-25 charge for it names the same Procedure."""
    assert b.patient is not None
    scope = f"Encounter/{b.encounter['id']}" if b.encounter else f"Patient/{b.patient['id']}"
    return {"system": scope, "value": f"{v2c._key(code)}|{performed or ''}"}


def _performed(b: Build, pr1: Segment, start: str | None) -> dict:
    """PR1-5 as performedDateTime, or with PR1-7 minutes a performedPeriod."""
    if start is None:
        dt.present(pr1.value(7))  # read: a duration without a start says nothing
        return {}
    minutes = dt.to_fhir_decimal(pr1.value(7), "PR1-7")
    if minutes is None or minutes <= 0 or "T" not in start:
        return {"performedDateTime": start}
    begun = datetime.fromisoformat(start)
    end = begun + timedelta(minutes=float(minutes))
    return {"performedPeriod": {"start": start, "end": end.isoformat()}}


def _functional_type(b: Build, pr1: Segment) -> dict | None:
    code = dt.present(pr1.value(6)).upper()
    if code in FUNCTIONAL_TYPE and dt.present(pr1.value(6, 3)).upper() in ("", "HL70230"):
        return {"coding": [{"system": V2_0230, "code": code,
                            "display": FUNCTIONAL_TYPE[code]}]}
    return cwe_to_codeable_concept(dt.first_rep(pr1, 6), b.facility)


_ROLES = ((11, "PPRF", "primary performer", "Surgeon"),
          (8, "SPRF", "secondary performer", "Anesthesiologist"),
          (12, "SPRF", "secondary performer", "Procedure practitioner"))


def _performers(b: Build, pr1: Segment) -> list[dict]:
    """PR1-11 surgeon (primary performer), PR1-8 anesthesiologist and PR1-12 procedure
    practitioners (secondary), each once."""
    found: list[dict] = []
    seen: set[str] = set()
    for number, code, display, text in _ROLES:
        for person in _practitioners(b, pr1, number):
            if person["id"] in seen:
                continue
            seen.add(person["id"])
            found.append({
                "function": {"coding": [{"system": _PARTICIPATION, "code": code,
                                         "display": display}], "text": text},
                "actor": b.ref(person),
            })
    for rol in following(b, pr1, "ROL"):  # the PROCEDURE group's ROL (v2.4+)
        if dt.present(rol.value(2)).upper() == "DE":
            continue
        role = cwe_to_codeable_concept(dt.first_rep(rol, 3), b.facility, _PROVIDER_ROLE)
        for person in _practitioners(b, rol, 4):
            if person["id"] not in seen:
                seen.add(person["id"])
                found.append(compact({"function": role, "actor": b.ref(person)}))
    return found


# Table 0443 provider role (ROL-3), the roles a procedure's ROL names.
_PROVIDER_ROLE = Bound(tables.V2_0443, {
    "AT": "Attending", "AD": "Admitting", "CP": "Consulting Provider",
    "PP": "Primary Care Provider", "RP": "Referring Provider", "AP": "Administering Provider",
    "AI": "Assistant/Alternate Interpreter", "TN": "Technician", "RO": "Responsible Observer",
    "OP": "Ordering Provider",
})


def _treating_unit(b: Build, pr1: Segment) -> dict | None:
    from engine.maplib.v2_to_fhir import visit

    rep = dt.first_rep(pr1, 23)
    return visit.location(b, rep) if rep is not None else None


# ---- PRB: Condition (problem list) ------------------------------------------------------

# PRB-14 life cycle status -> clinicalStatus (codes and the words senders use).
PROBLEM_CLINICAL = {
    "A": "active", "ACTIVE": "active", "I": "inactive", "INACTIVE": "inactive",
    "R": "resolved", "RESOLVED": "resolved", "RE": "recurrence", "RECURRENCE": "recurrence",
    "RL": "relapse", "RELAPSE": "relapse", "RM": "remission", "REMISSION": "remission",
}
# PRB-13 confirmation status -> verificationStatus.
PROBLEM_VERIFICATION = {
    "C": "confirmed", "CONFIRMED": "confirmed", "P": "provisional", "PROVISIONAL": "provisional",
    "PR": "provisional", "PROBABLE": "provisional", "U": "unconfirmed",
    "UNCONFIRMED": "unconfirmed", "D": "differential", "DIFFERENTIAL": "differential",
    "R": "refuted", "RULED OUT": "refuted", "REFUTED": "refuted",
    "E": "entered-in-error", "ERROR": "entered-in-error",
}
_PROBLEM_LIST_ITEM = {"coding": [{"system": _CONDITION_CATEGORY, "code": "problem-list-item",
                                  "display": "Problem List Item"}]}


def problems(b: Build) -> list[dict]:
    """One Condition (a problem-list item) per PRB, with the NTEs after it as notes."""
    assert b.patient is not None
    return [b.add(r) for r in b.each("PRB", lambda prb, n: problem(b, prb))]


def problem(b: Build, prb: Segment) -> dict:
    """The Condition of a PRB; fails naming PRB-3 when it does not say what the problem
    is. PRB-1 DE (or a PC3 message) marks it entered-in-error."""
    assert b.patient is not None
    rep = dt.first_rep(prb, 3)
    code = (v2c.text_or_concept(rep, b.facility) if rep is not None and len(rep.components()) == 1
            else cwe_to_codeable_concept(rep, b.facility, None, tables.DIAGNOSIS_CODING_SYSTEMS))
    if code is None:
        raise MappingError("names no problem, so it cannot be listed", field="PRB-3")
    identifier = dt.first_ei(prb, 4, b.facility)
    key = ({"system": identifier["system"], "value": identifier["value"]} if identifier
           else {"system": f"Patient/{b.patient['id']}", "value": f"problem|{v2c._key(code)}"})
    action = dt.present(prb.value(1)).upper()
    abated = _when(b, prb, 9)
    verification = ("entered-in-error" if action == "DE" or b.event == "PC3"
                    else _table(prb, 13, PROBLEM_VERIFICATION))
    clinical = None if verification == "entered-in-error" else (
        _table(prb, 14, PROBLEM_CLINICAL) or ("resolved" if abated else "active"))
    onset = _when(b, prb, 16)
    classification = cwe_to_codeable_concept(dt.first_rep(prb, 10), b.facility)
    return compact({
        "resourceType": "Condition",
        "id": resource_id("Condition", b.facility, key),
        "identifier": [identifier] if identifier else None,
        "clinicalStatus": _status(_CONDITION_CLINICAL, clinical) if clinical else None,
        "verificationStatus": (_status(_CONDITION_VERIFICATION, verification)
                               if verification else None),
        "category": [_PROBLEM_LIST_ITEM, *([classification] if classification else [])],
        "severity": cwe_to_codeable_concept(dt.first_rep(prb, 26), b.facility),
        "code": code,
        "subject": b.patient_ref(),
        "encounter": b.encounter_ref(),
        "onsetDateTime": onset,
        "onsetString": None if onset else dt.present(prb.value(17)) or None,
        "abatementDateTime": abated,
        "recordedDate": _when(b, prb, 7) or _when(b, prb, 2),
        "note": _anticipated(b, prb) + notes_after(b, prb),
    })


def _table(segment: Segment, number: int, table: dict[str, str]) -> str | None:
    """A coded status through `table` by code, else by its text; None (and a warning
    naming the field) for a status no table row matches."""
    code, text = (dt.present(segment.value(number, c)).upper() for c in (1, 2))
    if not code and not text:
        return None
    found = table.get(code) or table.get(text)
    if found is None:
        return tolerate(MappingError("holds a status this mapping does not know; left out",
                                     field=f"{segment.name}-{number}"))
    return found


def _anticipated(b: Build, prb: Segment) -> list[dict]:
    """PRB-8 anticipated resolution has no Condition element: it is a note."""
    when = _when(b, prb, 8)
    return [{"text": f"Anticipated resolution: {when}"}] if when else []
