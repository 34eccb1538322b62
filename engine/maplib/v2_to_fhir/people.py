"""The people of a message: the Patient (PID, PD1, merges), related persons (NK1, GT1),
every practitioner named in an XCN, and organizations (MSH-4, assigning authorities).

Ids are deterministic (see `engine.maplib.fhir`), as in every v2 mapping, so the
Patient an ORU refers to is the very one the ADT feed made.
"""

from __future__ import annotations

from urllib.parse import quote

from engine.errors import MappingError
from engine.formats.hl7v2 import Repetition, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib import v2_clinical as clinical
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_fhir import patient as patient_from_pid
from engine.maplib.v2_to_fhir.frame import Build


def patient(b: Build) -> dict:
    """The Patient of the message's first PID, kept in `b`; fails naming PID-3 when there
    is no PID (a patient message with no patient has nothing to map to)."""
    pid = b.message.segment("PID")
    if pid is None:
        raise MappingError("the PID segment is missing, so there is no patient", field="PID-3")
    person = patient_from_pid(pid, b.facility, b.offset)
    extensions = clinical.race_and_ethnicity(pid)
    if extensions:
        person["extension"] = extensions
    b.patient = b.add(person)
    return person


def related_persons(b: Build) -> list[dict]:
    """One RelatedPerson per NK1 that names someone."""
    assert b.patient is not None
    pid = b.patient["id"]
    return [b.add(r) for r in b.each(
        "NK1", lambda nk1, n: clinical.related_person(nk1, n, b.facility, pid, b.offset))]


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
    return b.add(compact({
        "resourceType": "Practitioner",
        "id": resource_id("Practitioner", b.facility, key),
        "identifier": [identifier] if identifier else None,
        "name": [name] if name else None,
    }), merge=True)


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
