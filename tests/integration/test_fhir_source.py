"""The FHIR source in an engine in-process, over real sockets: JWT authentication against
an issuer's JWKS served on loopback, and the answers for what the channel decides
(mapping errors, batch and transaction parts, a store that cannot take the message)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from engine.store.schema import audit, messages
from tests.harness import free_port

ISSUER = "https://auth.example.org"
AUDIENCE = "conduit-fhir"
JSON = "application/fhir+json"


def patient(mrn: str | None = "INT1", **more: Any) -> dict[str, Any]:
    body = {"resourceType": "Patient", "name": [{"family": "Integration"}], **more}
    if mrn:
        body["identifier"] = [{"system": "urn:oid:1.2.3", "value": mrn}]
    return body


def entry(resource: dict[str, Any], method: str = "POST") -> dict[str, Any]:
    return {"resource": resource, "request": {"method": method, "url": "Patient"}}


class World:
    def __init__(self, harness, port: int, out: Path) -> None:
        self.harness, self.port, self.out = harness, port, out
        self.base = f"http://127.0.0.1:{port}/fhir"

    async def post(self, path: str, body: Any, token: str | None = None
                   ) -> tuple[int, Any, Any]:
        headers = {"Content-Type": JSON}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with aiohttp.ClientSession() as http, \
                http.post(self.base + path, data=json.dumps(body), headers=headers) as resp:
            return resp.status, resp.headers, await resp.json()

    def rows(self, table) -> list[Any]:
        engine = self.harness.engine
        with engine.services.db.connect() as conn:
            return list(conn.execute(sa.select(table)))

    def files(self) -> list[Path]:
        return sorted(self.out.glob("*.hl7")) if self.out.exists() else []


async def start(harness, tmp_path: Path, auth: str, validation: str = "strict") -> World:
    port = free_port()
    out = tmp_path / "out"
    await harness.start({"fhir-in": f"""
        format: fhir
        source:
          type: fhir
          port: {port}
          resources: [Patient, Bundle]
          auth: {auth}
        validation: "{validation}"
        split: {{resource: Patient}}
        mapping: fhir-to-hl7v2-adt@1
        destinations: [{{name: files, type: file, directory: {out}}}]
    """})
    return World(harness, port, out)


@pytest.fixture
async def issuer():
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    app = web.Application()
    async def jwks(request: web.Request) -> web.Response:
        return web.json_response(KeySet([key]).as_dict(private=False))

    app.router.add_get("/jwks", jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    def token(scope: str = "system/Patient.write", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "client_id": "ehr-backend", "exp": now + 300,
                "scope": scope, **claims}
        return jwt.encode({"alg": "RS256", "kid": "k1"}, body, key)

    token.url = f"http://127.0.0.1:{port}/jwks"  # type: ignore[attr-defined]
    yield token
    await runner.cleanup()


async def test_jwt_tokens_are_checked_and_refusals_audited(harness, tmp_path, issuer):
    world = await start(harness, tmp_path, f"{{type: jwt, issuer: '{ISSUER}', "
                                           f"audience: {AUDIENCE}, jwks_url: '{issuer.url}'}}")
    status, headers, answer = await world.post("/Patient", patient(), issuer())
    assert status == 201, answer
    status, headers, answer = await world.post(
        "/Patient", patient(), issuer(exp=int(time.time()) - 3600))
    assert status == 401
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert answer["issue"][0] == {"severity": "error", "code": "login",
                                  "diagnostics": "the token has expired"}
    status, _, answer = await world.post("/Patient", patient(), issuer(aud="someone-else"))
    assert status == 401
    status, _, answer = await world.post("/Patient", patient(), issuer("system/Patient.read"))
    assert (status, answer["issue"][0]["code"]) == (403, "forbidden")
    # A transaction needs the scope of every entry's type and interaction.
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [entry(patient("T1")), entry(patient("T2", id="t2"), "PUT")]}
    status, _, _ = await world.post("", bundle, issuer("system/Patient.c"))
    assert status == 403
    status, _, answer = await world.post("", bundle, issuer("system/Patient.cu"))
    assert status == 200, answer
    assert [m.status for m in world.rows(messages)] == ["accepted"] * 3
    events = world.rows(audit)
    denied = [json.loads(e.detail) for e in events if e.kind == "denied"]
    assert [(d["status"], d["route"]) for d in denied] == [
        (401, "/fhir/{type}"), (401, "/fhir/{type}"), (403, "/fhir/{type}"), (403, "/fhir")]
    received = [json.loads(e.detail) for e in events if e.kind == "received"]
    assert {r["client"] for r in received} == {"jwt:ehr-backend"}


async def test_a_mapping_failure_is_422_and_kept_for_the_analyst(harness, tmp_path):
    world = await start(harness, tmp_path, "{type: none}", validation="off")
    status, headers, answer = await world.post("/Patient", patient(mrn=None))
    assert status == 422
    assert headers["X-Conduit-Status"] == "error"
    assert any("PID-3" in i["diagnostics"] for i in answer["issue"])
    assert [(m.status, m.id) for m in world.rows(messages)] == [
        ("error", headers["X-Conduit-Message-Id"])]


async def test_lenient_validation_accepts_and_says_what_is_wrong(harness, tmp_path):
    """A lenient channel takes the Patient on and tells the sender what strict would
    have refused, located by FHIRPath, in the OperationOutcome it asked for."""
    world = await start(harness, tmp_path, "{type: none}", validation="lenient")
    body = patient("LEN1", birthDate="1961-07-04", eyeColour="blue")  # not in R4
    async with aiohttp.ClientSession() as http, http.post(
            world.base + "/Patient", data=json.dumps(body),
            headers={"Content-Type": JSON, "Prefer": "return=OperationOutcome"}) as resp:
        status, answer = resp.status, await resp.json()
    assert status == 201
    warnings = [i for i in answer["issue"] if i["severity"] == "warning"]
    assert [i["expression"] for i in warnings] == [["Patient.eyeColour"]]
    await world.harness.settle(lambda: len(world.files()) == 1)


async def test_a_body_with_a_byte_order_mark_is_taken(harness, tmp_path):
    """Older .NET clients put a UTF-8 BOM before the JSON (RFC 8259 lets a reader ignore
    it): the Patient is taken and delivered like any other."""
    world = await start(harness, tmp_path, "{type: none}")
    async with aiohttp.ClientSession() as http, http.post(
            world.base + "/Patient", data=b"\xef\xbb\xbf" + json.dumps(patient("BOM1")).encode(),
            headers={"Content-Type": JSON}) as resp:
        assert resp.status == 201, await resp.text()
    await world.harness.settle(lambda: len(world.files()) == 1)
    assert b"BOM1" in world.files()[0].read_bytes()


async def test_a_batch_answers_entry_by_entry(harness, tmp_path):
    world = await start(harness, tmp_path, "{type: none}")
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        entry(patient("B1")), entry(patient(mrn=None)), entry(patient("B3"))]}
    status, _, answer = await world.post("", bundle)
    assert status == 200
    assert answer["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in answer["entry"]]
    assert statuses == ["201 Created", "422 Unprocessable Entity", "201 Created"]
    failed = answer["entry"][1]["response"]["outcome"]["issue"]
    assert any("Patient.identifier" in i["diagnostics"] for i in failed)
    assert len({e["response"]["location"] for e in answer["entry"][::2]}) == 2
    await world.harness.settle(lambda: len(world.files()) == 2)


async def test_a_transaction_with_a_bad_part_is_refused_whole(harness, tmp_path):
    world = await start(harness, tmp_path, "{type: none}")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        entry(patient("X1")), entry(patient("X2", birthDate="not-a-date"))]}
    status, _, answer = await world.post("", bundle)
    assert status == 400
    assert answer["resourceType"] == "OperationOutcome"
    assert any("Bundle.entry[1]" in e for i in answer["issue"] for e in i.get("expression", []))
    assert [m.status for m in world.rows(messages)] == ["rejected"]
    assert world.files() == []


async def test_a_store_that_cannot_take_the_message_is_503_with_retry_after(harness, tmp_path):
    world = await start(harness, tmp_path, "{type: none}")
    with harness.engine.services.db.begin() as conn:  # the store refuses every write
        conn.exec_driver_sql("CREATE TRIGGER refuse BEFORE INSERT ON messages "
                             "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    status, headers, answer = await world.post("/Patient", patient())
    assert status == 503
    assert headers["Retry-After"].isdigit()
    assert "X-Conduit-Message-Id" not in headers
    assert answer["issue"][0]["severity"] == "error"
    with harness.engine.services.db.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse")
    status, _, _ = await world.post("/Patient", patient())
    assert status == 201


async def test_a_body_that_never_finishes_is_answered_408(harness, tmp_path):
    port = free_port()
    await harness.start({"slow": f"""
        format: fhir
        source: {{type: fhir, port: {port}, resources: [Patient], auth: {{type: none}},
                  read_timeout: 0.5s}}
        destinations: [{{name: files, type: file, directory: {tmp_path / 'out'}}}]
    """})
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json"
                 b"\r\nContent-Length: 1000\r\n\r\n{\"resourceType\":")  # and then nothing
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 408")
    writer.close()


ORU_FIXTURES = Path(__file__).resolve().parents[2] / "mappings/fhir-to-hl7v2-oru/fixtures/v1"


@pytest.mark.parametrize(("fixture", "path"), [
    ("contained_chemistry_comparators", "/DiagnosticReport"),  # a report with contained
    ("cbc_collection_bundle", ""),  # its entries posted as a transaction
])
async def test_the_shipped_oru_mapping_works_on_what_the_source_takes(harness, tmp_path,
                                                                      fixture, path):
    """fhir-to-hl7v2-oru@1 makes the ORU its fixture expects from a report posted to the
    FHIR source: every segment after MSH byte for byte (MSH-7/10 may follow the
    lastUpdated the source set where the sender gave none)."""
    port, out = free_port(), tmp_path / "out"
    await harness.start({"results-in": f"""
        format: fhir
        source: {{type: fhir, port: {port}, resources: [DiagnosticReport, Bundle],
                  auth: {{type: none}}}}
        validation: strict
        mapping: fhir-to-hl7v2-oru@1
        destinations: [{{name: files, type: file, directory: {out}}}]
    """})
    body = json.loads((ORU_FIXTURES / f"{fixture}.json").read_text())
    if body["resourceType"] == "Bundle":
        body["type"] = "transaction"
        for e in body["entry"]:
            e["request"] = {"method": "POST", "url": e["resource"]["resourceType"]}
    world = World(harness, port, out)
    status, headers, answer = await world.post(path, body)
    assert status in (200, 201), answer
    await harness.settle(lambda: len(world.files()) == 1)
    expected = (ORU_FIXTURES / f"{fixture}.hl7").read_text().strip().splitlines()
    made = world.files()[0].read_bytes().decode().strip("\r").split("\r")
    if path:  # a create: the report has the server's id, its filler number without one
        assigned = headers["Location"].split(f"{path}/")[1].split("/")[0]
        assert assigned != body["id"]
        assert any(line.startswith("ORC|") and assigned in line for line in made)
        made = [line.replace(assigned, body["id"]) for line in made]
    assert made[1:] == expected[1:]
    assert made[0].split("|")[8] == "ORU^R01^ORU_R01"
