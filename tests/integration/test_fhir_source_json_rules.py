"""FHIR JSON that the R4 models let through but the specification forbids (R4
json.html: no nulls, no empty arrays, no key twice; resource ids at most 64 characters;
required code bindings): 400 naming the element under `validation: strict`; warnings
and an ADT of what can be mapped under `lenient`."""

from __future__ import annotations

import json

import aiohttp
import pytest

from engine.store.schema import messages
from tests.integration.test_fhir_source import JSON, patient, start

MRN = "JR1"
BASE = json.dumps(patient(MRN))[:-1]  # the Patient's JSON without its closing brace

CASES = [  # (body, FHIRPath named)
    (BASE + ', "birthDate": null}', "Patient.birthDate"),
    (BASE + ', "telecom": []}', "Patient.telecom"),
    (BASE + ', "gender": "male", "gender": "female"}', "Patient.gender"),
    (BASE + ', "name": [{"family": "A", "family": "B"}]}', "Patient.name[0].family"),
    (BASE + ', "telecom": [{"system": "beeper", "value": "555-0100"}]}',
     "Patient.telecom[0].system"),
    (BASE + ', "maritalStatus": {}}', "Patient.maritalStatus"),
    (BASE + ', "address": [{}]}', "Patient.address[0]"),
]


async def post_raw(base: str, body: str, path: str = "/Patient") -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.post(
            base + path, data=body.encode(), headers={
                "Content-Type": JSON, "Prefer": "return=OperationOutcome"}) as resp:
        return resp.status, await resp.json()


def located(answer: dict, severity: str) -> list[str]:
    return [e for i in answer["issue"] if i["severity"] == severity
            for e in i.get("expression", [])]


@pytest.mark.parametrize(("body", "where"), CASES)
async def test_strict_refuses_what_fhir_json_forbids_naming_the_element(
        harness, tmp_path, body, where):
    world = await start(harness, tmp_path, "{type: none}", validation="strict")
    status, answer = await post_raw(world.base, body)
    assert status == 400, answer
    assert where in located(answer, "error")
    assert MRN not in json.dumps(answer)  # locations and reasons, never values
    assert "555-0100" not in json.dumps(answer) and "beeper" not in json.dumps(answer)
    assert "accepted" not in [m.status for m in world.rows(messages)]


async def test_strict_refuses_a_resource_id_over_64_characters(harness, tmp_path):
    world = await start(harness, tmp_path, "{type: none}", validation="strict")
    rid = "a" * 65
    async with aiohttp.ClientSession() as http, http.put(
            f"{world.base}/Patient/{rid}", data=json.dumps(patient(MRN, id=rid)),
            headers={"Content-Type": JSON}) as resp:
        status, answer = resp.status, await resp.json()
    assert status == 400, answer
    assert "Patient.id" in located(answer, "error")


async def test_lenient_warns_and_maps_what_it_can(harness, tmp_path):
    world = await start(harness, tmp_path, "{type: none}", validation="lenient")
    body = BASE + (', "birthDate": null, "address": [], "gender": "male", "gender": "female",'
                   ' "telecom": [{"system": "beeper", "value": "555-0100"}]}')
    status, answer = await post_raw(world.base, body)
    assert status == 201, answer
    assert {"Patient.birthDate", "Patient.address", "Patient.gender",
            "Patient.telecom[0].system"} <= set(located(answer, "warning"))
    await world.harness.settle(lambda: len(world.files()) == 1)
    adt = world.files()[0].read_text()
    assert MRN in adt and "|F|" in adt  # the last gender sent, as JSON readers take it


async def test_strict_refuses_a_transaction_of_no_entries(harness, tmp_path):
    world = await start(harness, tmp_path, "{type: none}", validation="strict")
    status, answer = await post_raw(world.base, json.dumps(
        {"resourceType": "Bundle", "type": "transaction", "entry": []}), path="")
    assert status == 400, answer
    assert "Bundle.entry" in located(answer, "error")
