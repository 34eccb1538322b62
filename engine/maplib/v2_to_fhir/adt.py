"""ADT: every admit, visit and person event as the Patient, the Encounter and what the
message carries about them (related persons, allergies, diagnoses, procedures,
observations, coverage, guarantors), with the message's Provenance and MessageHeader.

The organizations that assigned the patient's identifiers (with a universal id) are
their assigners, PID-21 names the newborn's mother when no NK1 does, each ROL person
is also a PractitionerRole, each AUT a preauthorization ClaimResponse, each RF1 the
referral's ServiceRequest, the ACC an Observation and PV1-54 an EpisodeOfCare (as the
reference converter makes them).

Event rules a receiver notices:
- person events (A28-A31, A40, A47) map a PV1 only when it names a visit (PV1-19):
  senders fill it with a placeholder;
- A17 swaps two patients' beds: both PID/PV1 groups are mapped; A24 links two
  patients (each `seealso` the other) and A37 unlinks them, both mapped too;
- merges and identifier changes (A18, A30, A34-A36, A39-A41, A46-A49) make the retired
  patient inactive and `replaced-by` the surviving one, which `replaces` it, with a
  Linkage of the two; A35, A36, A41 and A49 also retire the prior account (MRG-3);
- the other events of MORE_EVENTS (leave of absence, deletes, moves, changes of visit
  number or doctor, their cancels) map the Patient and the visit, its status by event;
- A29 (delete person information) makes the Patient inactive;
- an OBX without OBX-14 was observed as of the event (EVN-6, else EVN-2, else MSH-7).
"""

from __future__ import annotations

from engine.formats.hl7v2 import Segment
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_to_fhir import clinical, financial, people, ref, results, visit
from engine.maplib.v2_to_fhir.frame import Build
from engine.maplib.v2_to_fhir.provenance import finish
from engine.mapping_base import Skip

# The events of issue 13's list, each with a fixture.
CORE_EVENTS: tuple[str, ...] = (
    *(f"A{n:02d}" for n in (*range(1, 18), *range(25, 32))), "A40", "A41", "A45", "A47",
    "A60",
)
# Beyond that list, so no ADT a sender may send goes without output: leave of
# absence and its cancels, deletes, links, the other merges, moves and changes of ids,
# visit numbers and doctors (A20, bed status, and A19, a query, have no patient).
MORE_EVENTS: tuple[str, ...] = (
    "A18", "A21", "A22", "A23", "A24", "A32", "A33", "A34", "A35", "A36", "A37", "A38",
    "A39", "A42", "A43", "A44", "A46", "A48", "A49", "A50", "A51", "A52", "A53", "A54",
    "A55", "A61", "A62",
)
EVENTS: tuple[str, ...] = tuple(sorted(CORE_EVENTS + MORE_EVENTS))
RESOURCES: tuple[str, ...] = (
    "Patient", "RelatedPerson", "Practitioner", "PractitionerRole", "Organization",
    "Location", "Encounter", "EpisodeOfCare", "Account", "AllergyIntolerance", "Condition",
    "Procedure", "Observation", "Device", "DocumentReference", "Coverage", "ClaimResponse",
    "ServiceRequest", "Linkage", "MessageHeader", "Provenance",
)
# Events about the person alone: their PV1, when sent, is often a placeholder.
PERSON_EVENTS = frozenset({"A18", "A24", "A28", "A29", "A30", "A31", "A34", "A37", "A39",
                           "A40", "A43", "A46", "A47", "A48"})
# Merges and changes of identifiers: MRG's patient is retired into PID's.
MERGES = frozenset({"A18", "A30", "A34", "A35", "A36", "A39", "A40", "A41", "A46", "A47",
                    "A48", "A49"})
ACCOUNT_MERGES = frozenset({"A35", "A36", "A41", "A49"})  # MRG-3's account is retired too
TWO_PATIENTS = frozenset({"A17", "A24", "A37"})  # swap, link, unlink: both are mapped
_EVENTS = frozenset(EVENTS)


def build(message) -> dict | Skip:
    b = Build(message, "ADT")
    if b.event not in _EVENTS:
        return Skip(f"ADT^{b.event or '(no event)'} is not an ADT event this mapping reads")
    groups = _patient_groups(b)
    people.patient(b)
    _visit(b, groups[0][1])
    if b.event in TWO_PATIENTS:
        others = _other_patients(b, groups[1:])
        if b.event == "A24":
            _link(b, others)
    if b.event in MERGES:
        _merges(b, groups)
    if b.event == "A29" and b.patient is not None:
        b.patient["active"] = False
    people.assigners(b)
    visit.practitioner_roles(b)
    people.related_persons(b)
    people.mother(b)
    clinical.allergies(b)
    diagnoses = clinical.conditions(b)
    clinical.procedures(b)
    results.observations(b, b.message.all("OBX"),
                         context=results.Context(effective=_event_time(b), otherwise="survey"))
    visit.accident(b)
    visit.episode_of_care(b)
    coverages = financial.coverages(b)
    b.each("AUT", lambda aut, n: b.add(ref.authorization(b, aut, coverages)))
    b.each("RF1", lambda rf1, n: b.add(ref.referral(
        b, rf1, [], reasons=diagnoses, supporting=[], insurance=coverages, notes=[])))
    financial.guarantors(b)
    _account(b)
    return finish(b)


def _event_time(b: Build) -> str | None:
    """When the event happened (EVN-6), else was recorded (EVN-2, MSH-7): the time an
    OBX sent without OBX-14 was reported as current (US Core requires a vital sign's)."""
    evn = b.message.segment("EVN")
    sent = [(evn.value(6), "EVN-6"), (evn.value(2), "EVN-2")] if evn is not None else []
    sent.append((b.sent, "MSH-7"))
    for value, field in sent:
        when = dt.to_fhir_datetime(value, field, b.offset)
        if when:
            return when
    return None


def _patient_groups(b: Build) -> list[tuple[Segment, Segment | None, Segment | None]]:
    """Each PID with the PV1 and MRG of its group (the next ones before another PID)."""
    groups: list[list] = []
    for segment in b.message.segments:
        if segment.name == "PID":
            groups.append([segment, None, None])
        elif groups and segment.name == "PV1" and groups[-1][1] is None:
            groups[-1][1] = segment
        elif groups and segment.name == "MRG" and groups[-1][2] is None:
            groups[-1][2] = segment
    if not groups:
        people.patient(b)  # fails naming PID-3: no patient, nothing to map
    return [tuple(g) for g in groups]  # type: ignore[misc]


def _visit(b: Build, pv1: Segment | None) -> dict | None:
    if pv1 is None:
        return None
    if b.event in PERSON_EVENTS and visit.visit_identifier(pv1, b.facility) is None:
        return None
    made = visit.encounter(b, pv1, visits_only=True)
    visit.length_from_period(made)
    return made


def _other_patients(b: Build, groups: list) -> list[dict]:
    """A17's (A24's, A37's) second patient and visit (the first is `b.patient`,
    `b.encounter`); returns the other patients."""
    first, first_visit = b.patient, b.encounter
    others: list[dict] = []
    for pid, pv1, _mrg in groups:
        b.patient = people.patient(b, pid, primary=False)
        others.append(b.patient)
        if pv1 is not None:
            visit.length_from_period(visit.encounter(b, pv1, primary=False, visits_only=True))
    b.patient, b.encounter = first, first_visit
    return others


def _link(b: Build, others: list[dict]) -> None:
    """A24 links the patients' records: each `seealso` the other (neither retired)."""
    assert b.patient is not None
    for other in others:
        if other["id"] == b.patient["id"]:
            continue
        for one, two in ((b.patient, other), (other, b.patient)):
            link = {"other": b.ref(two), "type": "seealso"}
            if link not in one.setdefault("link", []):
                one["link"].append(link)


def _merges(b: Build, groups: list) -> None:
    """Each PID/MRG pair: the retired patient linked to the surviving one."""
    for n, (pid, _pv1, mrg) in enumerate(groups):
        if mrg is None:
            continue
        survivor = b.patient if n == 0 else people.patient(b, pid, primary=False)
        assert survivor is not None
        prior = people.prior_patient(b, mrg, survivor)
        if prior is not None:
            b.add(_linkage(b, survivor, prior))
        if b.event in ACCOUNT_MERGES:
            _prior_account(b, mrg, survivor)


def _linkage(b: Build, survivor: dict, prior: dict) -> dict:
    key = {"system": f"Patient/{survivor['id']}", "value": f"replaces|{prior['id']}"}
    return {
        "resourceType": "Linkage",
        "id": resource_id("Linkage", b.facility, key),
        "item": [{"type": "source", "resource": b.ref(survivor)},
                 {"type": "historical", "resource": b.ref(prior)}],
    }


def _prior_account(b: Build, mrg: Segment, survivor: dict) -> None:
    """A41's MRG-3 prior account, merged into the patient's current one: inactive."""
    rep = dt.first_rep(mrg, 3)
    ident = dt.cx_to_identifier(rep, b.facility) if rep is not None else None
    if ident is None:
        return
    b.add(compact({
        "resourceType": "Account",
        "id": resource_id("Account", b.facility, ident),
        "identifier": [ident],
        "status": "inactive",
        "subject": [b.ref(survivor)],
    }))


def _account(b: Build) -> None:
    """PID-18's account (made by the guarantors already, or here), on the Encounter."""
    pid = b.message.segment("PID")
    numbered = pid is not None and bool(dt.present(pid.value(18)))
    if b.patient is None or not (numbered or getattr(b, "account", None) is not None):
        return
    acct = financial.account(b)
    if b.encounter is not None:
        b.encounter["account"] = [b.ref(acct)]
