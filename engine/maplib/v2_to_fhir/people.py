"""The people of a message: the Patient (PID, PD1, merges), related persons (NK1, GT1),
every practitioner named in an XCN, and organizations (MSH-4, assigning authorities).

Ids are deterministic (see `engine.maplib.fhir`), as in every v2 mapping, so the
Patient an ORU refers to is the very one the ADT feed made: under the first release's
rules the Patient id is derived from the preferred PID-3 identifier exactly as
hl7v2-adt-to-fhir@1 derives it (within MSH-4); under `patient_key_by_authority`
(hl7v2-to-fhir@2) as `patient_key` says (the best local record number, within its
assigning authority). The element-level rules for PID live in `patient_parts`.
"""

from __future__ import annotations

from urllib.parse import quote

from engine.errors import MappingError
from engine.formats.hl7v2 import Repetition, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import tolerate
from engine.maplib import v2_clinical as clinical
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_to_fhir import patient_key
from engine.maplib.v2_to_fhir import patient_parts as parts
from engine.maplib.v2_to_fhir.frame import Build
from engine.maplib.v2_to_fhir.sent_time import as_dtm


def patient(b: Build, pid: Segment | None = None, *, primary: bool = True) -> dict:
    """The Patient of `pid` (the message's first PID by default), kept in `b` (as
    `b.patient` when `primary`); fails naming PID-3 when there is no PID (a patient
    message with no patient has nothing to map to). A PID-8 that is empty or no code of
    table 0001 is gender `unknown` (US Core requires one)."""
    pid = pid if pid is not None else b.message.segment("PID")
    if pid is None:
        raise MappingError("the PID segment is missing, so there is no patient", field="PID-3")
    where = b.field(pid, 3)
    identifiers = parts.identifiers(pid, b.facility)
    person = compact({
        "resourceType": "Patient",
        "id": patient_id(b, pid, identifiers, where),
        "meta": parts.last_updated(pid, b.offset),
        "extension": [*clinical.race_and_ethnicity(pid), *parts.extensions(pid, b.facility)],
        "identifier": identifiers,
        "active": _registry_active(b),
        "name": parts.names(pid),
        "telecom": parts.telecoms(pid),
        "gender": parts.gender(pid) or "unknown",
        "birthDate": dt.to_fhir_date(as_dtm(pid.value(7), "PID-7"), "PID-7"),
        **parts.deceased(pid, b.offset),
        "address": parts.addresses(pid),
        "maritalStatus": parts.marital_status(pid, b.facility),
        **parts.multiple_birth(pid),
        "communication": parts.communication(pid, b.facility),
    })
    kept = b.add(person, merge=not primary)
    if primary:
        b.patient = kept
        _primary_care(b, kept)
        _contacts(b, kept)
    return kept


def patient_id(b: Build, pid: Segment, identifiers: list[dict], where: str = "PID-3") -> str:
    """hl7v2-adt-to-fhir@1's id (the MR, else first, PID-3 identifier), or under
    `patient_key_by_authority` the `patient_key` of PID-3, PID-2 and PID-4; without
    one, leniently, the first other identifier, else the name and birth date."""
    if b.rules.patient_key_by_authority:
        # with PID-2's and PID-4's (after PID-3's, which win among equals): a v2.3
        # sender's record number in PID-2 beats the SSN it put in PID-3
        pid3 = pid.repetitions(3)
        keyed = patient_key.patient_id(pid3 + pid.repetitions(2) + pid.repetitions(4),
                                       b.facility) if patient_key.chosen(pid3) else None
        if keyed is not None:
            return keyed
    else:
        pid3 = [i for i in (dt.cx_to_identifier(rep, b.facility)
                            for rep in pid.repetitions(3)) if i]
        if pid3:
            return resource_id("Patient", b.facility, _preferred(pid3))
    tolerate(MappingError("has no identifier; the patient is keyed on another identifier "
                          "or on the name and birth date", field=where))
    return _fallback_id(b, pid, identifiers, where)


def _fallback_id(b: Build, pid: Segment, identifiers: list[dict], where: str) -> str:
    """Without a PID-3 id: PID-2 or PID-4 (ranked and scoped as PID-3 would be, under
    `patient_key_by_authority`), else the first other identifier, else the name and
    birth date."""
    if b.rules.patient_key_by_authority:
        keyed = patient_key.patient_id(pid.repetitions(2) + pid.repetitions(4), b.facility)
        if keyed is not None:
            return keyed
    if identifiers:
        return resource_id("Patient", b.facility, identifiers[0])
    name = dt.present(pid.value(5, 1)).upper() + "^" + dt.present(pid.value(5, 2)).upper()
    born = dt.present(pid.value(7))
    key = {"system": "urn:conduit:name-birthdate", "value": f"{name}|{born}"}
    if key["value"] == "^|":
        raise MappingError("has no identifier, name or birth date, so the patient cannot be "
                           "identified", field=where)
    if not born and b.rules.patient_key_by_authority:
        # a name alone is shared by strangers: this message's own patient, never merged
        tolerate(MappingError("has no birth date either; the patient is this message's "
                              "own, not matched to others by name", field=b.field(pid, 7)))
        key["value"] += "|" + dt.present(b.message.segments[0].value(10))
    return resource_id("Patient", b.facility, key)


def _preferred(identifiers: list[dict]) -> dict:
    for ident in identifiers:
        if any(c["code"] == "MR" for c in ident.get("type", {}).get("coding", [])):
            return ident
    return identifiers[0]


def prior_patient(b: Build, mrg: Segment, survivor: dict) -> dict | None:
    """The patient MRG-1 (else MRG-4; MRG-2 adds its alternate id) names, as the resource
    a merge retires: inactive, `replaced-by` the survivor, which in turn `replaces` it;
    it bears the survivor's gender, and its names when MRG-7
    sends none (a merge joins two records of one person; US Core requires both).
    None when MRG names nobody or the survivor itself (an A47 that only retypes an
    identifier)."""
    reps = mrg.repetitions(1) or mrg.repetitions(4)
    ids = [i for i in (dt.cx_to_identifier(rep, b.facility) for rep in reps) if i]
    if not ids:
        return None
    rid = (patient_key.patient_id(reps, b.facility) if b.rules.patient_key_by_authority
           else None) or resource_id("Patient", b.facility, _preferred(ids))
    ids += [i for i in (dt.cx_to_identifier(rep, b.facility) for rep in mrg.repetitions(2))
            if i and i not in ids]  # MRG-2 prior alternate id: the same retired patient
    if rid == survivor["id"]:
        return None
    names = [n for n in (parts.human_name(rep, "MRG-7") for rep in mrg.repetitions(7)) if n]
    # the retired record is the same person: US Core's name, gender
    prior = b.add(compact({
        "resourceType": "Patient", "id": rid, "identifier": ids, "active": False,
        "name": names or survivor.get("name"),
        "gender": survivor.get("gender"),
        "link": [{"other": b.ref(survivor), "type": "replaced-by"}],
    }))
    links = survivor.setdefault("link", [])
    link = {"other": b.ref(prior), "type": "replaces"}
    if link not in links:
        links.append(link)
    return prior


def assigners(b: Build) -> list[dict]:
    """The Organizations that assigned the Patient's identifiers (CX-4 of PID-2, PID-3 and
    PID-4 with a universal id, as the reference converter makes them), each the
    identifier's assigner. Called by builders that want them (ADT)."""
    pid = b.message.segment("PID")
    if pid is None or b.patient is None:
        return []
    made: list[dict] = []
    for rep in pid.repetitions(2) + pid.repetitions(3) + pid.repetitions(4):
        if not dt.present(rep.value(4, 2)) or not dt.present(rep.value(1)):
            continue
        name = dt.present(rep.value(4, 1)) or dt.present(rep.value(4, 2))  # as MSH-4's
        found = organization(b, name, {"system": "urn:ietf:rfc:3986",
                              "value": dt.hd_system("", rep.value(4, 2), rep.value(4, 3))})
        ident = dt.cx_to_identifier(rep, b.facility)
        for kept in b.patient.get("identifier", []):
            if found and ident and (kept.get("system"), kept["value"]) == (
                    ident.get("system"), ident["value"]):
                kept["assigner"] = b.ref(found)
        if found and found not in made:
            made.append(found)
    return made


def mother(b: Build) -> dict | None:
    """PID-21 mother's identifier as the newborn's mother (a RelatedPerson), when no NK1
    says more; keyed like an NK1's RelatedPerson so a later NK1 can name her."""
    pid = b.message.segment("PID")
    if pid is None or b.patient is None or b.message.all("NK1"):
        return None
    ids = [i for i in (dt.cx_to_identifier(rep, b.facility) for rep in pid.repetitions(21)) if i]
    if not ids:
        return None
    key = {"system": f"Patient/{b.patient['id']}", "value": "PID-21"}
    return b.add({
        "resourceType": "RelatedPerson",
        "id": resource_id("RelatedPerson", b.facility, key),
        "identifier": ids,
        "patient": b.ref(b.patient),
        "relationship": [{"coding": [
            {"system": tables.V2_0063, "code": "MTH", "display": "Mother"},
            {"system": clinical.V3_ROLE_CODE, "code": "MTH", "display": "mother"}]}],
    })


def related_persons(b: Build) -> list[dict]:
    """One RelatedPerson per NK1 that names someone."""
    assert b.patient is not None
    pid = b.patient["id"]
    return [b.add(r) for r in b.each(
        "NK1", lambda nk1, n: clinical.related_person(nk1, n, b.facility, pid, b.offset))]


# ---- PD1 and NK1 as elements of the Patient ---------------------------------------------


def _registry_active(b: Build) -> bool | None:
    """PD1-16 registry status: A is active; I, L, M and P are not (table 0441)."""
    pd1 = b.message.segment("PD1")
    code = dt.present(pd1.value(16)).upper() if pd1 is not None else ""
    return True if code == "A" else (False if code in ("I", "L", "M", "P") else None)


def _primary_care(b: Build, person: dict) -> None:
    """PD1-4 primary care providers and PD1-3 primary facility as generalPractitioner."""
    pd1 = b.message.segment("PD1")
    found = [practitioner(b, rep) for rep in (pd1.repetitions(4) if pd1 is not None else [])]
    found += [xon_organization(b, rep) for rep in (pd1.repetitions(3) if pd1 is not None else [])]
    found += _primary_roles(b)
    refs = [b.ref(r) for r in found if r is not None]
    if refs:
        person["generalPractitioner"] = refs


def _primary_roles(b: Build) -> list[dict | None]:
    """ROL (and v2.7+ PRT) segments of the patient (right after PID/PD1) naming primary
    or family care providers (ROL-3 or PRT-4 PP, FHCP), as generalPractitioner too."""
    pid = b.message.segment("PID")
    segments = b.message.segments
    start = next(i for i, s in enumerate(segments) if s is pid)
    found: list[dict | None] = []
    for s in segments[start + 1:]:
        if s.name not in ("PD1", "ROL", "PRT"):
            break
        role, person = (3, 4) if s.name == "ROL" else (4, 5)
        if dt.present(s.value(2)).upper() != "DE" and dt.present(
                s.value(role)).upper() in ("PP", "FHCP"):
            found += [practitioner(b, rep) for rep in s.repetitions(person)]
    return found


def _contacts(b: Build, person: dict) -> None:
    """Each NK1 as a Patient.contact too (where the reference converter puts it)."""
    contacts = [c for c in (_contact(b, nk1) for nk1 in b.message.all("NK1")) if c]
    if contacts:
        person["contact"] = contacts


def _contact(b: Build, nk1: Segment) -> dict | None:
    names = [n for n in (parts.human_name(rep, "NK1-2") for rep in nk1.repetitions(2)) if n]
    telecom = [dt.xtn_to_contact_point(rep, "home") for rep in nk1.repetitions(5)]
    telecom += [dt.xtn_to_contact_point(rep, "work") for rep in nk1.repetitions(6)]
    addresses = [a for a in (parts.address(rep, "NK1-4") for rep in nk1.repetitions(4)) if a]
    organization = next((o for o in (xon_organization(b, rep) for rep in nk1.repetitions(13))
                         if o), None)
    role = dt.present(nk1.value(7)).upper()
    relationship = dt.present(nk1.value(3)).upper()
    concepts = []
    if role in clinical.CONTACT_ROLE:
        concepts.append({"coding": [{"system": tables.V2_0131, "code": role,
                                     "display": clinical.CONTACT_ROLE[role]}]})
    if relationship in clinical.RELATIONSHIP:
        concepts.append({"coding": [{"system": tables.V2_0063, "code": relationship,
                                     "display": clinical.RELATIONSHIP[relationship]}]})
    contact = compact({
        "relationship": concepts,
        "name": names[0] if names else None,
        "telecom": [t for t in telecom if t],
        "address": addresses[0] if addresses else None,
        "organization": b.ref(organization) if organization else None,
    })
    if not (names or organization):
        return None
    return contact


# ---- practitioners and organizations ----------------------------------------------------

_NPI = "http://hl7.org/fhir/sid/us-npi"


def practitioner(b: Build, rep: Repetition | None) -> dict | None:
    """The Practitioner an XCN names (attending, ordering, performing, ...), kept in `b`
    once however often it is named; None when the XCN names nobody.

    Keyed on XCN-1 within its assigning authority (XCN-9; NPI when XCN-13 says so), else
    on the name, so the same doctor is one resource across messages of a sender.
    """
    if rep is None:
        return None
    number = dt.present(rep.value(1))
    name = _xcn_name(rep)
    if not number and not name:
        return None
    identifier = None
    if number:
        kind = dt.present(rep.value(13)).upper()
        system = (_NPI if kind == "NPI" else
                  dt.hd_system(rep.value(9, 1), rep.value(9, 2), rep.value(9, 3))
                  or local_system(b, "practitioner"))
        identifier = compact({"system": system, "value": number,
                              "type": _identifier_type(kind)})
    key = ({"system": identifier["system"], "value": number} if identifier
           else {"system": "name", "value": _name_key(name)})
    rid = resource_id("Practitioner", b.facility, key)
    if identifier is None:
        identifier = resource_identifier(rid)
    return b.add(compact({
        "resourceType": "Practitioner",
        "id": rid,
        "identifier": [identifier] if identifier else None,
        "name": [name] if name else None,
    }), merge=True)


def resource_identifier(rid: str) -> dict:
    """A doctor named without an id (XCN-1 empty) is identified by the id Conduit keys
    on the name, as a URN (US Core requires an identifier; `secondary`: not one the
    sender assigned)."""
    return {"use": "secondary", "system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{rid}"}


def organization(b: Build, name: str, identifier: dict | None = None) -> dict | None:
    """An Organization by identifier (else name), kept once in `b`; None for neither."""
    name = dt.present(name)
    if not name and not identifier:
        return None
    key = identifier or {"system": "name", "value": name.upper()}
    return b.add(compact({
        "resourceType": "Organization",
        "id": resource_id("Organization", b.facility, key),
        "identifier": [identifier] if identifier else None,
        "name": name or None,
    }), merge=True)


def hd_organization(b: Build, segment: Segment, field: int) -> dict | None:
    """The Organization an HD field names (MSH-4, MSH-6): its namespace as name, its
    universal id (an OID, a URI) as identifier."""
    namespace = dt.present(segment.value(field, 1))
    universal = dt.present(segment.value(field, 2))
    identifier = None
    if universal:
        system = dt.hd_system("", universal, segment.value(field, 3))
        identifier = {"system": "urn:ietf:rfc:3986", "value": system} if system and (
            system.startswith(("urn:oid:", "urn:uuid:"))) else None
    return organization(b, namespace or universal, identifier)


def xon_organization(b: Build, rep: Repetition | None) -> dict | None:
    """The Organization an XON names (PD1-3, NK1-13, PV1-39's facility): XON-1 name and
    XON-10 (else XON-3) identifier within XON-6's authority."""
    if rep is None:
        return None
    name = dt.present(rep.value(1))
    number = dt.present(rep.value(10)) or dt.present(rep.value(3))
    identifier = None
    if number:
        system = (dt.hd_system(rep.value(6, 1), rep.value(6, 2), rep.value(6, 3))
                  or local_system(b, "organization"))
        identifier = {"system": system, "value": number}
    return organization(b, name, identifier)


def local_system(b: Build, what: str) -> str:
    """The identifier system of ids a sender assigns itself, for `what` kind of thing."""
    return f"{dt.CONDUIT_ID_PREFIX}{quote(b.facility, safe='-._~')}:{what}"


def _xcn_name(rep: Repetition) -> dict | None:
    given = [p for p in (dt.present(rep.value(3)), dt.present(rep.value(4))) if p]
    name = compact({
        "family": dt.present(rep.value(2, 1)),
        "given": given,
        "suffix": [s for s in (dt.present(rep.value(5)), dt.present(rep.value(7))) if s],
        "prefix": [p for p in (dt.present(rep.value(6)),) if p],
    })
    if not name:
        return None
    name["text"] = dt.xcn_display(rep)
    return name


def _name_key(name: dict | None) -> str:
    return (name or {}).get("text", "").upper()


def _identifier_type(code: str) -> dict | None:
    if code in tables.IDENTIFIER_TYPE:
        return {"coding": [{"system": tables.V2_0203, "code": code,
                            "display": tables.IDENTIFIER_TYPE[code]}]}
    return {"text": code} if code else None
