"""The gate on one output (engine.conformance.gate) and in routing: a failing output gets
no queue entry for the gated destination and an errored event with its reasons; the
other destinations are queued; equal gates are checked once, and a channel without a
gate checks nothing."""

from __future__ import annotations

import json
from typing import Any

from engine.config.conformance import ConformanceConfig
from engine.conformance import gate as gate_module
from engine.conformance import r4
from engine.conformance.gate import MAX_REASONS, Gate, check_all
from engine.events import Kind
from engine.mapping import Mapping
from engine.message import MessageStatus, Parsed, Problem, ProblemKind
from engine.pipeline import routing
from engine.pipeline.routing import Router, Target
from engine.store.writer import UnitOfWork
from tests.unit.conformance_examples import MRN, NAME, bundle, example

R4_ONLY = Gate()
US_CORE = Gate.of(ConformanceConfig(profiles=["us-core"]))
NO_CATEGORY = ("Bundle.entry[1].resource(Observation).category: US Core Laboratory Result "
               "Observation requires a laboratory category")


def lab_bundle(category: bool = True) -> bytes:
    """A lab result: the Patient, the Observation and the report that lists it."""
    obs = example("us-core-observation-lab")
    if not category:
        del obs["category"]
    report = example("us-core-diagnosticreport-lab")
    report["result"] = [{"reference": "urn:uuid:obs-lab"}]
    return json.dumps(bundle(example("us-core-patient"), obs, report)).encode()


def test_a_valid_bundle_passes_every_gate() -> None:
    verdicts = check_all(lab_bundle(), [R4_ONLY, US_CORE])
    assert all(v.passed for v in verdicts.values()) and set(verdicts) == {R4_ONLY, US_CORE}


def test_valid_r4_can_still_fail_us_core_with_a_located_reason() -> None:
    verdicts = check_all(lab_bundle(category=False), [R4_ONLY, US_CORE])
    assert verdicts[R4_ONLY].passed
    assert verdicts[US_CORE].reasons == (NO_CATEGORY,)


def test_a_single_resource_output_is_located_from_its_type() -> None:
    patient = example("us-core-patient")
    del patient["gender"]
    [verdict] = check_all(json.dumps(patient).encode(), [US_CORE]).values()
    assert verdict.reasons == ("Patient.gender: US Core Patient requires a gender",)


def test_references_resolve_inside_the_bundle() -> None:
    prov = example("us-core-provenance")
    prov["agent"] = [{"who": {"reference": "urn:uuid:prac-1"}}]
    out = json.dumps(bundle(example("us-core-practitioner"), prov)).encode()
    assert check_all(out, [US_CORE])[US_CORE].reasons == (
        "Bundle.entry[1].resource(Provenance).agent[0].onBehalfOf: US Core Provenance "
        "requires onBehalfOf when the agent is a Practitioner or Device (provenance-1)",)


def test_what_is_not_fhir_json_is_held() -> None:
    assert check_all(b"MSH|^~\\&|", [R4_ONLY])[R4_ONLY].reasons == (
        "output: is not FHIR JSON",)
    assert check_all(b"[1, 2]", [R4_ONLY])[R4_ONLY].reasons == (
        "output: is not a FHIR resource",)


def test_a_bundle_over_max_entries_is_held_unvalidated() -> None:
    small = Gate(max_entries=1)
    [verdict] = check_all(lab_bundle(), [small]).values()
    assert verdict.reasons == ("Bundle.entry: 3 entries, over this gate's max_entries of 1; "
                               "held unvalidated",)


def test_reasons_are_capped_and_say_there_were_more() -> None:
    patients = []
    for i in range(MAX_REASONS + 5):
        patient = example("us-core-patient")
        patient["id"] = f"p{i}"
        del patient["gender"]
        patients.append(patient)
    [verdict] = check_all(json.dumps(bundle(*patients)).encode(), [US_CORE]).values()
    assert len(verdict.reasons) == MAX_REASONS and verdict.more
    assert verdict.reasons[3] == ("Bundle.entry[3].resource(Patient).gender: US Core "
                                  "Patient requires a gender")


def test_r4_is_validated_once_per_resource_however_many_gates(monkeypatch) -> None:
    calls: list[str] = []
    real = r4.resource_reasons

    def counting(resource: Any, where: str) -> list[str]:
        calls.append(where)
        return real(resource, where)

    monkeypatch.setattr(gate_module.r4, "resource_reasons", counting)
    check_all(lab_bundle(), [R4_ONLY, US_CORE, Gate.of(ConformanceConfig(
        profiles=["us-core-patient"]))])
    assert [c for c in calls if c.startswith("Bundle.entry")] == [
        "Bundle.entry[0].resource(Patient)", "Bundle.entry[1].resource(Observation)",
        "Bundle.entry[2].resource(DiagnosticReport)"]


# ---- in routing -------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.puts: list[tuple[str, str, str | None]] = []

    def add_output(self, uow, message_id, mapping, content_type, content) -> str:
        return "O1"

    def put(self, uow, destination, message_id, output_id, now) -> None:
        self.puts.append((destination, message_id, output_id))


HOP = {"channel": "lab", "message_id": "M1", "peer": "p", "patient": None}
GATED = ConformanceConfig(profiles=["us-core"])


def problem(kind: ProblemKind, text: str) -> Problem:
    return Problem(text, code=kind.name)


def route(targets: list[Target], output: bytes) -> tuple[Any, Recorder, UnitOfWork]:
    rec, uow = Recorder(), UnitOfWork()
    mapping = Mapping("lab-to-fhir", 1, "hl7v2", "application/fhir+json", lambda b: output)
    routed = Router("lab", mapping=mapping, targets=targets, outputs=rec, queue=rec,
                    problem=problem).route(uow, Parsed("hl7v2", body="x"), HOP, 1.0, None)
    return routed, rec, uow


def test_a_failing_output_is_held_for_the_gated_destination_only() -> None:
    targets = [Target("ehr", "lab/ehr", conformance=GATED), Target("files", "lab/files")]
    routed, rec, uow = route(targets, lab_bundle(category=False))
    assert rec.puts == [("lab/files", "M1", "O1")]
    assert routed.status is MessageStatus.ERROR
    assert routed.error == (
        "held for destination ehr: the output of lab-to-fhir@1 fails its conformance gate "
        f"(FHIR R4, us-core): {NO_CATEGORY}")
    assert routed.problems == (Problem(routed.error, code="MAPPING_FAILED"),)
    [errored] = [e for e in uow.events if e.kind is Kind.ERRORED]
    assert errored.destination == "ehr"
    assert errored.detail["reasons"] == [NO_CATEGORY]
    assert errored.detail["mapping"] == "lab-to-fhir@1"
    assert errored.detail["reason"] == routed.error  # the channel's last error
    assert [e.destination for e in uow.events if e.kind is Kind.QUEUED] == ["files"]
    assert NAME not in json.dumps(errored.detail) and MRN not in json.dumps(errored.detail)



def test_a_passing_output_is_queued_for_every_destination() -> None:
    targets = [Target("ehr", "lab/ehr", conformance=GATED), Target("files", "lab/files")]
    routed, rec, uow = route(targets, lab_bundle())
    assert routed.status is MessageStatus.ACCEPTED and routed.error is None
    assert rec.puts == [("lab/ehr", "M1", "O1"), ("lab/files", "M1", "O1")]
    assert not [e for e in uow.events if e.kind is Kind.ERRORED]


def test_two_gated_destinations_each_held_with_its_own_gate() -> None:
    targets = [Target("ehr", "lab/ehr", conformance=GATED),
               Target("hie", "lab/hie", conformance=ConformanceConfig()),
               Target("registry", "lab/registry", conformance=ConformanceConfig(
                   profiles=["us-core-patient"]))]
    routed, rec, uow = route(targets, lab_bundle(category=False))
    assert rec.puts == [("lab/hie", "M1", "O1"), ("lab/registry", "M1", "O1")]
    assert routed.error is not None and routed.error.startswith("held for destination ehr")
    assert [e.destination for e in uow.events if e.kind is Kind.ERRORED] == ["ehr"]


def test_equal_gates_are_checked_once_and_no_gate_checks_nothing(monkeypatch) -> None:
    seen: list[list[Gate]] = []
    real = routing.check_all

    def spy(content: bytes, gates: Any) -> Any:
        seen.append(list(gates))
        return real(content, gates)

    monkeypatch.setattr(routing, "check_all", spy)
    route([Target("a", "lab/a", conformance=GATED), Target("b", "lab/b", conformance=GATED)],
          lab_bundle())
    assert len(seen) == 1 and len(set(seen[0])) == 1
    seen.clear()
    routed, rec, _ = route([Target("a", "lab/a"), Target("b", "lab/b")], b"not even json")
    assert seen == [] and routed.status is MessageStatus.ACCEPTED and len(rec.puts) == 2


def test_a_destination_sent_the_message_as_received_is_not_gated() -> None:
    """(The config refuses a gate there; routing never holds what it does not check.)"""
    routed, rec, _ = route([Target("raw", "lab/raw", received=True, conformance=GATED)],
                           b"not json")
    assert routed.status is MessageStatus.ACCEPTED and rec.puts == [("lab/raw", "M1", None)]


def test_a_gate_is_described_as_configured_and_equal_gates_are_one() -> None:
    assert US_CORE.describe() == "FHIR R4, us-core"
    named = Gate.of(ConformanceConfig(profiles=["us-core-patient", "us-core-encounter"]))
    assert named.describe() == "FHIR R4, us-core-patient, us-core-encounter"
    assert R4_ONLY.describe() == "FHIR R4, no US Core profile"
    spelled_out = Gate.of(ConformanceConfig(profiles=list(US_CORE.profiles)))
    assert spelled_out == US_CORE and len(check_all(lab_bundle(), [spelled_out, US_CORE])) == 1


def test_the_command_checks_files_as_a_gate_would(tmp_path, capsys) -> None:
    from engine.conformance.__main__ import main

    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_bytes(lab_bundle())
    bad.write_bytes(lab_bundle(category=False))
    assert main([str(good), str(bad)]) == 1
    assert capsys.readouterr().out.splitlines() == [f"{good}: ok", f"{bad}: {NO_CATEGORY}"]
    assert main(["--profiles", "", str(bad)]) == 0  # valid R4 all the same
    assert main(["--profiles", "us-core-patient", str(good)]) == 0
