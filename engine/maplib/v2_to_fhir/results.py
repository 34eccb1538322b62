"""OBX anywhere as Observation: every value type, units, ranges, flags, status, who
and what performed it, and the NTE comments that follow it.

`observations(b, obxs)` is the one entry point every message builder uses (ADT, ORU,
OUL, orders, VXU, MDM). A value that cannot be read never costs the message: a number
that is not a number stays the lab's text (valueString) with a warning naming the field;
a date that does not exist is kept as text; an OBX without a test code costs that OBX.

Ids: inside a result group (`key`, the report's key as hl7v2-oru-to-fhir@1 derives it)
an Observation is keyed on OBX-1/OBX-4, exactly as that mapping did, so a resend or an
upgrade updates the results it wrote. Outside one (OBX in an ADT) it is keyed on the
patient, OBX-3, OBX-4 and OBX-14 (else the message control id).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from engine.errors import MappingError
from engine.formats.hl7v2 import Repetition, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import guard, is_lenient, notice, tolerate
from engine.maplib import v2_results as legacy
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_codes import cwe_to_codeable_concept, first_concept
from engine.maplib.v2_documents import encapsulated_attachment, formatted_text, mime_type
from engine.maplib.v2_fhir import annotations
from engine.maplib.v2_orders import (
    keyed,
    order_numbers,
    receiving_facility,
    section_categories,
)
from engine.maplib.v2_to_fhir import people, rules
from engine.maplib.v2_to_fhir.engine_zone import assumed_instant
from engine.maplib.v2_to_fhir.frame import Build

DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
LOINC = "http://loinc.org"
OBSERVATION_CATEGORY = legacy.OBSERVATION_CATEGORY
TEXT_TYPES = frozenset({"TX", "FT"})
# LOINC codes of the vital signs US Core profiles (and a few synonyms senders use).
VITAL_SIGNS = frozenset({
    "85353-1", "9279-1", "8867-4", "2708-6", "59408-5", "8310-5", "8302-2", "9843-4",
    "29463-7", "39156-5", "8480-6", "8462-4", "85354-9", "3141-9", "8287-5", "8306-3",
    "3150-0", "8478-0", "59576-9", "8289-1", "77606-2", "8308-9", "8327-9", "8331-1",
    "3151-8",
})
# A method-specific LOINC vital sign and the generic code FHIR R4's vital signs profiles
# require beside it ("if a more specific code is recorded, the generic code ... should
# be sent"), with the generic code's display.
GENERIC_VITAL_SIGNS: dict[str, tuple[str, str]] = {
    "3141-9": ("29463-7", "Body weight"), "8306-3": ("8302-2", "Body height"),
    "8308-9": ("8302-2", "Body height"), "8331-1": ("8310-5", "Body temperature"),
    "8287-5": ("9843-4", "Head Occipital-frontal circumference"),
}


# Units senders write that are not UCUM but name exactly one UCUM unit (US Core vital
# signs and lab results want the UCUM code); the text stays as sent.
UCUM_ALIASES: dict[str, str] = {
    "mmHg": "mm[Hg]", "mm Hg": "mm[Hg]", "MMHG": "mm[Hg]", "bpm": "/min", "BPM": "/min",
    "beats/min": "/min", "breaths/min": "/min", "/MIN": "/min", "degF": "[degF]",
    "DEGF": "[degF]", "deg F": "[degF]", "\u00b0F": "[degF]", "degC": "Cel",
    "DEGC": "Cel", "deg C": "Cel", "\u00b0C": "Cel", "lb": "[lb_av]", "lbs": "[lb_av]",
    "LB": "[lb_av]", "LBS": "[lb_av]", "in": "[in_i]", "IN": "[in_i]", "inches": "[in_i]",
    "oz": "[oz_av]", "mEq/L": "meq/L", "MEQ/L": "meq/L", "IU/L": "[IU]/L",
    "IU/mL": "[IU]/mL", "mIU/mL": "m[IU]/mL", "uIU/mL": "u[IU]/mL", "mIU/L": "m[IU]/L",
    "K/uL": "10*3/uL", "x10E3/uL": "10*3/uL", "10^3/uL": "10*3/uL", "x10(3)/uL": "10*3/uL",
    "M/uL": "10*6/uL", "x10E6/uL": "10*6/uL", "10^6/uL": "10*6/uL", "MG/DL": "mg/dL",
    "G/DL": "g/dL", "MMOL/L": "mmol/L", "KG": "kg", "CM": "cm", "SEC": "s", "sec": "s",
}


# Under the `vendor_spellings` rule (hl7v2-to-fhir@2): a bare `F` is how vendors write
# Fahrenheit (UCUM's F, farad, is no clinical unit); released versions keep it as text.
VENDOR_UCUM_ALIASES: dict[str, str] = {"F": "[degF]"}


def obx_unit(obx: Segment) -> legacy.Unit:
    """OBX-6 as `v2_results.obx_unit` reads it, and UCUM also when the only unit sent is
    text that parses as UCUM (`^mg/dL`) or a common spelling of one (mmHg, K/uL, lbs)."""
    unit = legacy.obx_unit(obx)
    if rules.current().vendor_spellings and dt.present(obx.value(6, 3)).upper() != "UCUM":
        vendor = VENDOR_UCUM_ALIASES.get(dt.present(obx.value(6, 1)))
        if vendor:
            return legacy.Unit(unit.unit, tables.UCUM, vendor)
    if unit.system or not unit.unit:
        return unit
    sent = dt.present(obx.value(6, 1))
    code = UCUM_ALIASES.get(sent) or UCUM_ALIASES.get(unit.unit) or (
        unit.unit if not sent and legacy.looks_like_ucum(unit.unit) else "")
    return legacy.Unit(unit.unit, tables.UCUM, code) if code else unit


class Context(NamedTuple):
    """What the OBX of one group share (all optional for OBX outside a result group)."""

    key: dict | None = None  # the report's key: Observation ids as ORU@1 made them
    section: str | None = None  # OBR-24; "" is a lab report without a section
    report_status: str = ""  # the report's FHIR status, for OBX without OBX-11
    effective: str | None = None  # OBR-7, for OBX without OBX-14
    issued: str | None = None  # OBR-22 as an instant
    specimen_of: Callable[[Segment], dict | None] | None = None  # the SPM an OBX follows
    ordered: bool = False  # sent with an order (asked at order entry), not its results
    # The observation-category code of OBX the message gives no kind (answers sent with
    # an order, a dose or an appointment: "survey"); None leaves them without one.
    otherwise: str | None = None


def observations(
    b: Build, obxs: list[Segment], *, based_on: list[dict] | None = None,
    specimen: dict | None = None, context: Context | None = None,
) -> list[dict]:
    """One Observation per OBX (consecutive TX/FT lines of one test joined), each kept in
    `b` and guarded (an OBX that cannot be mapped is a warning); returns those made.

    `based_on` are ServiceRequests (resources or references), `specimen` the Specimen
    the results are about, `context` the report group's facts when there is one.
    """
    ctx = context or Context()
    made: list[dict] = []
    seen: set[str] = set()
    position = 0
    for group in _results(b, obxs):
        obx = group[0]
        if dt.present(obx.value(2)).upper() != "ED":  # as ORU@1 counted (ED was a form)
            position += 1
        key = _result_key(obx, position, seen)
        own = ctx.specimen_of(obx) if ctx.specimen_of is not None else None
        found = guard("OBX", occurrence(b, obx), lambda g=group, k=key, s=own: _observation(
            b, g, k, ctx, based_on or [], s or specimen))
        if found is not None:
            made.append(b.add(found))
            made_for(b)[id(obx)] = found
    return made


def made_for(b: Build) -> dict[int, dict]:
    """The Observation made for each OBX of this conversion (by the segment's identity),
    so a later group can point at an earlier result (a susceptibility at its isolate)."""
    found = b.__dict__.get("_observation_of")
    if found is None:
        found = b.__dict__["_observation_of"] = {}
    return found


def _results(b: Build, obxs: list[Segment]) -> list[list[Segment]]:
    """The OBX grouped into results: a TX/FT line continuing the previous one's test
    (same OBX-2, OBX-3 and OBX-4, no comment between) joins it."""
    groups: list[list[Segment]] = []
    for obx in obxs:
        last = groups[-1] if groups else None
        if last is not None and not notes_after(b, last[-1]) and _continues(last[-1], obx):
            last.append(obx)
        else:
            groups.append([obx])
    return groups


def _continues(previous: Segment, obx: Segment) -> bool:
    kind = dt.present(obx.value(2)).upper()
    return (kind in TEXT_TYPES and dt.present(previous.value(2)).upper() == kind
            and previous.raw(3) == obx.raw(3) and previous.raw(4) == obx.raw(4))


def _result_key(obx: Segment, position: int, seen: set[str]) -> str:
    """OBX-1 and OBX-4, or the position when OBX-1 is empty or already used (as
    hl7v2-oru-to-fhir@1 keys them)."""
    set_id = dt.present(obx.value(1)) or f"#{position}"
    key = f"{set_id}/{dt.present(obx.value(4))}"
    if key in seen:
        key = f"#{position}/{dt.present(obx.value(4))}"
    seen.add(key)
    return key


def notes_after(b: Build, segment: Segment) -> list[Segment]:
    """The NTE segments directly after `segment` in the message (its comments)."""
    segments = b.message.segments
    index = _positions(b).get(id(segment))
    found: list[Segment] = []
    if index is None:
        return found
    for seg in segments[index + 1:]:
        if seg.name != "NTE":
            break
        found.append(seg)
    return found


def occurrence(b: Build, segment: Segment) -> int:
    """`b.occurrence` from an index made once per message (OBX[1500] is found at once)."""
    cached = b.__dict__.get("_occurrences")
    if cached is None or cached[0] is not b.message.segments:
        counts: dict[str, int] = {}
        numbers: dict[int, int] = {}
        for seg in b.message.segments:
            counts[seg.name] = numbers[id(seg)] = counts.get(seg.name, 0) + 1
        cached = (b.message.segments, numbers)
        b.__dict__["_occurrences"] = cached
    return cached[1].get(id(segment), 1)


def notes_of(b: Build, ntes: list[Segment]) -> list[dict]:
    """One Annotation per NTE that says something (NTE-3), with who entered it (NTE-5, a
    Practitioner) and when (NTE-6), as v2.6+ senders say."""
    found: list[dict] = []
    for nte, note in zip(ntes, [annotations([n]) for n in ntes], strict=True):
        if not note:
            continue
        author = people.practitioner(b, dt.first_rep(nte, 5))
        found.append(compact({
            **note[0],
            "authorReference": b.ref(author) if author is not None else None,
            "time": dt.to_fhir_datetime(nte.value(6), "NTE-6", b.offset),
        }))
    return found


def _positions(b: Build) -> dict[int, int]:
    """Each segment's index in the message, computed once per message (an ORU with
    thousands of OBX stays linear)."""
    cached = b.__dict__.get("_positions")
    if cached is None or cached[0] is not b.message.segments:
        cached = (b.message.segments, {id(s): i for i, s in enumerate(b.message.segments)})
        b.__dict__["_positions"] = cached
    return cached[1]


# ---- one Observation ---------------------------------------------------------------------


def _observation(b: Build, group: list[Segment], key: str, ctx: Context,
                 based_on: list[dict], specimen: dict | None) -> dict:
    obx = group[0]
    code = first_concept(obx, 3, b.facility)
    if code is None:
        raise MappingError("is empty, so the result has no test code", field="OBX-3")
    _with_generic_vital_sign(code)
    unit = obx_unit(obx)
    value = _text_value(b, group) if len(group) > 1 else observation_value(b, obx, unit)
    attachment = value.pop("_attachment", None)
    more = value.pop("_more", [])
    notes = [n for o in group for n in notes_after(b, o)]
    status = _status(obx, ctx.report_status)
    for line in group[1:]:  # the lines of one text result share the first line's status
        line.value(11)
    analysed = dt.to_fhir_instant(obx.value(19), "OBX-19", b.offset)  # when OBR-22 is not sent
    observation = {
        "resourceType": "Observation",
        "id": _id(b, obx, key, ctx),
        "identifier": _instance_identifier(b, obx),
        "basedOn": [_reference(b, r) for r in based_on],
        "status": status,
        "category": category(code, ctx.section, ordered=ctx.ordered,
                             otherwise=ctx.otherwise, lab_result=lab_result(obx)),
        "code": code,
        "subject": b.patient_ref(),
        "encounter": b.encounter_ref(),
        "effectiveDateTime": dt.to_fhir_datetime(obx.value(14), "OBX-14", b.offset)
        or ctx.effective,
        "issued": ctx.issued or analysed,
        "performer": _performers(b, obx),
        **value,
        "dataAbsentReason": None if value or attachment else _absent(status),
        "interpretation": interpretations(obx),
        "note": notes_of(b, notes) + more,
        "bodySite": first_concept(obx, 20, b.facility),
        "method": first_concept(obx, 17, b.facility),
        "specimen": b.ref(specimen) if specimen else None,
        "device": _device(b, obx),
        "referenceRange": _reference_range(obx, unit),
    }
    observation = compact(observation)
    if attachment is not None:
        document = _document(b, observation, attachment)
        observation["derivedFrom"] = [b.ref(document)]
    return observation


def _with_generic_vital_sign(code: dict) -> None:
    """Add the generic LOINC code of a method-specific vital sign (`GENERIC_VITAL_SIGNS`)
    as one more coding, the sender's coding first."""
    codings = code.get("coding", [])
    have = {(c.get("system"), c.get("code")) for c in codings}
    for coding in list(codings):
        generic = GENERIC_VITAL_SIGNS.get(coding.get("code", "")) if coding.get(
            "system") == LOINC else None
        if generic is not None and (LOINC, generic[0]) not in have:
            codings.append({"system": LOINC, "code": generic[0], "display": generic[1]})
            have.add((LOINC, generic[0]))


def _id(b: Build, obx: Segment, key: str, ctx: Context) -> str:
    if ctx.key is not None:
        return resource_id("Observation", b.facility, keyed(ctx.key, "OBX", key))
    subject = b.patient["id"] if b.patient is not None else "no-patient"
    when = dt.present(obx.value(14)) or dt.present(b.message.segments[0].value(10))
    parts = (dt.present(obx.value(3, 1)), dt.present(obx.value(3, 3)),
             dt.present(obx.value(4)), when, key)
    return resource_id("Observation", b.facility,
                       keyed({"system": "urn:conduit:patient", "value": subject}, *parts))


def _reference(b: Build, target: dict) -> dict:
    return b.ref(target) if "resourceType" in target else target


def _status(obx: Segment, report_status: str) -> str:
    """OBX-11 through table 0085 (see `v2_results.OBSERVATION_STATUS`); a code outside
    it is a warning, and the report's status (else unknown) stands."""
    code = dt.present(obx.value(11)).upper()
    if code and code not in legacy.OBSERVATION_STATUS:
        tolerate(MappingError("is not a result status of table 0085; read as the "
                              "report's status", field="OBX-11"))
    return legacy.observation_status(obx, report_status)


# Abnormal flags senders spell out instead of table 0078's code.
FLAG_ALIASES: dict[str, str] = {
    "HI": "H", "HIGH": "H", "LO": "L", "LOW": "L", "ABN": "A", "ABNORMAL": "A",
    "NORM": "N", "NORMAL": "N", "WNL": "N", "POSITIVE": "POS", "NEGATIVE": "NEG",
    "DETECTED": "DET", "NOT DETECTED": "ND", "REACTIVE": "RR", "NONREACTIVE": "NR",
    "NON-REACTIVE": "NR", "CRITICAL HIGH": "HH", "CRITICAL LOW": "LL", "SUSCEPTIBLE": "S",
    "RESISTANT": "R", "INTERMEDIATE": "I",
}


def interpretations(obx: Segment) -> list[dict]:
    """OBX-8 through table 0078 (`v2_results.interpretations`), a flag spelled out (HIGH,
    Positive, Not detected) read as its code; another flag stays text."""
    found: list[dict] = []
    for rep, concept in zip([r for r in obx.repetitions(8) if dt.present(r.value(1))],
                            legacy.interpretations(obx), strict=False):
        code = FLAG_ALIASES.get(dt.present(rep.value(1)).upper())
        if "coding" not in concept and code is not None:
            concept = {"coding": [{"system": legacy.V3_INTERPRETATION, "code": code,
                                   "display": legacy.INTERPRETATION[code]}],
                       "text": dt.present(rep.value(1))}
        found.append(concept)
    return found


def _absent(status: str) -> dict:
    """Why an OBX has no value: not performed (cancelled), an error, pending (registered
    or preliminary: temporarily unknown), else unknown."""
    code = {"cancelled": "not-performed", "entered-in-error": "error",
            "registered": "temp-unknown", "preliminary": "temp-unknown"}.get(status, "unknown")
    return {"coding": [{"system": DATA_ABSENT, "code": code}]}


# Table 0074 sections whose results are imaging, procedure or vital-sign observations.
IMAGING_SECTIONS = frozenset({"CT", "CUS", "NMR", "NMS", "OUS", "RAD", "RUS", "RX", "VUS",
                              "XRC"})
PROCEDURE_SECTIONS = frozenset({"AU", "CTH", "EC", "EN", "PF", "RC", "RT"})


def category(code: dict, section: str | None, *, ordered: bool = False,
             otherwise: str | None = None, lab_result: bool = False) -> list[dict]:
    """Observation.category from what the message says of a result, since US Core holds
    an Observation to the profile its category names and no other fact tells a lab
    result from a vital sign.

    A LOINC vital sign is vital-signs wherever it is sent. In a result report (`section`
    OBR-24, table 0074): imaging and procedure sections say so; bedside charting (ICU,
    NRS) that is not a vital sign is an exam finding; a lab section, none ("", as ORU and
    OUL are lab results) or one the table does not know (a lab's own name, CHEMISTRY)
    is laboratory. The answers sent with an order (`ordered`) are not the results of its
    section: only a lab order's (a lab section, or "" for OML without one) are
    laboratory, as the lab's results report them. The rest (outside a report, or an
    order's other answers) is laboratory when the OBX carries a lab result's marks
    (`lab_result`: a range, a lab, a concentration), else `otherwise` (the caller's
    kind, "survey" for answers given with an order, a dose or an appointment), else
    none."""
    loinc = any(c.get("system") == LOINC and c.get("code") in VITAL_SIGNS
                for c in code.get("coding", []))
    kind = dt.present(section or "").upper()
    if loinc:
        return [_observation_category("vital-signs", "Vital Signs")]
    if section is not None and not ordered:
        if kind in ("ICU", "NRS"):
            return [_observation_category("exam", "Exam")]
        if kind in IMAGING_SECTIONS:
            return [_observation_category("imaging", "Imaging")]
        if kind in PROCEDURE_SECTIONS:
            return [_observation_category("procedure", "Procedure")]
        if not kind or kind in tables.LAB_SECTIONS or kind not in tables.SERVICE_SECTIONS:
            return [_observation_category("laboratory", "Laboratory")]
    elif section is not None and (not kind or kind in tables.LAB_SECTIONS):
        return [_observation_category("laboratory", "Laboratory")]
    if otherwise is None:
        return []
    if lab_result:
        return [_observation_category("laboratory", "Laboratory")]
    return [_observation_category(otherwise, otherwise.capitalize())]


# A unit per volume of a body fluid (mg/dL, mmol/L, 10*3/uL, ng/mL): a concentration.
_CONCENTRATION = re.compile(r"/\s*(?:10\S*\s*)?[munpf]?[dc]?L\Z", re.IGNORECASE)


def lab_result(obx: Segment) -> bool:
    """An OBX with a lab result's marks: a reference range (OBX-7), the lab that made it
    (OBX-15 producer, OBX-23 performing organization) or a concentration for its unit."""
    unit = dt.present(obx.value(6, 1)) or dt.present(obx.value(6, 2))
    return any(dt.present(obx.value(n)) for n in (7, 15, 23)) or bool(
        _CONCENTRATION.search(unit))


def _observation_category(code: str, display: str) -> dict:
    return {"coding": [{"system": OBSERVATION_CATEGORY, "code": code, "display": display}]}


def _instance_identifier(b: Build, obx: Segment) -> list[dict]:
    """OBX-21 observation instance identifier (v2.6+)."""
    identifier = dt.ei_to_identifier(dt.first_rep(obx, 21), b.facility)
    return [identifier] if identifier else []


# Table 0443 roles of the people an OBX names.
_RESPONSIBLE_OBSERVER = {"coding": [{"system": tables.V2_0443, "code": "RO",
                                     "display": "Responsible Observer"}]}
_MEDICAL_DIRECTOR = {"coding": [{"system": tables.V2_0443, "code": "MDIR",
                                 "display": "Medical Director"}]}


def _performers(b: Build, obx: Segment) -> list[dict]:
    """OBX-16 responsible observers and OBX-25 the performing lab's medical director as
    Practitioners, OBX-23 (with its OBX-24 address, else OBX-15) the performing
    Organization; a person of a named lab acts there: a PractitionerRole (responsible
    observer, medical director) at the lab, as the reference converter makes one."""
    found: list[dict] = []
    lab = _performing_lab(b, obx) or _producer(b, obx)
    for number, role in ((16, _RESPONSIBLE_OBSERVER), (25, _MEDICAL_DIRECTOR)):
        for rep in obx.repetitions(number):
            person = people.practitioner(b, rep)
            who = _role_at(b, person, lab, role) if person and lab else person
            if who is not None and b.ref(who) not in found:
                found.append(b.ref(who))
    if lab is not None:
        found.append(b.ref(lab))
    return found


def _role_at(b: Build, person: dict, lab: dict, code: dict) -> dict:
    """One PractitionerRole per person and organization (the key the order builder's
    roles use), kept once in `b`."""
    key = {"system": f"Practitioner/{person['id']}", "value": lab["id"]}
    role = b.add({"resourceType": "PractitionerRole",
                  "id": resource_id("PractitionerRole", b.facility, key),
                  "practitioner": b.ref(person), "organization": b.ref(lab),
                  "code": [code]}, merge=True)
    assert role is not None
    return role


def _performing_lab(b: Build, obx: Segment) -> dict | None:
    """OBX-23 XON with the OBX-24 address."""
    lab = people.xon_organization(b, dt.first_rep(obx, 23))
    address = dt.xad_to_address(dt.first_rep(obx, 24)) if dt.first_rep(obx, 24) else None
    if lab is not None and address:
        lab.setdefault("address", [address])
    return lab


def _producer(b: Build, obx: Segment) -> dict | None:
    """OBX-15 producer's id (CE: id ^ name ^ coding system), the lab that made the
    result, as reference labs send it instead of OBX-23."""
    number, name = dt.present(obx.value(15, 1)), dt.present(obx.value(15, 2))
    if not number and not name:
        return None
    system = dt.present(obx.value(15, 3))
    identifier = None
    if number:
        identifier = {"system": dt.hd_system(system) if system
                      else people.local_system(b, "organization"), "value": number}
    return people.organization(b, name or number, identifier)


def _device(b: Build, obx: Segment) -> dict | None:
    """OBX-18 equipment instance identifier (EI) as a Device, referenced."""
    identifier = dt.ei_to_identifier(dt.first_rep(obx, 18), b.facility)
    if identifier is None:
        return None
    device = b.add({"resourceType": "Device",
                    "id": resource_id("Device", b.facility, identifier),
                    "identifier": [identifier]}, merge=True)
    return b.ref(device)


def _reference_range(obx: Segment, unit: legacy.Unit) -> list[dict]:
    return legacy.reference_range(obx, unit)


def _document(b: Build, observation: dict, attachment: dict) -> dict:
    """An ED or RP value as a DocumentReference the Observation is derived from (R4 has
    no valueAttachment)."""
    document = b.add(compact({
        "resourceType": "DocumentReference",
        "id": resource_id("DocumentReference", b.facility,
                          {"system": "urn:conduit:observation", "value": observation["id"]}),
        "status": "current",
        "type": observation["code"],
        "subject": b.patient_ref(),
        "date": observation.get("issued"),
        "content": [{"attachment": attachment}],
        "context": {"encounter": [b.encounter_ref()]} if b.encounter else None,
    }))
    assert document is not None
    return document


# ---- OBX-5 by OBX-2 ------------------------------------------------------------------------


def observation_value(b: Build, obx: Segment, unit: legacy.Unit | None = None) -> dict:
    """Observation.value[x] from OBX-5 as OBX-2 says; {} when OBX-5 is empty.

    NM valueQuantity (a non-number stays the lab's text, with a warning); SN a quantity
    with comparator, a range or a ratio; NR valueRange; ST/TX/FT valueString (FT's
    formatting commands decoded, repetitions as lines); CE/CWE/CNE/CF valueCodeableConcept;
    DT/TS/DTM valueDateTime; TM valueTime; DR valuePeriod; ED and RP an attachment (in
    "_attachment", for a DocumentReference); a repeated coded answer's others as notes
    (in "_more"). Other or no type: numbers as quantities, the rest as text.
    """
    reps = [r for r in obx.repetitions(5) if dt.present(r.text)]
    if not reps:
        return {}
    unit = unit or obx_unit(obx)
    kind = dt.present(obx.value(2)).upper()
    first = reps[0]
    if len(reps) > 1 and kind in _FIRST_ONLY:
        notice(MappingError(f"repeats, and a value of type {kind or 'unknown'} holds one: "
                            f"only the first of its {len(reps)} is read", field="OBX-5"))
    if kind == "NM":
        return _numeric(first, unit)
    if kind == "SN":
        return _structured_numeric(first, unit)
    if kind == "NR":
        return _numeric_range(first, unit)
    if kind in ("CE", "CWE", "CNE", "CF"):
        concept = cwe_to_codeable_concept(first, b.facility)
        return {"valueCodeableConcept": concept, "_more": _more_answers(b, reps[1:])} \
            if concept else {}
    if kind in ("DT", "TS", "DTM"):
        return _datetime(first.value(1), b.offset)
    if kind == "TM":
        return legacy._time(first.value(1))
    if kind == "DR":
        return _period(first, b.offset)
    if kind == "ED":
        try:
            found = encapsulated_attachment(first, "OBX-5")
        except MappingError as exc:
            return tolerate(exc, {})
        return {"_attachment": found} if found else {}
    if kind == "RP":
        return _pointer(first)
    if kind in ("ST", "TX", "FT", "TEXT") or kind not in ("", "NA"):
        return {"valueString": "\n".join(_lines(b, obx))}
    return _untyped(first, unit)


# OBX-2 types whose value is one OBX-5 repetition (a coded answer's others become notes,
# text's lines): the others are said to be left, not dropped unremarked.
_FIRST_ONLY = frozenset({"NM", "SN", "NR", "DT", "TS", "DTM", "TM", "DR", "ED", "RP", "",
                         "NA"})


def _more_answers(b: Build, reps: list[Repetition]) -> list[dict]:
    """A coded OBX-5 that repeats (several organisms, several findings): the first is the
    value, each other answer a note naming it, so none is lost."""
    found: list[dict] = []
    for rep in reps:
        concept = cwe_to_codeable_concept(rep, b.facility) or {}
        coding = (concept.get("coding") or [{}])[0]
        text = concept.get("text") or coding.get("display") or coding.get("code")
        if text:
            code = coding.get("code")
            label = f"{text} ({code})" if code and code != text else text
            found.append({"text": f"Also reported: {label}"})
    return found


def _text_value(b: Build, group: list[Segment]) -> dict:
    lines = [line for obx in group for line in (_lines(b, obx) or [""])]
    text = "\n".join(lines).strip("\n")
    return {"valueString": text} if text.strip() else {}


def _lines(b: Build, obx: Segment) -> list[str]:
    """OBX-5's repetitions as lines, escapes and formatting commands decoded (a stray
    component separator in free text stays text)."""
    d = b.message.delimiters
    raw = obx.raw(5)
    if not dt.present(raw):
        return []
    return [formatted_text(rep, d).rstrip() for rep in raw.split(d.repetition)]


_COMPARED = re.compile(r"\s*(<=|>=|<|>)\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*\Z")


def _numeric(rep: Repetition, unit: legacy.Unit) -> dict:
    """NM: a quantity; "<0.01" or ">=90" written in the one component (as many labs do)
    a quantity with its comparator; anything else the lab's text, with a warning."""
    text = dt.present(rep.value(1))
    value = dt.parse_nm(text)
    if value is not None:
        return {"valueQuantity": unit.quantity(value)}
    return _compared(rep, unit) or tolerate(
        MappingError("is not a number; kept as text", field="OBX-5"),
        {"valueString": rep.text.strip()})


def _compared(rep: Repetition, unit: legacy.Unit) -> dict | None:
    m = _COMPARED.match(dt.present(rep.value(1))) if len(rep.components()) == 1 else None
    value = dt.parse_nm(m.group(2)) if m else None
    if m is None or value is None:
        return None
    return {"valueQuantity": unit.quantity(value, m.group(1))}


def _structured_numeric(rep: Repetition, unit: legacy.Unit) -> dict:
    found = legacy._structured_numeric(rep, unit)
    if "valueString" in found and dt.parse_nm(rep.value(2)) is None:
        return _compared(rep, unit) or tolerate(
            MappingError("is not a structured numeric; kept as text", field="OBX-5"), found)
    return found


def _numeric_range(rep: Repetition, unit: legacy.Unit) -> dict:
    """NR = low ^ high (either may be absent)."""
    low, high = dt.parse_nm(rep.value(1)), dt.parse_nm(rep.value(2))
    if low is None and high is None:
        return tolerate(MappingError("is not a numeric range; kept as text", field="OBX-5"),
                        {"valueString": rep.text.strip()})
    return {"valueRange": compact({
        "low": unit.quantity(low) if low is not None else None,
        "high": unit.quantity(high) if high is not None else None,
    })}


def _datetime(value: str, offset: str | None) -> dict:
    when = dt.to_fhir_datetime(value, "OBX-5", offset)
    return {"valueDateTime": when} if when else {"valueString": dt.present(value)}


def _period(rep: Repetition, offset: str | None) -> dict:
    """DR = start (TS, its time in the first subcomponent) ^ end."""
    start = dt.to_fhir_datetime(rep.value(1, 1), "OBX-5", offset)
    end = dt.to_fhir_datetime(rep.value(2, 1), "OBX-5", offset)
    period = compact({"start": start, "end": end})
    return {"valuePeriod": period} if period else {"valueString": rep.text.strip()}


def _pointer(rep: Repetition) -> dict:
    """RP = pointer ^ application id ^ type of data ^ subtype: an attachment by url."""
    pointer = dt.present(rep.value(1))
    if not pointer:
        return {}
    if " " in pointer:
        return {"valueString": pointer}
    return {"_attachment": {"contentType": mime_type(rep.value(3), rep.value(4)),
                            "url": pointer}}


def _untyped(rep: Repetition, unit: legacy.Unit) -> dict:
    """No OBX-2: a number is a quantity, anything else is text."""
    value = dt.parse_nm(rep.value(1))
    if value is not None and len(rep.components()) == 1:
        return {"valueQuantity": unit.quantity(value)}
    return {"valueString": rep.text.strip()}




# ---- report groups (ORC/OBR with their OBX, SPM and NTE) ------------------------------------


class ReportParts(NamedTuple):
    """An order group's body sorted: result OBX (with the Specimen each follows), ED
    documents, the report's own NTE comments and its SPM segments."""

    results: list[tuple[Segment, int | None]]  # (OBX, index of the SPM it follows)
    forms: list[Segment]
    notes: list[Segment]
    spms: list[Segment]


def report_parts(body: list[Segment]) -> ReportParts:
    """Walk the segments of one group (OBR first): NTE right after OBR (or its TQ1) is
    the report's; an ED OBX is the report's presented form; OBX after an SPM are that
    specimen's."""
    parts = ReportParts([], [], [], [])
    anchor = "OBR"
    for seg in body:
        if seg.name == "OBX":
            if dt.present(seg.value(2)).upper() == "ED":
                parts.forms.append(seg)
            else:
                parts.results.append((seg, len(parts.spms) - 1 if parts.spms else None))
            anchor = "OBX"
        elif seg.name == "NTE":
            if anchor in ("OBR", "TQ1", "TQ2", "ORC"):
                parts.notes.append(seg)
        elif seg.name == "SPM":
            parts.spms.append(seg)
            anchor = "SPM"
        elif seg.name != "OBR":
            anchor = seg.name
    return parts


def report_key(b: Build, orc: Segment | None, obr: Segment) -> tuple[dict, list[dict], dict | None]:
    """The report's key as hl7v2-oru-to-fhir@1 derives it (filler number, else placer,
    with OBR-4.1), its placer/filler identifiers and the placer number. Without either
    number, the message control id and the OBR's place stand in, with a warning."""
    numbers = order_numbers(orc, obr, placer_authority=receiving_facility(b.message)
                            or b.facility, filler_authority=b.facility)
    main = numbers.filler or numbers.placer
    if main is None:
        control = dt.present(b.message.segments[0].value(10)) or "no-control-id"
        main = tolerate(MappingError(
            "has no filler or placer order number (nor ORC-3/ORC-2), so the report is "
            "identified by the message control id", field="OBR-3"),
            {"system": f"urn:conduit:msh:{b.facility}",
             "value": f"{control}^OBR^{occurrence(b, obr)}"})
    identifiers = numbers.identifiers()
    for field, kind, authority in ((2, tables.PLACER_IDENTIFIER, receiving_facility(b.message)
                                    or b.facility), (3, tables.FILLER_IDENTIFIER, b.facility)):
        own = dt.ei_to_identifier(dt.first_rep(obr, field), authority, kind)  # OBR-2/3 too
        if own is not None and all(own["value"] != i["value"] for i in identifiers):
            identifiers.append(own)
    return keyed(main, dt.present(obr.value(4, 1))), identifiers, numbers.placer


def report_status(obr: Segment) -> str:
    """OBR-25 through table 0123; a code outside it is a warning and "unknown"."""
    code = dt.present(obr.value(25)).upper()
    if code and code not in legacy.REPORT_STATUS:
        tolerate(MappingError("is not a result status of table 0123; the report's status "
                              "is unknown", field="OBR-25"))
    return legacy.report_status(obr)


def practitioner_of_cnn(b: Build, rep: Repetition) -> dict | None:
    """The Practitioner of an NDL (OBR-32..35: a CNN in the subcomponents of its first
    component), read as the XCN it spells out."""
    d = b.message.delimiters
    first = rep.components()[0] if rep.components() else ""
    return people.practitioner(b, Repetition(first.replace(d.subcomponent, d.component), d))


def diagnostic_report(
    b: Build, orc: Segment | None, obr: Segment, *, key: dict, identifiers: list[dict],
    status: str, based_on: list[dict], results: list[dict], specimens: list[dict],
    notes: list[Segment], forms: list[dict],
) -> dict:
    """The DiagnosticReport of one OBR: identifiers, basedOn, status OBR-25, category
    OBR-24 (LAB by default, `report_categories`), code OBR-4, effective OBR-7 (a period
    with OBR-8), issued OBR-22 (else MSH-7: the report was out by the time the message
    was), performer OBR-34 technicians and OBR-33 assistants, resultsInterpreter
    OBR-32, results, specimens, notes (R5 note extension) and presented forms."""
    code = first_concept(obr, 4, b.facility)
    if code is None:
        code = tolerate(MappingError("is empty, so the report's test is not named",
                                     field="OBR-4"), {"text": "Unspecified report"})
    start = (dt.to_fhir_datetime(obr.value(7), "OBR-7", b.offset)
             or collected(specimens))  # OML/OUL senders often leave OBR-7 to the SPM
    end = dt.to_fhir_datetime(obr.value(8), "OBR-8", b.offset)
    effective = ({"effectivePeriod": compact({"start": start, "end": end})}
                 if end and end != start else {"effectiveDateTime": start})
    group = dt.ei_to_identifier(dt.first_rep(orc, 4), b.facility, tables.PLACER_GROUP_NUMBER)
    report = {
        "resourceType": "DiagnosticReport",
        "id": resource_id("DiagnosticReport", b.facility, key),
        "extension": [{"url": legacy.REPORT_NOTE_EXTENSION, "valueAnnotation": a}
                      for a in notes_of(b, notes)],
        "identifier": [*identifiers, *([group] if group else [])],
        "basedOn": based_on,
        "status": status,
        "category": report_categories(obr.value(24)),
        "code": code,
        "subject": b.patient_ref(),
        "encounter": b.encounter_ref(),
        **effective,
        "issued": dt.to_fhir_instant(obr.value(22), "OBR-22", b.offset)
        or dt.to_fhir_instant(b.sent, "MSH-7", b.offset)
        or _issued_in_engine_zone(b, obr),
        "performer": _report_people(b, obr, 34, 33),
        "resultsInterpreter": _report_people(b, obr, 32),
        "specimen": [b.ref(s) for s in specimens],
        "result": [b.ref(r) for r in results],
        "conclusion": _conclusion(results),
        "presentedForm": forms,
    }
    return compact(report)


def _issued_in_engine_zone(b: Build, obr: Segment) -> str | None:
    """OBR-22, else MSH-7, sent with a time of day but no zone anywhere, as an instant in
    the engine's local zone (at that date), with a warning that the zone was assumed:
    US Core requires a final lab report's issued time, and a sender without zones is
    most often in the engine's region (as Provenance.recorded assumes). Never in strict
    mode."""
    if not is_lenient():
        return None
    return assumed_instant([(obr.value(22), "OBR-22"), (b.sent, "MSH-7")],
                           "DiagnosticReport.issued")


def report_categories(section: str) -> list[dict]:
    """`section_categories` of OBR-24, and LAB also beside a section table 0074 does not
    know (a lab's own name for it, CHEMISTRY): a result report is a lab's unless its
    section says otherwise, as its Observations are (`category`)."""
    found = section_categories(section)
    if dt.present(section).upper() not in tables.SERVICE_SECTIONS and found and \
            "coding" not in found[0]:
        found.insert(0, section_categories("LAB")[0])
    return found


# LOINC codes of the narrative that is a report's conclusion: a radiology impression, a
# pathology final diagnosis, a procedure's impression.
CONCLUSION_CODES = frozenset({"19005-8", "22637-3", "59776-5", "18834-2"})


def _conclusion(results: list[dict]) -> str | None:
    """The text of the results that are the report's impression or final diagnosis."""
    texts = [r["valueString"] for r in results if "valueString" in r and any(
        c.get("system") == "http://loinc.org" and c.get("code") in CONCLUSION_CODES
        for c in r["code"].get("coding", []))]
    return "\n".join(texts) or None


def collected(specimens: list[dict]) -> str | None:
    """When the first Specimen was collected (its time, or its period's start)."""
    collection = specimens[0].get("collection", {}) if specimens else {}
    return (collection.get("collectedDateTime")
            or collection.get("collectedPeriod", {}).get("start"))


def _report_people(b: Build, obr: Segment, *fields: int) -> list[dict]:
    found: list[dict] = []
    for number in fields:
        for rep in obr.repetitions(number):
            person = practitioner_of_cnn(b, rep)
            if person is not None and b.ref(person) not in found:
                found.append(b.ref(person))
    return found


def presented_forms(b: Build, forms: list[Segment]) -> list[dict]:
    """Each ED OBX-5 as an Attachment (its title OBX-3's text); data that does not decode
    is a warning naming its OBX."""
    found: list[dict] = []
    for obx in forms:
        def one(obx: Segment = obx) -> dict | None:
            rep = dt.first_rep(obx, 5)
            attachment = encapsulated_attachment(rep, "OBX-5") if rep is not None else None
            if attachment is None:
                return None
            title = dt.present(obx.value(3, 2)) or dt.present(obx.value(3, 1))
            return compact({**attachment, "title": title})
        made = guard("OBX", occurrence(b, obx), one)
        if made is not None:
            found.append(made)
    return found

