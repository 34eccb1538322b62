"""The people of a message: the Patient (PID, PD1, merges), related persons (NK1, GT1),
every practitioner named in an XCN, and organizations (MSH-4, assigning authorities).

Ids are deterministic (see `engine.maplib.fhir`), as in every v2 mapping, so the
Patient an ORU refers to is the very one the ADT feed made.
"""

from __future__ import annotations

from engine.errors import MappingError
from engine.maplib import v2_clinical as clinical
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
