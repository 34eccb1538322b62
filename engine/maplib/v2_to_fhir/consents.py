"""CON as Consent: the consents a message carries (MDM, v2.6+), each of the patient,
as the reference converter maps them."""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Segment
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import tolerate
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_codes import first_concept
from engine.maplib.v2_to_fhir import people
from engine.maplib.v2_to_fhir.frame import Build

CONSENT_STATUS = {"A": "active", "L": "active", "B": "active", "P": "proposed",
                  "R": "rejected", "X": "inactive"}  # table 0498
PRIVACY_CONSENTS = frozenset({"001", "003"})  # table 0496: release of information, notice
_CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
PATIENT_CONSENT = {"coding": [{"system": "http://loinc.org", "code": "59284-0",
                               "display": "Patient Consent"}]}
CONSENTER_PRACTITIONER = frozenset({"6", "7"})  # table 0548: emergent, non-emergent


def consents(b: Build) -> list[dict]:
    """Each CON as a Consent of the patient, as the reference converter makes them: the
    consent type (CON-2, table 0496) as its category beside LOINC 59284-0, the scope
    (patient-privacy for a release of information or a privacy notice, else treatment),
    the form number (CON-4), the consent text (CON-5, CON-6) as its policy rule (else the
    form id CON-3, else the type), status CON-11 (table 0498; active when not sent), the
    decision time (CON-13), the period it is in effect (CON-14/15), and who consented
    (CON-24 with CON-25: the patient, a practitioner, else a related person)."""
    if b.patient is None:
        return []
    return [b.add(c) for c in b.each("CON", lambda con, n: _consent(b, con, n)) if c]


def _consent(b: Build, con: Segment, n: int) -> dict:
    assert b.patient is not None
    kind = first_concept(con, 2, b.facility)
    code = dt.present(con.value(2, 1)).upper()
    form = dt.first_ei(con, 4, b.facility)
    texts = [t for t in (dt.present(con.value(5)), dt.present(con.value(6))) if t]
    rule = (" + ".join(texts) or dt.present(con.value(3))
            or (kind or {}).get("text") or next(
                (c.get("display") or c.get("code") for c in (kind or {}).get("coding", [])),
                None) or "Consent")
    status_code = dt.present(con.value(11, 1)).upper()
    status = CONSENT_STATUS.get(status_code)
    if status is None and status_code:
        tolerate(MappingError("is not a consent status of table 0498; read as active",
                              field=b.field(con, 11)))
    scope = "patient-privacy" if code in PRIVACY_CONSENTS else "treatment"
    key = form or {"system": f"Patient/{b.patient['id']}",
                   "value": f"CON|{dt.present(con.value(1)) or n}|{code}"}
    return compact({
        "resourceType": "Consent",
        "id": resource_id("Consent", b.facility, key),
        "identifier": [form] if form else None,
        "status": status or "active",
        "scope": {"coding": [{"system": _CONSENT_SCOPE, "code": scope,
                              "display": scope.replace("-", " ").capitalize()}]},
        "category": [PATIENT_CONSENT, *([kind] if kind else [])],
        "patient": b.ref(b.patient),
        "dateTime": dt.to_fhir_datetime(con.value(13), b.field(con, 13), b.offset),
        "performer": _consenters(b, con),
        "policyRule": {"text": rule},
        "provision": compact({"period": compact({
            "start": dt.to_fhir_datetime(con.value(14), b.field(con, 14), b.offset),
            "end": dt.to_fhir_datetime(con.value(15), b.field(con, 15), b.offset)})}),
    })


def _consenters(b: Build, con: Segment) -> list[dict]:
    """CON-24 consenters by their CON-25 relationship (table 0548)."""
    assert b.patient is not None
    found: list[dict] = []
    relations = con.repetitions(25)
    for i, rep in enumerate(con.repetitions(24)):
        name = dt.xpn_to_human_name(rep)
        relation = dt.present(relations[i].value(1)) if i < len(relations) else ""
        if relation == "1":
            found.append(b.ref(b.patient))
        elif name is None:
            continue
        elif relation in CONSENTER_PRACTITIONER:
            key = {"system": "name", "value": dt.present(rep.value(1, 1)).upper() + "^"
                   + dt.present(rep.value(2)).upper()}
            rid = resource_id("Practitioner", b.facility, key)
            who = b.add(compact({
                "resourceType": "Practitioner", "id": rid,
                "identifier": [people.resource_identifier(rid)],
                "name": [name]}), merge=True)
            found += [b.ref(who)] if who else []
        else:
            key = {"system": f"Patient/{b.patient['id']}", "value": "CON-24|" + "^".join(
                (dt.present(rep.value(1, 1)).upper(), dt.present(rep.value(2)).upper()))}
            who = b.add({"resourceType": "RelatedPerson",
                         "id": resource_id("RelatedPerson", b.facility, key),
                         "patient": b.ref(b.patient), "name": [name]}, merge=True)
            found += [b.ref(who)] if who else []
    return found
