"""The engine as a FHIR client, against a real aiohttp FHIR server on loopback: which
interaction each setting makes, what a redelivery does to the server's data, and how the
server's answers (errors, Retry-After, transaction and batch responses) steer the queue.

Messages come in over MLLP and go through hl7v2-patient-summary@1, which makes one
Patient (with an id and the MR identifier) per ADT message.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from urllib.parse import unquote

import pytest
import sqlalchemy as sa

from engine.config.types import Duration
from engine.connectors.base import DestinationContext
from engine.connectors.fhir import FhirDestination, FhirDestinationConfig
from engine.message import Fail, Outbound, Retry, Sent
from engine.store.schema import audit, dead_letter_answers
from tests.fhir_server import Answer
from tests.harness import adt, exchange, free_port

SYSTEM = "urn:conduit:id:NORTHWING"  # the MR identifier system the mapping writes
NAME, MRN = "PLUMTREEWICK", "MRN55501234"  # the test patient: never in a log or the audit


def patient_channel(port: int, fhir_url: str, destination: str = "",
                    retry: str = "{max_attempts: 4, initial_delay: 20ms, max_delay: 5s, "
                                 "jitter: 0}") -> str:
    return f"""
    source: {{type: mllp, port: {port}, read_timeout: 2s}}
    mapping: hl7v2-patient-summary@1
    retry: {retry}
    destinations:
      - {{name: ehr, type: fhir, url: "{fhir_url}", timeout: 1s{destination}}}
    """


def events(engine, kind: str | None = None) -> list[dict]:
    """The ehr destination's audit events (kind, detail, time), oldest first."""
    with engine.services.db.connect() as conn:
        rows = conn.execute(sa.select(audit).where(audit.c.destination == "ehr")
                            .order_by(audit.c.seq)).all()
    return [{"kind": r.kind, "at": r.at_us / 1e6, **json.loads(r.detail)} for r in rows
            if kind is None or r.kind == kind]


def done(engine) -> bool:
    return any(e["kind"] in ("sent", "dead-lettered") for e in events(engine))


async def run_one(harness, fhir, destination: str = "", message: bytes | None = None,
                  **kwargs):
    port = free_port()
    engine = await harness.start({"adt": patient_channel(port, fhir.url, destination,
                                                         **kwargs)})
    [ack] = await exchange(port, [message or adt("C1", MRN, family=NAME)])
    assert ack.value("MSA-1") == "AA"
    await harness.settle(lambda: done(engine))
    return engine


# -- interactions ------------------------------------------------------------------------

async def test_auto_puts_at_the_resource_id_so_a_second_message_updates(harness, fhir):
    port = free_port()
    engine = await harness.start({"adt": patient_channel(port, fhir.url)})
    await exchange(port, [adt("C1", MRN, family=NAME), adt("C2", MRN, family="RENAMED",
                                                          event="A08")])
    first, second = await fhir.wait_for(2)
    assert first.method == second.method == "PUT"
    assert first.path == second.path == f"/fhir/Patient/{first.json()['id']}"
    assert (first.status, second.status) == (201, 200)
    [stored] = fhir.of_type("Patient")
    assert stored["name"][0]["family"] == "RENAMED"
    assert first.headers["Prefer"] == "return=minimal"
    assert first.headers["Content-Type"].startswith("application/fhir+json")
    await harness.settle(lambda: len(events(engine, "sent")) == 2)
    assert [e["code"] for e in events(engine, "sent")] == ["201", "200"]


async def test_create_posts_to_the_type(harness, fhir):
    await run_one(harness, fhir, ", interaction: create")
    [request] = fhir.received
    assert (request.method, request.path, request.status) == ("POST", "/fhir/Patient", 201)
    assert "If-None-Exist" not in request.headers


@pytest.mark.parametrize(("interaction", "patients"), [("conditional-create", 1),
                                                       ("create", 2)])
async def test_redelivery_after_a_lost_answer(harness, fhir, interaction, patients):
    """The server commits the Patient, then the connection drops before its answer (as
    when the engine crashes mid-send): the engine sends again. With If-None-Exist the
    server finds the first copy and makes none; a plain create makes a duplicate."""
    fhir.script.append(Answer(201, drop=True))
    engine = await run_one(harness, fhir, f", interaction: {interaction}")
    assert [e["kind"] for e in events(engine)][-2:] == ["retried", "sent"]
    first, second = fhir.requests
    assert (first.method, first.path) == (second.method, second.path) == ("POST",
                                                                          "/fhir/Patient")
    assert len(fhir.of_type("Patient")) == patients
    if interaction == "conditional-create":
        expected = f"identifier={SYSTEM}|{MRN}"
        assert unquote(first.headers["If-None-Exist"]) == expected
        assert second.status == 200  # "already there": nothing created
        assert events(engine, "sent")[0]["code"] == "200"


async def test_redelivery_after_a_restart_mid_send_makes_no_duplicate(harness, fhir):
    """The engine stops while the server, having committed the Patient, has not yet
    answered; the queue entry outlives the process, and the engine that starts on the
    same data sends it again: If-None-Exist finds the first copy."""
    fhir.script.append(Answer(201, hold=8.0))
    port = free_port()
    channel = patient_channel(port, fhir.url, ", interaction: conditional-create")
    channel = channel.replace("timeout: 1s", "timeout: 30s")
    engine = await harness.start({"adt": channel})
    await exchange(port, [adt("C1", MRN, family=NAME)])
    await harness.settle(lambda: len(fhir.of_type("Patient")) == 1)
    await harness.stop()  # gives up on the send in progress after its grace period
    engine = await harness.start({"adt": channel})
    await harness.settle(lambda: done(engine))
    assert [(e["kind"], e.get("code")) for e in events(engine)] == [("queued", None),
                                                                    ("sent", "200")]
    assert fhir.requests[-1].status == 200  # found, not created
    assert len(fhir.requests) == 2 and len(fhir.of_type("Patient")) == 1


async def test_conditional_update_finds_the_patient_by_identifier(harness, fhir):
    fhir.resources[("Patient", "srv-7")] = {
        "resourceType": "Patient", "id": "srv-7",
        "identifier": [{"system": "urn:other", "value": "X1"},
                       {"system": SYSTEM, "value": MRN}]}
    await run_one(harness, fhir, f", interaction: conditional-update, "
                                 f"identifier_system: '{SYSTEM}'")
    [request] = fhir.received
    assert request.method == "PUT" and request.path == "/fhir/Patient"
    assert unquote(request.query) == f"identifier={SYSTEM}|{MRN}"
    assert request.status == 200
    [stored] = fhir.of_type("Patient")
    assert stored["id"] == "srv-7" and stored["name"][0]["family"] == NAME


async def test_conditional_update_with_two_matches_is_a_dead_letter(harness, fhir, caplog):
    caplog.set_level(logging.DEBUG)
    for rid in ("a", "b"):
        fhir.resources[("Patient", rid)] = {"resourceType": "Patient", "id": rid,
                                             "identifier": [{"system": SYSTEM,
                                                             "value": MRN}]}
    engine = await run_one(harness, fhir, ", interaction: conditional-update")
    [dead] = events(engine, "dead-lettered")
    assert dead["attempt"] == 1 and dead["code"] == "412"
    assert dead["reason"].startswith("HTTP 412 Precondition Failed: 1 issue (error: ")
    # The identifier rode in the URL; it is in no log line (the server's own words are not
    # either: its diagnostics quote it).
    assert any(r.name.startswith("conduit") for r in caplog.records)
    assert MRN not in caplog.text and MRN not in json.dumps(events(engine))


async def test_a_resource_without_the_named_identifier_is_a_dead_letter_unsent(
        harness, fhir):
    engine = await run_one(harness, fhir, ", interaction: conditional-create, "
                                          "identifier_system: 'urn:oid:9.9'")
    assert fhir.requests == []
    [dead] = events(engine, "dead-lettered")
    assert dead["reason"] == ("interaction conditional-create needs an identifier with "
                              "system urn:oid:9.9 on the Patient; it has none")


# -- transactions and batches ------------------------------------------------------------

async def test_a_transaction_with_a_failing_entry_is_a_dead_letter(harness, fhir, caplog):
    caplog.set_level(logging.DEBUG)
    fhir.script.append(Answer(entries={1: 422}, outcome=f"Encounter of {NAME} {MRN}"))
    port = free_port()
    engine = await harness.start({"adt": f"""
    source: {{type: mllp, port: {port}}}
    mapping: hl7v2-adt-to-fhir@1
    retry: {{max_attempts: 3, initial_delay: 20ms, jitter: 0}}
    destinations:
      - {{name: ehr, type: fhir, url: "{fhir.url}", timeout: 1s}}
    """})
    await exchange(port, [adt("T1", MRN, family=NAME)])
    await harness.settle(lambda: done(engine))
    [request] = fhir.requests
    assert (request.method, request.path) == ("POST", "/fhir")
    assert request.json()["type"] == "transaction"
    assert fhir.resources == {}  # all or nothing
    [dead] = events(engine, "dead-lettered")
    assert dead["reason"] == ("HTTP 422 Unprocessable Entity: 1 issue (error: processing "
                              "at Patient.identifier)")
    assert NAME not in caplog.text and MRN not in caplog.text


def _destination(url: str) -> FhirDestination:
    config = FhirDestinationConfig(name="ehr", url=url, timeout=Duration(2.0))
    return FhirDestination(config, DestinationContext("test"))


BATCH = {"resourceType": "Bundle", "type": "batch", "entry": [
    {"resource": {"resourceType": "Patient", "id": f"p{i}",
                  "identifier": [{"system": SYSTEM, "value": f"{MRN}{i}"}]},
     "request": {"method": "PUT", "url": f"Patient/p{i}"}} for i in range(3)]}


@pytest.mark.parametrize(("failing", "outcome"), [
    ({1: 422}, Fail), ({1: 503, 2: 429}, Retry), ({1: 503, 2: 400}, Fail), ({}, Sent)])
async def test_a_batch_response_is_read_entry_by_entry(fhir, failing, outcome):
    fhir.script.append(Answer(entries=failing))
    destination = _destination(fhir.url)
    try:
        delivery = await destination.send(Outbound(1, "M1", "c", "ehr", json.dumps(
            BATCH).encode(), "application/fhir+json"))
    finally:
        await destination.close()
    assert isinstance(delivery, outcome)
    assert len(fhir.of_type("Patient")) == 3 - len(failing)
    if failing:
        first = min(failing)
        assert delivery.reason.startswith(
            f"HTTP 200 OK: {len(failing)} of 3 entries failed (entry {first + 1}: "
            f"{failing[first]}, 1 issue (error: processing")
        assert delivery.answer is not None and b"batch-response" in delivery.answer.body


# -- retries -----------------------------------------------------------------------------

@pytest.mark.parametrize("retry_after", ["1", "http-date"])
async def test_retry_after_is_honoured(harness, fhir, retry_after):
    if retry_after == "http-date":  # whole seconds: 3 s ahead is at least 2 s ahead, so
        # still over 0.9 s when a loaded engine reads the 429 a moment later
        retry_after = email.utils.formatdate(time.time() + 3, usegmt=True)
    fhir.script.append(Answer(429, headers={"Retry-After": retry_after}))
    engine = await run_one(harness, fhir)
    retried, sent = events(engine)[-2:]
    assert (retried["kind"], retried["code"], sent["kind"]) == ("retried", "429", "sent")
    assert retried["delay_s"] >= 0.9  # not the policy's 20 ms
    first, second = fhir.requests  # arrival times the server recorded
    assert second.at - first.at >= 0.9


async def test_503_then_success_delivers_once(harness, fhir):
    fhir.script.append(Answer(503))
    engine = await run_one(harness, fhir)
    assert [e["kind"] for e in events(engine)][-2:] == ["retried", "sent"]
    assert [r.status for r in fhir.requests] == [503, 201]
    assert len(fhir.of_type("Patient")) == 1


async def test_a_server_that_does_not_answer_in_time_is_retried(harness, fhir):
    fhir.script.append(Answer(201, delay=1.5))  # the destination's timeout is 1 s
    engine = await run_one(harness, fhir, ", interaction: conditional-create")
    retried = events(engine, "retried")
    assert retried[0]["reason"] == "no answer within the timeout"
    assert len(fhir.of_type("Patient")) == 1


@pytest.mark.parametrize("status", [400, 404, 409, 422])
async def test_other_4xx_are_dead_letters_at_once_with_the_answer_kept(
        harness, fhir, status, caplog):
    caplog.set_level(logging.DEBUG)
    fhir.script.append(Answer(status, outcome=f"Patient {NAME} with MRN {MRN} is invalid"))
    engine = await run_one(harness, fhir)
    [dead] = events(engine, "dead-lettered")
    assert dead["attempt"] == 1 and dead["code"] == str(status)
    assert "1 issue (error: processing at Patient.identifier)" in dead["reason"]
    with engine.services.db.connect() as conn:
        [kept] = conn.execute(sa.select(dead_letter_answers)).all()
    assert kept.code == str(status) and kept.reason == dead["reason"]
    assert kept.content_type == "application/fhir+json"
    assert NAME.encode() not in kept.content and MRN.encode() not in kept.content  # sealed
    assert any(r.name.startswith("conduit") for r in caplog.records)  # logs were seen
    everything = json.dumps(events(engine)) + caplog.text
    assert NAME not in everything and MRN not in everything
