"""engine/pipeline/routing.py: the filter's verdict, the mapping and the queue entries of
one parsed message, recorded into its unit of work; the shadow candidate on live
traffic only."""

from __future__ import annotations

from typing import Any

from engine.errors import MappingError
from engine.events import Kind
from engine.mapping import Mapping, Skip
from engine.message import MessageStatus, Parsed, Problem, ProblemKind
from engine.pipeline.filters import FilterError
from engine.pipeline.routing import Router, Target
from engine.pipeline.shadow import Shadow
from engine.store.writer import UnitOfWork


class Recorder:
    """The store's outputs and the queue, as lists."""

    def __init__(self) -> None:
        self.outputs: list[tuple[str, str, str, bytes]] = []
        self.puts: list[tuple[str, str, str | None]] = []

    def add_output(self, uow, message_id, mapping, content_type, content) -> str:
        self.outputs.append((message_id, mapping, content_type, content))
        return f"O{len(self.outputs)}"

    def put(self, uow, destination, message_id, output_id, now) -> None:
        self.puts.append((destination, message_id, output_id))


def _map(body: Any) -> Any:
    if body == "bad":
        raise MappingError("broken", field="PID-5")
    if body == "skip":
        return Skip("not ours")
    return b"out:" + body.encode()


LIVE = Mapping("live", 1, "hl7v2", "application/fhir+json", _map)
OTHER = Mapping("other", 2, "hl7v2", "application/fhir+json", lambda body: b"other")
HOP = {"channel": "adt", "message_id": "M1", "peer": "p", "patient": None}
TARGETS = [Target("ehr", "adt/ehr"), Target("archive", "adt/archive", received=True)]


def problem(kind: ProblemKind, text: str) -> Problem:
    return Problem(text, code=kind.name)


def router(recorder: Recorder, shadow: Shadow | None = None) -> Router:
    return Router("adt", mapping=LIVE, targets=TARGETS, outputs=recorder, queue=recorder,
                  problem=problem, shadow=shadow)


def kinds(uow: UnitOfWork) -> list[tuple[Kind, dict, str | None]]:
    return [(e.kind, e.detail, e.destination) for e in uow.events]


def test_accepted_maps_stores_the_output_and_queues_each_destination():
    rec, uow = Recorder(), UnitOfWork()
    routed = router(rec).route(uow, Parsed("hl7v2", body="x"), HOP, 1.0, None)
    assert (routed.status, routed.error, routed.problems) == (MessageStatus.ACCEPTED, None, ())
    assert rec.outputs == [("M1", "live@1", "application/fhir+json", b"out:x")]
    # the archive is sent the message as received
    assert rec.puts == [("adt/ehr", "M1", "O1"), ("adt/archive", "M1", None)]
    assert [k for k, _, _ in kinds(uow)] == [Kind.MAPPED, Kind.QUEUED, Kind.QUEUED]
    assert [d for _, _, d in kinds(uow)][1:] == ["ehr", "archive"]


def test_filtered_and_filter_errors_queue_nothing():
    rec = Recorder()
    uow = UnitOfWork()
    routed = router(rec).route(uow, Parsed("hl7v2", body="x"), HOP, 1.0, "MSH-9 equals 'A01'")
    assert (routed.status, routed.error) == (MessageStatus.FILTERED,
                                             "filtered: MSH-9 equals 'A01'")
    assert kinds(uow) == [(Kind.FILTERED, {"rule": "MSH-9 equals 'A01'"}, None)]
    uow = UnitOfWork()
    routed = router(rec).route(uow, Parsed("hl7v2", body="x"), HOP, 1.0,
                               FilterError("TypeError"))
    assert routed.status is MessageStatus.ERROR and routed.error == "filter: TypeError"
    assert routed.problems == (Problem("TypeError", code="FILTER_FAILED"),)
    assert rec.puts == [] and rec.outputs == []


def test_a_skip_is_filtered_and_a_mapping_error_names_its_field():
    rec = Recorder()
    uow = UnitOfWork()
    only_outputs = Router("adt", mapping=LIVE, targets=TARGETS[:1], outputs=rec, queue=rec,
                          problem=problem)
    routed = only_outputs.route(uow, Parsed("hl7v2", body="skip"), HOP, 1.0, None)
    assert (routed.status, routed.error) == (MessageStatus.FILTERED,
                                             "skipped by live@1: not ours")
    assert rec.puts == []
    uow = UnitOfWork()
    routed = router(rec).route(uow, Parsed("hl7v2", body="bad"), HOP, 1.0, None)
    assert routed.status is MessageStatus.ERROR
    assert routed.error == "mapping live@1 failed: PID-5: broken"
    assert routed.problems[0].code == "MAPPING_FAILED"
    assert kinds(uow) == [(Kind.ERRORED, {"mapping": "live@1", "reason": "PID-5: broken",
                                          "field": "PID-5"}, None)]
    assert rec.puts == []


def test_a_skipped_message_still_goes_to_destinations_sent_it_as_received():
    rec = Recorder()
    uow = UnitOfWork()
    routed = router(rec).route(uow, Parsed("hl7v2", body="skip"), HOP, 1.0, None)
    assert routed.status is MessageStatus.ACCEPTED
    assert rec.puts == [("adt/archive", "M1", None)] and rec.outputs == []
    assert kinds(uow) == [(Kind.MAPPED, {"mapping": "live@1", "skipped": "not ours"}, None),
                          (Kind.QUEUED, {}, "archive")]


def test_another_mapping_for_a_reprocess_and_the_shadow_on_live_traffic_only():
    rec = Recorder()
    shadow = Shadow(OTHER)
    route = router(rec, shadow)
    route.route(UnitOfWork(), Parsed("hl7v2", body="x"), HOP, 1.0, None)
    assert shadow.compared == 1
    route.route(UnitOfWork(), Parsed("hl7v2", body="x"), HOP, 1.0, None, OTHER)
    assert shadow.compared == 1  # a reprocess with another mapping is not compared
    assert rec.outputs[-1] == ("M1", "other@2", "application/fhir+json", b"other")


def test_a_raising_shadow_candidate_never_hurts_the_live_path():
    def boom(*args: Any) -> Any:
        raise RuntimeError("candidate bug")

    shadow = Shadow(OTHER)
    shadow.compare = boom  # type: ignore[method-assign]
    routed = router(Recorder(), shadow).route(UnitOfWork(), Parsed("hl7v2", body="x"), HOP,
                                              1.0, None)
    assert routed.status is MessageStatus.ACCEPTED
