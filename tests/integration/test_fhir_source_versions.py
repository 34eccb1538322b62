"""The FHIR source keeps a version per resource id, as a FHIR server does (R4
http.html#versioning): the second PUT of an id is an update, version 2, mapped to an
ADT^A31; the count survives in the store, shared by engines on one PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.harness import EngineHarness, free_port
from tests.integration.test_fhir_source import JSON, World, patient

CHANNEL = """
    format: fhir
    source: {{type: fhir, port: {port}, resources: [Patient, Bundle], auth: {{type: none}}}}
    validation: strict
    split: {{resource: Patient}}
    mapping: fhir-to-hl7v2-adt@1
    destinations: [{{name: files, type: file, directory: {out}}}]
"""


async def put(world: World, rid: str, body: dict[str, Any], if_match: str | None = None
              ) -> tuple[int, Any, Any]:
    headers = {"Content-Type": JSON, **({"If-Match": if_match} if if_match else {})}
    async with aiohttp.ClientSession() as http, http.put(
            f"{world.base}/Patient/{rid}", data=json.dumps(body), headers=headers) as resp:
        return resp.status, resp.headers, await resp.json()


async def started(harness: EngineHarness, out: Path) -> World:
    port = free_port()
    await harness.start({"fhir-in": CHANNEL.format(port=port, out=out)})
    return World(harness, port, out)


def events(world: World) -> list[str]:
    return sorted(f.read_text().split("\r")[0].split("|")[8] for f in world.files())


async def test_a_second_put_of_an_id_is_an_update_with_the_next_version(harness, tmp_path):
    world = await started(harness, tmp_path / "out")
    status, headers, body = await put(world, "pv1", patient("PV1", id="pv1"))
    assert status == 201, body
    assert headers["ETag"] == 'W/"1"'
    assert headers["Location"].endswith("/fhir/Patient/pv1/_history/1")
    status, headers, body = await put(world, "pv1", patient("PV1", id="pv1", gender="female"))
    assert status == 200, body
    assert headers["ETag"] == 'W/"2"'
    assert headers["Location"].endswith("/fhir/Patient/pv1/_history/2")
    assert body["meta"]["versionId"] == "2"
    await harness.settle(lambda: len(world.files()) == 2)
    assert events(world) == ["ADT^A28^ADT_A05", "ADT^A31^ADT_A05"]
    # a refused update takes no version: the next accepted one is 3
    status, _, _ = await put(world, "pv1", patient("PV1", id="pv1", birthDate="not-a-date"))
    assert status == 400
    status, headers, _ = await put(world, "pv1", patient("PV1", id="pv1"))
    assert (status, headers["ETag"]) == (200, 'W/"3"')
    # a client sending back the version it read gets the next one, not its own again
    status, headers, body = await put(world, "pv1", patient("PV1", id="pv1",
                                                            meta={"versionId": "3"}))
    assert (status, headers["ETag"], body["meta"]["versionId"]) == (200, 'W/"4"', "4")
    # another id has versions of its own; one relayed from a server that is ahead is kept
    status, headers, _ = await put(world, "pv2", patient("PV2", id="pv2",
                                                         meta={"versionId": "7"}))
    assert (status, headers["ETag"]) == (200, 'W/"7"')
    status, headers, _ = await put(world, "pv2", patient("PV2", id="pv2"))
    assert headers["ETag"] == 'W/"8"'


async def test_transaction_puts_take_versions_too(harness, tmp_path):
    world = await started(harness, tmp_path / "out")
    await put(world, "tv1", patient("TV1", id="tv1"))
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient("TV1", id="tv1"), "request": {"method": "PUT",
                                                           "url": "Patient/tv1"}},
        {"resource": patient("TV2", id="tv2"), "request": {"method": "PUT",
                                                           "url": "Patient/tv2"}}]}
    status, _, answer = await world.post("", bundle)
    assert status == 200, answer
    responses = [e["response"] for e in answer["entry"]]
    assert [(r["status"], r["etag"]) for r in responses] == [
        ("200 OK", 'W/"2"'), ("201 Created", 'W/"1"')]
    assert responses[0]["location"] == "Patient/tv1/_history/2"
    await harness.settle(lambda: len(world.files()) == 3)
    assert events(world) == ["ADT^A28^ADT_A05", "ADT^A28^ADT_A05", "ADT^A31^ADT_A05"]


async def test_engines_on_one_postgresql_share_the_versions(tmp_path, pg_url):
    """Two engines (two hosts, or a restart) on one store: the second continues the
    first's count."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = EngineHarness(tmp_path / "a", pg_url)
    second = EngineHarness(tmp_path / "b", pg_url)
    second.data = first.data  # one engine's keys, as every host of a cluster shares them
    try:
        one = await started(first, tmp_path / "out")
        two = await started(second, tmp_path / "out")
        status, headers, _ = await put(one, "pg1", patient("PG1", id="pg1"))
        assert (status, headers["ETag"]) == (201, 'W/"1"')
        status, headers, _ = await put(two, "pg1", patient("PG1", id="pg1"))
        assert (status, headers["ETag"]) == (200, 'W/"2"')
        await first.stop()
        await first.start({})
        status, headers, _ = await put(two, "pg1", patient("PG1", id="pg1"))
        assert headers["ETag"] == 'W/"3"'
    finally:
        await second.stop()
        await first.stop()


async def test_a_create_gets_an_id_of_the_servers_own(harness, tmp_path):
    """POST [base]/Patient: the server assigns the id (R4 http.html#create), whatever id
    the client put in the body; Location and ETag name it, and a PUT to it is an update."""
    world = await started(harness, tmp_path / "out")
    locations = []
    for _ in range(2):
        status, headers, body = await world.post("/Patient", patient("CR1", id="client-id"))
        assert status == 201, body
        assert headers["ETag"] == 'W/"1"'
        locations.append(headers["Location"])
        rid = headers["Location"].split("/Patient/")[1].split("/")[0]
        assert rid != "client-id" and body["id"] == rid
        assert headers["Location"].endswith(f"/fhir/Patient/{rid}/_history/1")
    assert locations[0] != locations[1]
    status, headers, _ = await put(world, rid, patient("CR1", id=rid))
    assert (status, headers["ETag"]) == (200, 'W/"2"')
    await harness.settle(lambda: len(world.files()) == 3)
    assert events(world) == ["ADT^A28^ADT_A05", "ADT^A28^ADT_A05", "ADT^A31^ADT_A05"]


async def test_a_version_aware_update_of_a_stale_version_is_refused(harness, tmp_path):
    """If-Match names the version the client read (R4 http.html#concurrency): an update
    from an older one would overwrite what another client wrote meanwhile, and send
    stale demographics as an A31. It gets 412 and changes nothing."""
    world = await started(harness, tmp_path / "out")
    for _ in range(3):
        await put(world, "pm1", patient("PM1", id="pm1"))
    status, _, answer = await put(world, "pm1", patient("PM1", id="pm1", gender="male"),
                                  if_match='W/"1"')
    assert status == 412, answer
    assert answer["issue"][0]["code"] == "conflict"
    status, headers, _ = await put(world, "pm1", patient("PM1", id="pm1"), if_match='W/"3"')
    assert (status, headers["ETag"]) == (200, 'W/"4"')
    status, _, _ = await put(world, "unknown", patient("PM2", id="unknown"),
                             if_match='W/"1"')
    assert status == 412  # no such resource at any version
    await harness.settle(lambda: len(world.files()) == 4)  # the refused ones sent nothing
