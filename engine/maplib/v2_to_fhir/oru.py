"""ORU: results as DiagnosticReport per OBR with its Observations (every OBX value type),
Specimens, the ServiceRequest each answers, and the Patient and Encounter they are about.

Every PATIENT_RESULT group is mapped: a message that carries a second PID (a batch of
reports for several patients) gives each patient's results under that patient, never
under the first. Ids are those hl7v2-oru-to-fhir@1 gave the same facts (Patient as the
ADT feed, DiagnosticReport by filler number and OBR-4, Observation by OBX-1/OBX-4), so a
resend or an upgrade updates rather than duplicates.
"""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import tolerate
from engine.maplib.fhir import resource_id
from engine.maplib.v2_orders import keyed, order_groups, order_numbers, receiving_facility
from engine.maplib.v2_to_fhir import financial, people, results, visit
from engine.maplib.v2_to_fhir.frame import Build
from engine.maplib.v2_to_fhir.order_keys import filler_facility, placer_facility
from engine.maplib.v2_to_fhir.orders import service_request
from engine.maplib.v2_to_fhir.provenance import finish
from engine.maplib.v2_to_fhir.results import (
    Context,
    diagnostic_report,
    presented_forms,
    report_key,
    report_parts,
    report_status,
)
from engine.maplib.v2_to_fhir.specimens import of_report
from engine.mapping_base import Skip

EVENTS: tuple[str, ...] = ("R01", "R30", "R31", "R32")
RESOURCES: tuple[str, ...] = (
    "Patient", "RelatedPerson", "Encounter", "Account", "Location", "Practitioner",
    "PractitionerRole", "Organization", "MessageHeader",
    "ServiceRequest", "Specimen", "DiagnosticReport", "Observation", "DocumentReference",
    "Device", "Provenance",
)


def build(message: Hl7Message) -> dict | Skip:
    b = Build(message, "ORU", default_event="R01")
    if b.event not in EVENTS:
        return Skip(f"ORU^{b.event or '(no event)'} is not a result event this mapping reads")
    groups = patient_groups(message)
    if not groups:
        raise MappingError("the PID segment is missing, so there is no patient", field="PID-3")
    if not any(s.name in ("OBR", "OBX") for s in message.segments):
        tolerate(MappingError("the message has no OBR or OBX segment, so there is no "
                              "result; only the patient and visit are mapped", field="OBR"))
    for segments in groups:
        with_patient(b, segments)
        report_groups(b, segments)
    return finish(b)


def patient_groups(message: Hl7Message) -> list[list[Segment]]:
    """The message's PATIENT_RESULT groups: each PID with the segments up to the next."""
    groups: list[list[Segment]] = []
    for seg in message.segments:
        if seg.name == "PID":
            groups.append([])
        if groups:
            groups[-1].append(seg)
    return groups


def with_patient(b: Build, segments: list[Segment]) -> None:
    """Set `b.patient` and `b.encounter` (with related persons and the PID-18 account)
    from one patient group's PID, PV1 and NK1, read as people and visit read a message of
    that group alone."""
    whole = b.message
    b.message = Hl7Message([whole.segments[0], *segments], whole.delimiters)
    try:
        b.encounter = None
        b.account = None  # type: ignore[attr-defined]  # each patient's own
        people.patient(b)
        visit.encounter(b)
        if b.encounter is None:  # no PV1: the visit is unknown, but there is one
            b.encounter = visit.unknown(b, _results_key(b))
        people.related_persons(b)
        financial.patient_account(b)
    finally:
        b.message = whole


def _results_key(b: Build) -> dict:
    """What a patient group's unknown visit is keyed on: its first order's placer (else
    filler) number, so a corrected result finds the same Encounter; else the message."""
    for group in order_groups(b.message):
        numbers = order_numbers(group.orc, group.obr, placer_authority=placer_facility(b),
                                filler_authority=filler_facility(b))
        found = numbers.placer or numbers.filler
        if found is not None:
            return {"value": f"{found.get('system', '')}|{found['value']}"}
    return {"value": f"MSH|{dt.present(b.message.segments[0].value(10))}"}


def report_groups(b: Build, segments: list[Segment]) -> list[dict]:
    """One DiagnosticReport (and its parts) per OBR of a patient group; OBX that no OBR
    heads are Observations of their own. Returns the reports."""
    part = Hl7Message([b.message.segments[0], *segments], b.message.delimiters)
    reports: list[dict] = []
    orphans = []
    for seg in segments:
        if seg.name in ("ORC", "OBR"):
            break
        if seg.name == "OBX":
            orphans.append(seg)
    if orphans:
        results.observations(b, orphans, context=Context(section=""))
    for group in order_groups(part):
        if group.obr is None:  # an ORC heading OBX without an OBR: results of that order
            obxs = [s for s in group.body if s.name == "OBX"]
            request = service_request(b, group.orc, None) if obxs else None
            results.observations(b, obxs, based_on=[request] if request else None,
                                 context=Context(section=""))
            continue
        report = b.each("OBR", lambda obr, n, g=group: report_group(b, g.orc, obr, g.body),
                        [group.obr])
        reports += report
    return reports


def report_group(b: Build, orc: Segment | None, obr: Segment, body: list[Segment],
                 outer: list[dict] | None = None) -> dict:
    """The ServiceRequest, Specimens, Observations and DiagnosticReport of one OBR;
    `outer` are the Specimens the group sits under (an OUL's SPM before its orders)."""
    key, identifiers, _placer = report_key(b, orc, obr)
    if any(r["id"] == resource_id("DiagnosticReport", b.facility, key)
           for r in b.resources("DiagnosticReport")):
        tolerate(MappingError("carries the order number and test code of an earlier OBR; "
                              "mapped as a report of its own", field="OBR-3"))
        key = keyed(key, f"OBR{results.occurrence(b, obr)}")
    parts = report_parts(body)
    request = service_request(b, orc, obr)
    based_on = [b.ref(request)] if request is not None else []
    specimens = (outer if outer and not parts.spms else
                 of_report(b, obr, parts.spms, key))
    status = report_status(obr)
    by_spm = {id(obx): specimens[i] for obx, i in parts.results
              if i is not None and i < len(specimens)}
    context = Context(
        key=key, section=obr.value(24), report_status=status,
        effective=dt.to_fhir_datetime(obr.value(7), "OBR-7", b.offset)
        or results.collected(specimens),
        issued=dt.to_fhir_instant(obr.value(22), "OBR-22", b.offset),
        specimen_of=lambda obx: by_spm.get(id(obx)),
    )
    made = results.observations(
        b, [obx for obx, _ in parts.results], based_on=based_on,
        specimen=specimens[0] if specimens else None, context=context)
    _collected(b, obr, specimens)
    _parent_result(b, obr, made)
    report = diagnostic_report(
        b, orc, obr, key=key, identifiers=identifiers, status=status,
        based_on=based_on + _parent_order(b, obr),
        results=made, specimens=specimens, notes=parts.notes,
        forms=presented_forms(b, parts.forms))
    return b.add(report)


def _collected(b: Build, obr: Segment, specimens: list[dict]) -> None:
    """OBR-10 collector and OBR-14 received time for the group's first Specimen, where its
    SPM did not say (OBR-15 specimens read them themselves)."""
    collector = people.practitioner(b, dt.first_rep(obr, 10))
    received = dt.to_fhir_datetime(obr.value(14), "OBR-14", b.offset)
    if not specimens:
        return
    first = specimens[0]
    if collector is not None:
        collection = first.setdefault("collection", {})
        collection.setdefault("collector", b.ref(collector))
    if received:
        first.setdefault("receivedTime", received)


def _parent_result(b: Build, obr: Segment, made: list[dict]) -> None:
    """OBR-26 parent result (the isolate a susceptibility panel is about: its OBX-3 code
    and OBX-4 sub-id): that earlier Observation gains this group's results as
    hasMember, the FHIR shape of an organism and its susceptibilities."""
    code, sub_id = dt.present(obr.value(26, 1, 1)), dt.present(obr.value(26, 2))
    if not code or not made:
        return
    earlier = results.made_for(b)
    for obx in b.message.all("OBX"):
        if dt.present(obx.value(3, 1)) == code and dt.present(obx.value(4)) == sub_id:
            parent = earlier.get(id(obx))
            if parent is not None and parent not in made:
                members = parent.setdefault("hasMember", [])
                members += [b.ref(o) for o in made if b.ref(o) not in members]
                return
    tolerate(MappingError("names a parent result this message does not carry",
                          field="OBR-26"))


def _parent_order(b: Build, obr: Segment) -> list[dict]:
    """OBR-29 parent order (a reflex test's): basedOn by its filler (else placer) number."""
    for component, kind in ((2, "FILL"), (1, "PLAC")):
        parts = [obr.value(29, component, s) for s in (1, 2, 3, 4)]
        authority = b.facility if kind == "FILL" else receiving_facility(b.message) or b.facility
        identifier = dt.ei_parts_to_identifier(
            parts, authority, tables.FILLER_IDENTIFIER if kind == "FILL"
            else tables.PLACER_IDENTIFIER)
        if identifier:
            return [{"type": "ServiceRequest", "identifier": identifier}]
    return []
