"""PPR: problem list changes (PC1 add, PC2 update, PC3 delete) as problem-list Conditions
with what each PROBLEM group carries: its NTE notes, the OBX behind it (Observations the
Condition cites as evidence), its GOL goals (Goals addressing it), the ROL of who
asserted it and its ORC/OBR orders (ServiceRequests with the problem as their reason).

A PC3 deletes: the problems it lists are entered-in-error, with no clinicalStatus (FHIR
con-5). Conditions are keyed on PRB-4 (else the patient and PRB-3), Goals on GOL-4 (else
the problem and GOL-3), so PC2 and PC3 update what PC1 wrote.
"""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Segment
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import tolerate
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_codes import cwe_to_codeable_concept
from engine.maplib.v2_orders import OrderGroup
from engine.maplib.v2_to_fhir import clinical, orders, people, results, visit
from engine.maplib.v2_to_fhir.frame import Build
from engine.maplib.v2_to_fhir.provenance import finish
from engine.mapping_base import Skip

# A problem's and a goal's OBX are assessments made about them (a pain score).
SURVEY = results.Context(otherwise="survey")
EVENTS: tuple[str, ...] = ("PC1", "PC2", "PC3")
RESOURCES: tuple[str, ...] = (
    "Patient", "RelatedPerson", "Encounter", "EpisodeOfCare",
    "Location", "Practitioner", "PractitionerRole", "Organization",
    "Condition", "Observation", "Device", "DocumentReference", "Goal", "ServiceRequest",
    "Specimen", "Provenance", "MessageHeader",
)
# GOL-18 goal life cycle status -> Goal.lifecycleStatus (codes and words senders use).
GOAL_LIFECYCLE = {
    "P": "proposed", "PROPOSED": "proposed", "PL": "planned", "PLANNED": "planned",
    "AC": "accepted", "ACCEPTED": "accepted", "A": "active", "ACTIVE": "active",
    "H": "on-hold", "ON HOLD": "on-hold", "HOLD": "on-hold", "C": "completed",
    "COMPLETED": "completed", "CA": "cancelled", "CANCELLED": "cancelled",
    "R": "rejected", "REJECTED": "rejected", "E": "entered-in-error",
}


def build(message: Hl7Message) -> dict | Skip:
    b = Build(message, "PPR")
    if b.event not in EVENTS:
        return Skip(f"PPR^{b.event or '(no event)'} is not a problem event this mapping reads")
    people.patient(b)
    visit.encounter(b)
    people.assigners(b)
    people.mother(b)
    groups = problem_groups(message)
    if not groups:
        tolerate(MappingError("the message has no PRB segment: no problem, only the "
                              "patient is mapped", field="PRB"))
    for prb, body in groups:
        made = b.each("PRB", lambda s, n: clinical.problem(b, s), [prb])
        condition = b.add(made[0]) if made else None
        _group_facts(b, condition, body)
    visit.episode_of_care(b)
    return finish(b)


def problem_groups(message: Hl7Message) -> list[tuple[Segment, list[Segment]]]:
    """Each PRB with the segments after it up to the next PRB."""
    groups: list[tuple[Segment, list[Segment]]] = []
    for segment in message.segments:
        if segment.name == "PRB":
            groups.append((segment, []))
        elif groups:
            groups[-1][1].append(segment)
    return groups


def _group_facts(b: Build, condition: dict | None, body: list[Segment]) -> None:
    """The problem's own OBX (evidence) and ROL (asserter), then each GOAL group: a GOL
    with its NTE (notes), ROL and OBX (the goal's outcome observations)."""
    first_order = next((i for i, s in enumerate(body) if s.name == "ORC"), len(body))
    body, ordered = body[:first_order], body[first_order:]
    first_goal = next((i for i, s in enumerate(body) if s.name == "GOL"), len(body))
    own, goals = body[:first_goal], body[first_goal:]
    observations = results.observations(b, [s for s in own if s.name == "OBX"],
                                        context=SURVEY)
    if condition is not None and observations:
        condition["evidence"] = [{"detail": [b.ref(o) for o in observations]}]
    asserter = _asserter(b, [s for s in own if s.name == "ROL"])
    if condition is not None and asserter is not None and "asserter" not in condition:
        condition["asserter"] = b.ref(asserter)
    for gol, parts in _goal_groups(goals):
        made = b.each("GOL", lambda s, n, parts=parts: goal(b, s, condition, parts), [gol])
        if made:
            b.add(made[0])
    for group in _order_groups(ordered):
        request = orders.service_order(b, group)
        if request is not None and condition is not None:
            reasons = request.setdefault("reasonReference", [])
            if b.ref(condition) not in reasons:
                reasons.append(b.ref(condition))


def _order_groups(segments: list[Segment]) -> list[OrderGroup]:
    """The PROBLEM's ORDER groups: each ORC with the OBR (or RXO, ...) and what follows."""
    groups: list[OrderGroup] = []
    for segment in segments:
        if segment.name == "ORC":
            groups.append(OrderGroup(segment, None, []))
        elif groups:
            orc, obr, body = groups[-1]
            if segment.name == "OBR" and obr is None:
                groups[-1] = OrderGroup(orc, segment, body)
            body.append(segment)
    return groups


def _goal_groups(segments: list[Segment]) -> list[tuple[Segment, list[Segment]]]:
    groups: list[tuple[Segment, list[Segment]]] = []
    for segment in segments:
        if segment.name == "GOL":
            groups.append((segment, []))
        elif groups:
            groups[-1][1].append(segment)
    return groups


def _asserter(b: Build, rols: list[Segment]) -> dict | None:
    """The first person a ROL of the problem names (ROL-4)."""
    for rol in rols:
        for rep in rol.repetitions(4):
            found = people.practitioner(b, rep)
            if found is not None:
                return found
    return None


def goal(b: Build, gol: Segment, condition: dict | None, parts: list[Segment]) -> dict:
    """The Goal of a GOL, addressing the problem (None when its PRB could not be mapped:
    the goal is still the patient's), with its group's `parts` (NTE notes, ROL
    expressedBy, OBX outcomes); fails naming GOL-3 when it does not say what the goal
    is."""
    assert b.patient is not None
    description = cwe_to_codeable_concept(dt.first_rep(gol, 3), b.facility)
    if description is None:
        raise MappingError("names no goal, so it cannot be recorded", field="GOL-3")
    identifier = dt.first_ei(gol, 4, b.facility)
    key = ({"system": identifier["system"], "value": identifier["value"]} if identifier
           else {"system": f"Condition/{condition['id']}" if condition
                 else f"Patient/{b.patient['id']}", "value": "goal|" + _label(description)})
    deleted = dt.present(gol.value(1)).upper() == "DE" or b.event == "PC3"
    due = dt.to_fhir_date(gol.value(8), "GOL-8")
    notes = [{"text": t} for t in (dt.present(gol.value(17)),) if t]
    notes += clinical.notes_after(b, gol)  # its own NTE, not an OBX's
    outcomes = results.observations(b, [s for s in parts if s.name == "OBX"], context=SURVEY)
    expressed = _asserter(b, [s for s in parts if s.name == "ROL"])
    return compact({
        "resourceType": "Goal",
        "id": resource_id("Goal", b.facility, key),
        "identifier": [identifier] if identifier else None,
        "lifecycleStatus": "entered-in-error" if deleted else _lifecycle(gol),
        "category": [c for c in (cwe_to_codeable_concept(dt.first_rep(gol, 9), b.facility),)
                     if c],
        "description": description,
        "subject": b.patient_ref(),
        "startDate": dt.to_fhir_date(gol.value(7), "GOL-7"),
        "target": [{"dueDate": due}] if due else None,
        "statusDate": dt.to_fhir_date(gol.value(19), "GOL-19"),
        "expressedBy": b.ref(expressed) if expressed else None,
        "addresses": [b.ref(condition)] if condition else None,
        "note": notes,
        "outcomeReference": [b.ref(o) for o in outcomes],
    })


def _lifecycle(gol: Segment) -> str:
    code, text = (dt.present(gol.value(18, c)).upper() for c in (1, 2))
    if not code and not text:
        return "active"
    found = GOAL_LIFECYCLE.get(code) or GOAL_LIFECYCLE.get(text)
    if found is None:
        return tolerate(MappingError("holds a goal status this mapping does not know; read "
                                     "as active", field="GOL-18"), "active")
    return found


def _label(concept: dict) -> str:
    for coding in concept.get("coding", []):
        return f"{coding.get('system', '')}|{coding['code']}"
    return concept.get("text", "").upper()
