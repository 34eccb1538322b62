"""The Patient's key under the patient-key rule of hl7v2-to-fhir@2 (and
hl7v2-adt-to-fhir@4, hl7v2-oru-to-fhir@3): which identifier, within which scope.

Why: a medical record number is issued by the organisation named in its CX-4 (assigning
authority), not by the application that happens to send it. The hospital's ADT system
(MSH-4 "ADT1") and its lab system (MSH-4 "LAB") send the same MRN for the same person;
keyed within MSH-4 they made two Patients, and a result filed under the lab's Patient is
missing from the chart the ADT feed built. Keyed within CX-4 they make one. Only when
CX-4 is empty does the sender stand in for the authority, as before.

Which identifier: PID-3 often lists an SSN, a driver's licence or a payer's number
beside the record number, in any order, and some senders type their record number MRN
rather than MR. The key is the PID-3 identifier whose type ranks best in
`tables.LOCAL_RECORD_NUMBER_TYPES`; then one of no or another type; a number another
body issued (`tables.is_foreign_identifier_type`: SSN, licence, insurance, account) only
when nothing else is sent. Ties go to the first sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote

from engine.formats.hl7v2 import Repetition, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib.fhir import resource_id


def chosen(reps: Sequence[Repetition]) -> Repetition | None:
    """The CX that keys the Patient: the best-ranked with an id number, the first sent
    of equals; None when none has an id number."""
    with_ids = [rep for rep in reps if dt.present(rep.value(1))]
    if not with_ids:
        return None
    # min keeps the first of equals
    return min(with_ids, key=lambda rep: tables.identifier_rank(dt.present(rep.value(5))))


def scope(rep: Repetition, facility: str) -> str:
    """Who issued the number: CX-4's authority when sent, else the sending facility.

    A CX-4 namespace alone scopes exactly as a sending facility of that name does (both
    give the identifier the system urn:conduit:id:<name>), so a feed that leaves CX-4
    empty and one that names the same organisation there key the patient alike; a
    universal id (an OID, a URI) scopes by itself, whatever namespace comes with it."""
    authority = dt.hd_system(rep.value(4, 1), rep.value(4, 2), rep.value(4, 3))
    if authority is None:
        return facility
    if authority.startswith(dt.CONDUIT_ID_PREFIX):
        return unquote(authority[len(dt.CONDUIT_ID_PREFIX):])
    return authority


def patient_id(reps: Sequence[Repetition], facility: str) -> str | None:
    """The Patient id keyed on `chosen(reps)` within its `scope`; None without an id."""
    rep = chosen(reps)
    identifier = dt.cx_to_identifier(rep, facility) if rep is not None else None
    if rep is None or identifier is None:
        return None
    return resource_id("Patient", scope(rep, facility), identifier)


def number_key(rep: Repetition | None, identifier: dict, facility: str, patient_id: str
               ) -> tuple[str, dict]:
    """(scope, key) of a visit or account number `rep` read as `identifier`: its own
    assigning authority's numbering when it names one (the identifier as it is), else
    the Patient's, whatever system the sending facility lent the identifier: a number
    no authority issued is only known to be unique for one patient, since two facilities
    behind one sender (an HIE) both count visits from 1, and two feeds of one hospital
    name the same visit each under its own MSH-4."""
    if rep is not None and any(dt.present(rep.value(4, i)) for i in (1, 2, 3)):
        return facility, identifier
    return f"Patient/{patient_id}", {"value": identifier.get("value")}
