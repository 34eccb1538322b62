"""The visit of a message: PV1/PV2 as the Encounter, with its class, type, status from
the event, period, participants (each a Practitioner), locations (each a Location),
hospitalization and account.

The Encounter id is derived from PV1-19 exactly as every earlier mapping derives it
(`v2_fhir.visit_identifier`), so an ORU, an earlier ADT version and this one all update
one Encounter. A PV1 without a visit number is still a visit: it is keyed, with a
warning, on the patient and the admit time (else the message control id).
"""

from __future__ import annotations

from datetime import date, datetime

from engine.errors import MappingError
from engine.formats.hl7v2 import Repetition, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import guard, tolerate
from engine.maplib.fhir import compact, distinct, resource_id
from engine.maplib.v2_codes import Bound, cwe_to_codeable_concept, local_code_system
from engine.maplib.v2_fhir import visit_identifier
from engine.maplib.v2_to_fhir import patient_key, people
from engine.maplib.v2_to_fhir.frame import Build

V2 = tables.V2_SYSTEM
V3_PRIORITY = "http://terminology.hl7.org/CodeSystem/v3-ActPriority"
UCUM = tables.UCUM
DIAGNOSES = tables.DIAGNOSIS_CODING_SYSTEMS  # a US admit reason in I10 is ICD-10-CM, as in DG1
_LOCATION_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"

# Encounter.status by trigger event; the events not here (A08, A31, ...) read it from
# the visit itself (`_status`).
EVENT_STATUS: dict[str, str] = {
    **{e: "in-progress" for e in ("A01", "A02", "A04", "A06", "A07", "A09", "A10", "A12",
                                  "A13", "A15", "A16", "A17", "A22", "A25", "A26")},
    "A03": "finished", "A05": "planned", "A14": "planned", "A11": "cancelled",
    "A27": "cancelled", "A38": "cancelled", "A21": "onleave", "A23": "entered-in-error",
    "A52": "in-progress", "A53": "onleave",
}
# Table 0007 admission type (user-defined; the standard's suggested codes).
ADMISSION_TYPE: dict[str, str] = {
    "A": "Accident", "C": "Elective", "E": "Emergency", "L": "Labor and Delivery",
    "N": "Newborn (Birth in healthcare facility)", "R": "Routine", "U": "Urgent",
}
# PV2-25 visit priority (table 0217) and PV1-4 admission type -> v3-ActPriority.
PRIORITY: dict[str, tuple[str, str]] = {
    "1": ("EM", "emergency"), "2": ("UR", "urgent"), "3": ("EL", "elective"),
}
ADMISSION_PRIORITY: dict[str, tuple[str, str]] = {
    "E": ("EM", "emergency"), "U": ("UR", "urgent"), "C": ("EL", "elective"),
    "R": ("R", "routine"), "A": ("EM", "emergency"),
}
ADMIT_SOURCE: dict[str, str] = {  # table 0023
    "1": "Physician referral", "2": "Clinic referral", "3": "HMO referral",
    "4": "Transfer from a hospital", "5": "Transfer from a skilled nursing facility",
    "6": "Transfer from another health care facility", "7": "Emergency room",
    "8": "Court/law enforcement", "9": "Information not available",
}
HOSPITAL_SERVICE: dict[str, str] = {  # table 0069
    "CAR": "Cardiac Service", "MED": "Medical Service", "PUL": "Pulmonary Service",
    "SUR": "Surgical Service", "URO": "Urology Service",
}
DISCHARGE_DISPOSITION: dict[str, str] = {  # table 0112 (UB-92 patient status codes)
    "01": "Discharged to home or self care (routine discharge)",
    "02": "Discharged/transferred to another short-term general hospital for inpatient care",
    "03": "Discharged/transferred to skilled nursing facility (SNF)",
    "04": "Discharged/transferred to an intermediate-care facility (ICF)",
    "05": "Discharged/transferred to another type of institution for inpatient care",
    "06": "Discharged/transferred to home under care of organized home health service",
    "07": "Left against medical advice or discontinued care",
    "20": "Expired", "30": "Still patient",
}
AMBULATORY_STATUS: dict[str, str] = {  # table 0009
    "A0": "No functional limitations", "A1": "Ambulates with assistive device",
    "A2": "Wheelchair/stretcher bound", "A3": "Comatose; non-responsive",
    "A4": "Disoriented", "A5": "Vision impaired", "A6": "Hearing impaired",
    "A7": "Speech impaired", "A8": "Non-English speaking", "A9": "Functional level unknown",
    "B1": "Oxygen therapy", "B2": "Special equipment (tubes, IVs, catheters)",
    "B3": "Amputee", "B4": "Mastectomy", "B5": "Paraplegic", "B6": "Pregnant",
}
# PV1 participants: field -> v3-ParticipationType (code, display).
PARTICIPANTS: tuple[tuple[str, int, str, str], ...] = (
    ("PV1", 7, "ATND", "attender"), ("PV1", 8, "REF", "referrer"),
    ("PV1", 9, "CON", "consultant"), ("PV1", 17, "ADM", "admitter"),
    ("PV1", 52, "PART", "Participation"), ("PV2", 13, "REF", "referrer"),
)


def encounter(b: Build, pv1: Segment | None = None, *, primary: bool = True,
              visits_only: bool = False) -> dict | None:
    """The Encounter of `pv1` (the message's first PV1 by default, with the PV2 after
    it), kept in `b` (as `b.encounter` when `primary`); None when there is no PV1.

    With `visits_only` (ADT) a placeholder PV1 (`placeholder`) makes no Encounter, and
    one without a visit number is keyed on the patient and admit time, else its class
    and location, so an update finds the same Encounter; otherwise (the builders'
    released behaviour) on the admit time, else the message control id."""
    pv1 = pv1 if pv1 is not None else b.message.segment("PV1")
    if pv1 is None or b.patient is None or (visits_only and placeholder(pv1)):
        return None
    patient = b.patient
    n = b.occurrence(pv1)
    visit = guard("PV1", n, lambda: _encounter(b, pv1, patient, visits_only))
    kept = b.add(visit)
    if primary:
        b.encounter = kept
    return kept


def _encounter(b: Build, pv1: Segment, patient: dict, visits_only: bool) -> dict:
    pv2 = _following(b, pv1, "PV2")
    visit = visit_identifier(pv1, b.facility)
    identifiers = [visit] if visit else []
    key = visit or _fallback_key(b, pv1, patient, visits_only)
    identifiers += [i for i in (dt.cx_to_identifier(rep, b.facility)
                                for rep in pv1.repetitions(50)) if i and i not in identifiers]
    class_code = dt.present(pv1.value(2)).upper()
    end = dt.to_fhir_datetime(pv1.value(45), "PV1-45", b.offset)
    status = _status(b.event, class_code, discharged=end is not None)
    period = compact({"start": dt.to_fhir_datetime(pv1.value(44), "PV1-44", b.offset),
                      "end": end})
    if status == "planned" and pv2 is not None and not period:
        period = _expected(b, pv2)
    return compact({
        "resourceType": "Encounter",
        "id": resource_id("Encounter", *_visit_key(b, pv1, patient, visit, key)),
        "identifier": identifiers,
        "status": status,
        "class": encounter_class(b, class_code),
        "type": _types(b, pv1) or _type_from_class(b, class_code),
        "serviceType": cwe_to_codeable_concept(
            dt.first_rep(pv1, 10), b.facility, Bound(V2 + "0069", HOSPITAL_SERVICE)),
        "priority": _priority(b, pv1, pv2),
        "subject": b.ref(patient),
        "participant": _participants(b, pv1, pv2),
        "period": period,
        "length": _length(pv2),
        "reasonCode": _reasons(b, pv2),
        "hospitalization": _hospitalization(b, pv1),
        "location": _locations(b, pv1, pv2, status),
        "serviceProvider": _service_provider(b, pv1),
    })


def _expected(b: Build, pv2: Segment) -> dict:
    """A planned visit's period: PV2-8 expected admit and PV2-9 expected discharge."""
    return compact({"start": dt.to_fhir_datetime(pv2.value(8), "PV2-8", b.offset),
                    "end": dt.to_fhir_datetime(pv2.value(9), "PV2-9", b.offset)})


def _reasons(b: Build, pv2: Segment | None) -> list[dict]:
    """PV2-3 admit reason, then PV2-4 transfer reason."""
    if pv2 is None:
        return []
    reps = pv2.repetitions(3) + pv2.repetitions(4)
    found = [c for c in (cwe_to_codeable_concept(rep, b.facility, None, DIAGNOSES)
                         for rep in reps) if c]
    return distinct(found)


def _following(b: Build, segment: Segment, name: str) -> Segment | None:
    """The `name` segment right after `segment` (before the next segment of its kind)."""
    segments = b.message.segments
    start = next(i for i, s in enumerate(segments) if s is segment)
    for s in segments[start + 1:]:
        if s.name == segment.name or s.name == "PID":
            return None
        if s.name == name:
            return s
    return None


def unknown(b: Build, key: dict) -> dict:
    """The visit of results sent without a PV1, keyed on `key` within the patient: status
    unknown, class UNK and the general encounter type (R4 and US Core require them), no
    more, since the message says no more. The reference converter's ORU makes this
    Encounter too, so the results still say they belong to a visit."""
    assert b.patient is not None
    kept = b.add({
        "resourceType": "Encounter",
        "id": resource_id("Encounter", b.facility, {
            "system": f"Patient/{b.patient['id']}", "value": f"results|{key['value']}"}),
        "status": "unknown",
        "class": encounter_class(b, ""),
        "type": _type_from_class(b, ""),
        "subject": b.ref(b.patient),
    })
    assert kept is not None
    return kept


def placeholder(pv1: Segment) -> bool:
    """A PV1 that names no visit: no visit number, location, admit time or doctor, and a
    patient class that says none (N not applicable, U unknown, or empty): what senders
    put where the message structure asks for a PV1, "PV1|1|N". A class such as I or O is
    a fact about the visit (the reference converter keeps it), so it makes an Encounter."""
    if dt.present(pv1.value(2)).upper() not in ("", "N", "U"):
        return False
    return not any(dt.present(pv1.value(n)) for n in (19, 3, 44, 7, 8, 9, 17))


def _visit_key(b: Build, pv1: Segment, patient: dict, visit: dict | None, key: dict
               ) -> tuple[str, dict]:
    """Where PV1-19's visit number is unique, and its key there
    (`rules.numbers_within_patient`); else within MSH-4 as sent."""
    if visit is None or not b.rules.numbers_within_patient:
        return b.facility, key
    rep = next((r for r in pv1.repetitions(19) if dt.present(r.value(1))), None)
    return patient_key.number_key(rep, visit, b.facility, patient["id"])


def _fallback_key(b: Build, pv1: Segment, patient: dict, visits_only: bool) -> dict:
    """Without a visit number: the patient and the admit time, else (`visits_only`) the
    class and location, so an updated message still updates one Encounter, or the
    message control id."""
    last = "class and location" if visits_only else "message control id"
    tolerate(MappingError("has no visit number; the Encounter is keyed on the patient and "
                          f"the admit time (else the {last})", field=b.field(pv1, 19)))
    when = dt.present(pv1.value(44))
    if not when and not visits_only:
        when = dt.present(b.message.segments[0].value(10))
    if not when:
        rep = dt.first_rep(pv1, 3)
        when = "|".join((dt.present(pv1.value(2)).upper(),
                         dt.pl_display(rep).upper() if rep is not None else ""))
    return {"system": f"Patient/{patient['id']}", "value": f"PV1|{when}"}


def _status(event: str, class_code: str, *, discharged: bool) -> str:
    if event in EVENT_STATUS:
        return EVENT_STATUS[event]
    if discharged:
        return "finished"
    return "planned" if class_code == "P" else "in-progress"


def encounter_class(b: Build, code: str) -> dict:
    """PV1-2 through table 0004 (v3-ActCode where the IG maps it); a local code keeps
    the sender's own system; an empty one is the null flavor UNK (class is required)."""
    if not code:
        return tables.PATIENT_CLASS_UNKNOWN.as_fhir()
    known = tables.PATIENT_CLASS.get(code)
    if known is None:
        return {"system": local_code_system(b.facility, "HL70004"), "code": code}
    return known.as_fhir()


def _types(b: Build, pv1: Segment) -> list[dict]:
    """PV1-4 admission type (table 0007) and PV1-18 patient type (the sender's codes)."""
    admission = cwe_to_codeable_concept(dt.first_rep(pv1, 4), b.facility,
                                        Bound(V2 + "0007", ADMISSION_TYPE))
    patient_type = cwe_to_codeable_concept(dt.first_rep(pv1, 18), b.facility,
                                           Bound(local_code_system(b.facility, "HL70018")))
    return [t for t in (admission, patient_type) if t]


SNOMED = "http://snomed.info/sct"
# US Core requires Encounter.type (extensible to SNOMED CT "patient encounter procedure"
# descendants): a visit whose PV1-4 and PV1-18 are empty is typed by its patient class,
# the general code where the class says no more.
CLASS_TYPE: dict[str, tuple[str, str]] = {
    "I": ("32485007", "Hospital admission (procedure)"),
    "E": ("50849002", "Emergency room admission (procedure)"),
}
ENCOUNTER_PROCEDURE = ("308335008", "Patient encounter procedure (procedure)")


def _type_from_class(b: Build, class_code: str) -> list[dict] | None:
    """The type a visit sent without one has by its class (US Core requires one)."""
    code, display = CLASS_TYPE.get(class_code, ENCOUNTER_PROCEDURE)
    return [{"coding": [{"system": SNOMED, "code": code, "display": display}],
             "text": display.removesuffix(" (procedure)")}]


def _priority(b: Build, pv1: Segment, pv2: Segment | None) -> dict | None:
    """PV2-25 visit priority, else what PV1-4's admission type says of urgency."""
    code = dt.present(pv2.value(25)).upper() if pv2 is not None else ""
    found = PRIORITY.get(code)
    if found is None and code:
        return cwe_to_codeable_concept(dt.first_rep(pv2, 25), b.facility,
                                       Bound(V2 + "0217", {}))
    found = found or ADMISSION_PRIORITY.get(dt.present(pv1.value(4)).upper())
    if found is None:
        return None
    return {"coding": [{"system": V3_PRIORITY, "code": found[0], "display": found[1]}]}


# ROL-3 role (table 0443) -> v3-ParticipationType, for ROL segments of the visit.
ROLE_PARTICIPATION: dict[str, tuple[str, str]] = {
    "AD": ("ADM", "admitter"), "AT": ("ATND", "attender"), "CP": ("CON", "consultant"),
    "RP": ("REF", "referrer"), "RT": ("REF", "referrer"), "PP": ("PPRF", "primary performer"),
    "FHCP": ("PART", "Participation"),
}
V2_0443 = V2 + "0443"


def segments_after(b: Build, anchor: Segment, name: str, through: frozenset[str]) -> list[Segment]:
    """The `name` segments that follow `anchor`, with only `through` segments between."""
    segments = b.message.segments
    start = next(i for i, s in enumerate(segments) if s is anchor)
    found: list[Segment] = []
    for s in segments[start + 1:]:
        if s.name == name:
            found.append(s)
        elif s.name not in through:
            break
    return found


def _participants(b: Build, pv1: Segment, pv2: Segment | None) -> list[dict]:
    found: list[dict] = []
    for name, field, code, display in PARTICIPANTS:
        segment = pv1 if name == "PV1" else pv2
        for rep in (segment.repetitions(field) if segment is not None else []):
            who = people.practitioner(b, rep)
            if who is None:
                continue
            found.append({
                "type": [{"coding": [{"system": tables.V3_PARTICIPATION_TYPE, "code": code,
                                      "display": display}]}],
                "individual": {**b.ref(who), "display": dt.xcn_display(rep) or None},
            })
    for rol in segments_after(b, pv1, "ROL", _VISIT_PARTIES):
        found += _role(b, rol)
    for prt in segments_after(b, pv1, "PRT", _VISIT_PARTIES):
        found += _role(b, prt, fields=_PRT_FIELDS)
    return [compact({**p, "individual": compact(p["individual"])}) for p in found]


def practitioner_roles(b: Build) -> list[dict]:
    """Each ROL person with its role (ROL-3), period (ROL-5/6), location (ROL-13) and
    organization (ROL-14) as a PractitionerRole, as the reference converter makes them,
    and each person of a v2.7+ PRT of the patient or the visit (role PRT-4, period
    PRT-11/12, location PRT-9, organization PRT-8); a ROL or PRT whose action is DE
    (delete) makes none. Called by builders that want them."""
    made: list[dict] = []
    parties = [(rol, (3, 4, 5, 6, 13, 14, V2_0443)) for rol in b.message.all("ROL")]
    parties += [(prt, (4, 5, 11, 12, 9, 8, V2 + "0912")) for prt in _party_prts(b)]
    for rol, (role, person, start, end, where, org_field, table) in parties:
        if dt.present(rol.value(2)).upper() == "DE":
            continue
        concept = cwe_to_codeable_concept(dt.first_rep(rol, role), b.facility, Bound(table, {}))
        place = location(b, dt.first_rep(rol, where))
        org = people.xon_organization(b, dt.first_rep(rol, org_field))
        period = compact({
            "start": dt.to_fhir_datetime(rol.value(start), b.field(rol, start), b.offset),
            "end": dt.to_fhir_datetime(rol.value(end), b.field(rol, end), b.offset)})
        for rep in rol.repetitions(person):
            who = people.practitioner(b, rep)
            if who is None:
                continue
            key = {"system": f"Practitioner/{who['id']}",
                   "value": "|".join(c.get("code", "") for c in (concept or {}).get(
                       "coding", [])) or (concept or {}).get("text", "")}
            made.append(b.add(compact({
                "resourceType": "PractitionerRole",
                "id": resource_id("PractitionerRole", b.facility, key),
                "period": period,
                "practitioner": b.ref(who),
                "organization": b.ref(org) if org else None,
                "code": [concept] if concept else None,
                "location": [b.ref(place)] if place else None,
            }), merge=True))
    return made


def _party_prts(b: Build) -> list[Segment]:
    """The PRT of the patient (after PID/PD1) and of the visit (after PV1/PV2), not those
    of an order or a result."""
    found: list[Segment] = []
    for anchor in (b.message.segment("PID"), b.message.segment("PV1")):
        if anchor is not None:
            found += segments_after(b, anchor, "PRT", _VISIT_PARTIES | {"PD1"})
    return found


# The segments a visit's participants follow PV1 in; ROL and PRT (v2.7+) fields: role,
# person, period start and end, and the role table.
_VISIT_PARTIES = frozenset({"PV2", "ZPV", "ROL", "PRT"})
_ROL_FIELDS = (3, 4, 5, 6, V2_0443)
_PRT_FIELDS = (4, 5, 11, 12, V2 + "0912")


def _role(b: Build, rol: Segment, fields: tuple = _ROL_FIELDS) -> list[dict]:
    """A visit's ROL (or PRT, by `fields`): each ROL-4 (PRT-5) person with ROL-3's (PRT-4)
    role (the table's code and the v3 type), its period ROL-5/6 (PRT-11/12); one whose
    action (ROL-2, PRT-2) is DE (delete) names nobody now."""
    role, person, start, end, table = fields
    if dt.present(rol.value(2)).upper() == "DE":
        return []
    code = dt.present(rol.value(role)).upper()
    concept = cwe_to_codeable_concept(dt.first_rep(rol, role), b.facility, Bound(table, {}))
    v3 = ROLE_PARTICIPATION.get(code)
    if v3 is not None:
        concept = {"coding": [{"system": tables.V3_PARTICIPATION_TYPE, "code": v3[0],
                               "display": v3[1]}, *(concept or {}).get("coding", [])]}
    period = compact({
        "start": dt.to_fhir_datetime(rol.value(start), b.field(rol, start), b.offset),
        "end": dt.to_fhir_datetime(rol.value(end), b.field(rol, end), b.offset)})
    found = []
    for rep in rol.repetitions(person):
        who = people.practitioner(b, rep)
        if who is not None:
            found.append(compact({"type": [concept] if concept else None, "period": period,
                                  "individual": {**b.ref(who),
                                                 "display": dt.xcn_display(rep) or None}}))
    return found


def length_from_period(visit: dict | None) -> None:
    """Encounter.length, when PV2-11 did not say it, from a period with a start and an
    end: whole minutes between two times, else whole days between two dates."""
    period = (visit or {}).get("period", {})
    if visit is None or "length" in visit or not {"start", "end"} <= set(period):
        return
    start, end = period["start"], period["end"]
    if "T" in start and "T" in end:
        minutes = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
        value, unit = int(minutes // 60), "min"
    elif len(start) == len(end) == 10:
        value, unit = (date.fromisoformat(end) - date.fromisoformat(start)).days, "d"
    else:
        return
    if value >= 0:
        visit["length"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _length(pv2: Segment | None) -> dict | None:
    """PV2-11 actual length of inpatient stay, in days."""
    days = dt.parse_nm(dt.present(pv2.value(11))) if pv2 is not None else None
    if days is None:
        return None
    return {"value": days, "unit": "d", "system": UCUM, "code": "d"}


def _hospitalization(b: Build, pv1: Segment) -> dict | None:
    pre_admit = next((i for i in (dt.cx_to_identifier(rep, b.facility)
                                  for rep in pv1.repetitions(5)) if i), None)
    readmission = dt.present(pv1.value(13)).upper()
    destination = _destination(b, pv1)
    return compact({
        "preAdmissionIdentifier": pre_admit,
        "admitSource": cwe_to_codeable_concept(dt.first_rep(pv1, 14), b.facility,
                                               Bound(V2 + "0023", ADMIT_SOURCE)),
        "reAdmission": {"coding": [{"system": V2 + "0092", "code": "R",
                                    "display": "Re-admission"}]} if readmission == "R" else None,
        "dietPreference": [c for c in (cwe_to_codeable_concept(rep, b.facility)
                                       for rep in pv1.repetitions(38)) if c],
        "specialCourtesy": [c for c in (cwe_to_codeable_concept(rep, b.facility)
                                        for rep in pv1.repetitions(16)) if c],
        "specialArrangement": [c for c in (cwe_to_codeable_concept(
            rep, b.facility, Bound(V2 + "0009", AMBULATORY_STATUS))
            for rep in pv1.repetitions(15)) if c],
        "destination": b.ref(destination) if destination else None,
        "dischargeDisposition": cwe_to_codeable_concept(
            dt.first_rep(pv1, 36), b.facility, Bound(V2 + "0112", DISCHARGE_DISPOSITION)),
    }) or None


def _destination(b: Build, pv1: Segment) -> dict | None:
    """PV1-37 discharged-to location (a DLD: its location code) as a Location."""
    name = dt.present(pv1.value(37, 1))
    if not name:
        return None
    key = {"system": "urn:conduit:discharge-location", "value": name.upper()}
    return b.add({"resourceType": "Location", "id": resource_id("Location", b.facility, key),
                  "name": name, "mode": "instance"}, merge=True)


# PV1 location fields: (segment, field, status when the encounter is current).
_LOCATION_FIELDS: tuple[tuple[str, int, str | None], ...] = (
    ("PV1", 3, None), ("PV1", 11, None), ("PV1", 6, "completed"),
    ("PV1", 43, "completed"), ("PV1", 42, "planned"), ("PV2", 1, "planned"),
)
_CURRENT_STATUS = {"in-progress": "active", "onleave": "active", "planned": "planned",
                   "finished": "completed"}


def _locations(b: Build, pv1: Segment, pv2: Segment | None, status: str) -> list[dict]:
    """PV1-3 current and PV1-11 temporary locations (their status follows the visit),
    PV1-6 and PV1-43 prior ones (completed), PV1-42 and PV2-1 pending ones (planned)."""
    found: list[dict] = []
    for name, field, fixed in _LOCATION_FIELDS:
        segment = pv1 if name == "PV1" else pv2
        rep = dt.first_rep(segment, field)
        place = location(b, rep)
        if place is None:
            continue
        found.append(compact({"location": {**b.ref(place), "display": place["name"]},
                              "status": fixed or _CURRENT_STATUS.get(status)}))
    return distinct(found)


def _service_provider(b: Build, pv1: Segment) -> dict | None:
    """PV1-39 servicing facility, else the facility of PV1-3 (PL-4), as an Organization."""
    name = dt.present(pv1.value(39)) or dt.present(pv1.value(3, 4))
    found = people.organization(b, name) if name else None
    return b.ref(found) if found else None


def location(b: Build, rep: Repetition | None) -> dict | None:
    """The Location a PL names (point of care / room / bed, in its facility), kept once
    in `b`; None when it names nothing."""
    if rep is None:
        return None
    display = dt.pl_display(rep)
    if not display:
        return None
    facility = dt.present(rep.value(4, 1)) or b.facility
    key = {"system": f"urn:conduit:location:{facility}", "value": display.upper()}
    return b.add(compact({
        "resourceType": "Location",
        "id": resource_id("Location", b.facility, key),
        "name": display,
        "mode": "instance",
        "physicalType": _physical_type(rep),
    }), merge=True)


def _physical_type(rep: Repetition) -> dict | None:
    """The most specific part a PL names: bed, else room, else ward (point of care)."""
    for component, code, display in ((3, "bd", "Bed"), (2, "ro", "Room"), (1, "wa", "Ward")):
        if dt.present(rep.value(component)):
            return {"coding": [{"system": _LOCATION_TYPE, "code": code, "display": display}]}
    return None


# ---- ACC: the accident that brought the patient --------------------------------------

ACCIDENT_CODE: dict[str, str] = {  # table 0050 (user-defined; the standard's suggestions)
    "AA": "Auto accident", "AP": "Airplane accident", "BT": "Boating accident",
    "CH": "Chemical accident", "EL": "Electrical accident", "FA": "Fall",
    "HA": "Home accident", "MA": "Machinery accident", "MV": "Motor vehicle accident",
    "OT": "Other", "SP": "Sports accident", "WA": "Work accident",
}
_OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_INDICATORS = ((5, "Job related"), (6, "Death"), (10, "Police notified"))


def accident(b: Build) -> dict | None:
    """The message's ACC as an Observation of the patient at the visit: what kind of
    accident (ACC-2, table 0050, else "Accident"), when (ACC-1), who entered it (ACC-7,
    the performer) and, as notes, where (ACC-3, ACC-11), the auto accident state (ACC-4),
    the description (ACC-8) and the Y/N indicators (job related, death, police).
    Categorised survey (asked at registration), as the other registration answers."""
    acc = b.message.segment("ACC")
    if acc is None or b.patient is None:
        return None
    return guard("ACC", 1, lambda: _accident(b, acc))


def _accident(b: Build, acc: Segment) -> dict | None:
    assert b.patient is not None
    kind = cwe_to_codeable_concept(dt.first_rep(acc, 2), b.facility,
                                   Bound(V2 + "0050", ACCIDENT_CODE))
    when = dt.to_fhir_datetime(acc.value(1), "ACC-1", b.offset)
    rep = dt.first_rep(acc, 11)
    address = dt.xad_to_address(rep) if rep is not None else None
    place = dt.present(acc.value(3)) or (address or {}).get("text") or ", ".join(
        p for p in [*(address or {}).get("line", []), (address or {}).get("city", ""),
                    (address or {}).get("state", "")] if p)
    notes = [f"Location: {place}" if place else "",
             f"Auto accident state: {s}" if (s := dt.present(acc.value(4))) else "",
             dt.present(acc.value(8))]
    notes += [f"{label}: {'yes' if flag == 'Y' else 'no'}" for n, label in _INDICATORS
              if (flag := dt.present(acc.value(n)).upper()) in ("Y", "N")]
    if kind is None and when is None and not any(notes):
        return None
    entered = people.practitioner(b, dt.first_rep(acc, 7))
    key = {"system": f"Patient/{b.patient['id']}", "value": f"ACC|{acc.value(1)}"}
    return b.add(compact({
        "resourceType": "Observation",
        "id": resource_id("Observation", b.facility, key),
        "status": "final",
        "category": [{"coding": [{"system": _OBSERVATION_CATEGORY, "code": "survey",
                                  "display": "Survey"}]}],
        "code": kind or {"text": "Accident"},
        "subject": b.ref(b.patient),
        "encounter": b.encounter_ref(),
        "effectiveDateTime": when,
        "performer": [b.ref(entered)] if entered else None,
        "note": [{"text": n} for n in notes if n],
    }))


# ---- PV1-54: the episode of care the visit belongs to --------------------------------

_EPISODE_STATUS = {"planned": "planned", "in-progress": "active", "onleave": "active",
                   "arrived": "active", "triaged": "active", "finished": "finished",
                   "cancelled": "cancelled", "entered-in-error": "entered-in-error"}


def _encounter_diagnosis(condition: dict) -> bool:
    return any(c.get("code") == "encounter-diagnosis" for k in condition.get("category", [])
               for c in k.get("coding", []))


def episode_of_care(b: Build) -> dict | None:
    """PV1-54 service episode identifier (v2.7+; PV1-53 its description) as the
    EpisodeOfCare the visit is part of: the patient, the visit's period, its service
    provider and the message's diagnoses (DG1), its status following the visit's."""
    pv1 = b.message.segment("PV1")
    if pv1 is None or b.patient is None or b.encounter is None:
        return None
    ident = next((i for i in (dt.cx_to_identifier(rep, b.facility)
                              for rep in pv1.repetitions(54)) if i), None)
    if ident is None:
        return None
    visit = b.encounter
    diagnoses = [{"condition": b.ref(c), "rank": n} for n, c in enumerate(
        (c for c in b.resources("Condition") if _encounter_diagnosis(c)), start=1)]
    description = dt.present(pv1.value(53))
    episode = b.add(compact({
        "resourceType": "EpisodeOfCare",
        "id": resource_id("EpisodeOfCare", b.facility, ident),
        "identifier": [ident],
        "status": _EPISODE_STATUS.get(visit.get("status", ""), "active"),
        "type": [{"text": description}] if description else None,
        "diagnosis": diagnoses,
        "patient": b.ref(b.patient),
        "managingOrganization": visit.get("serviceProvider"),
        "period": visit.get("period"),
    }))
    assert episode is not None
    visit["episodeOfCare"] = [b.ref(episode)]
    return episode
