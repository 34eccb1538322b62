"""Transaction and batch Bundles posted to the FHIR source over HTTP, as a FHIR client
sends them: a transaction is all or nothing (FHIR R4 http.html#transaction), a batch's
entries are answered one by one (http.html#batch)."""

from __future__ import annotations

import asyncio
from typing import Any

from engine.store.schema import messages
from tests.integration.test_fhir_source import entry, patient, start


def observation() -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final",
            "code": {"text": "heart rate"}}


def expressions(outcome: dict[str, Any]) -> list[str]:
    return [e for i in outcome["issue"] for e in i.get("expression", [])]


async def test_a_transaction_with_an_entry_the_channel_does_not_take_is_refused_whole(
        harness, tmp_path):
    """An Observation in a transaction to a channel that splits out Patients was answered
    200 and dropped: the whole transaction is refused and names the entry."""
    world = await start(harness, tmp_path, "{type: none}")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        entry(patient("TX1")), entry(patient("TX2")), entry(patient("TX3")),
        {"resource": observation(), "request": {"method": "POST", "url": "Observation"}}]}
    status, _, answer = await world.post("", bundle)
    assert status == 400, answer
    assert answer["resourceType"] == "OperationOutcome"
    refused = [i for i in answer["issue"] if i["severity"] == "error"]
    assert refused and all(i["code"] == "not-supported" for i in refused)
    assert "Bundle.entry[3]" in expressions(answer)
    assert "Observation" in refused[0]["diagnostics"]
    assert "accepted" not in [m.status for m in world.rows(messages)]
    await asyncio.sleep(0.3)
    assert world.files() == []


async def test_a_transaction_of_nothing_the_channel_takes_is_refused(harness, tmp_path):
    world = await start(harness, tmp_path, "{type: none}")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": observation(), "request": {"method": "POST", "url": "Observation"}}]}
    status, _, answer = await world.post("", bundle)
    assert status == 400, answer
    assert "Bundle.entry[0]" in expressions(answer)
    assert "accepted" not in [m.status for m in world.rows(messages)]


async def test_a_batch_with_a_read_answers_that_entry_and_takes_the_others(harness, tmp_path):
    """A batch's entries are independent (FHIR R4 http.html#batch): a GET among them, which
    this endpoint does not serve, gets its own 405 while the Patients are taken, durably
    before the answer; an entry of a type the channel does not take is no 200 either."""
    world = await start(harness, tmp_path, "{type: none}")
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        entry(patient("BG1")),
        {"request": {"method": "GET", "url": "Patient/123"}},
        entry(patient("BG3", id="bg3"), "PUT"),
        {"resource": observation(), "request": {"method": "POST", "url": "Observation"}}]}
    status, _, answer = await world.post("", bundle)
    assert status == 200, answer
    assert answer["type"] == "batch-response"
    responses = [e["response"] for e in answer["entry"]]
    assert [r["status"][:3] for r in responses] == ["201", "405", "201", "400"]
    read = responses[1]["outcome"]
    assert read["resourceType"] == "OperationOutcome"
    assert read["issue"][0]["severity"] == "error"
    assert read["issue"][0]["code"] == "not-supported"
    assert "Bundle.entry[1].request.method" in expressions(read)
    assert responses[0]["location"].startswith("Patient/")
    assert responses[2]["location"].startswith("Patient/bg3/_history/")
    assert responses[3]["outcome"]["issue"][0]["severity"] == "error"
    assert expressions(responses[3]["outcome"]) == ["Bundle.entry[3]"]
    # taken on before the answer: both Patients are stored already
    assert [m.status for m in world.rows(messages)] == ["accepted", "accepted"]
    await world.harness.settle(lambda: len(world.files()) == 2)


async def test_a_batch_of_reads_only_stores_nothing(harness, tmp_path):
    world = await start(harness, tmp_path, "{type: none}")
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient/1"}},
        {"request": {"method": "DELETE", "url": "Patient/2"}}]}
    status, _, answer = await world.post("", bundle)
    assert status == 200, answer
    assert [e["response"]["status"][:3] for e in answer["entry"]] == ["405", "405"]
    assert world.rows(messages) == []


async def test_a_transaction_with_a_read_is_still_refused_whole(harness, tmp_path):
    world = await start(harness, tmp_path, "{type: none}")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        entry(patient("TG1")), {"request": {"method": "GET", "url": "Patient/1"}}]}
    status, _, answer = await world.post("", bundle)
    assert status == 400, answer
    assert "Bundle.entry[1].request.method" in expressions(answer)
    assert world.rows(messages) == []


async def test_the_bundle_timestamp_is_the_adt_message_time(harness, tmp_path):
    """MSH-7 of the ADT made from a transaction's Patient is the Bundle's timestamp (when
    the sender assembled it), not the time the engine received it."""
    world = await start(harness, tmp_path, "{type: none}")
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "timestamp": "2024-05-06T07:08:09+02:00",
              "entry": [entry(patient("TS1")), entry(patient("TS2"))]}
    status, _, answer = await world.post("", bundle)
    assert status == 200, answer
    await world.harness.settle(lambda: len(world.files()) == 2)
    times = {f.read_text().split("\r")[0].split("|")[6] for f in world.files()}
    assert times == {"20240506070809+0200"}


def put(resource: dict[str, Any], url: str) -> dict[str, Any]:
    return {"resource": resource, "request": {"method": "PUT", "url": url}}


async def test_a_put_entry_is_written_only_under_the_identity_its_url_names(
        harness, tmp_path):
    """A PUT to Patient/pat-b whose body says pat-a was stored as pat-a, an A28 for a
    patient never sent (R4 http.html#update writes what the URL names): refused, whole in
    a transaction, alone in a batch; and a transaction may write a resource only once."""
    world = await start(harness, tmp_path, "{type: none}")
    mismatch = put(patient("MM1", id="pat-a"), "Patient/pat-b")
    status, _, answer = await world.post("", {"resourceType": "Bundle", "type": "transaction",
                                              "entry": [entry(patient("MM0")), mismatch]})
    assert status == 400, answer
    assert "Bundle.entry[1].resource.id" in expressions(answer)
    status, _, answer = await world.post("", {"resourceType": "Bundle", "type": "batch",
                                              "entry": [mismatch, entry(patient("MM2"))]})
    assert status == 200, answer
    assert [e["response"]["status"][:3] for e in answer["entry"]] == ["400", "201"]
    assert expressions(answer["entry"][0]["response"]["outcome"]) == [
        "Bundle.entry[0].resource.id"]
    twice = put(patient("MM3", id="pat-d"), "Patient/pat-d")
    status, _, answer = await world.post("", {"resourceType": "Bundle", "type": "transaction",
                                              "entry": [twice, twice]})
    assert status == 400, answer
    assert answer["issue"][0]["code"] == "duplicate"
    assert "Bundle.entry[1].request.url" in expressions(answer)
    assert [m.status for m in world.rows(messages)] == ["accepted"]  # MM2's alone
