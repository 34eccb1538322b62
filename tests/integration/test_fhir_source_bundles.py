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
