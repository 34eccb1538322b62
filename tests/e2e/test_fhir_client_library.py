"""A third-party FHIR client (fhirpy's AsyncFHIRClient) against the running engine, used
as an application developer would: no knowledge of Conduit beyond its base URL and a
token."""

from __future__ import annotations

import aiohttp
import pytest
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import AuthorizationError, OperationOutcome

from engine.formats.hl7v2 import Hl7Message
from tests.e2e.support import Daemon, eventually


@pytest.fixture
async def client(daemon: Daemon):
    await daemon.start()
    token = await daemon.user_token("app", "integration")
    yield AsyncFHIRClient(f"http://127.0.0.1:{daemon.fhir_port}/fhir",
                          authorization=f"Bearer {token}")
    assert await daemon.stop() == 0


async def test_fhirpy_creates_a_patient_and_reads_the_capability_statement(client, daemon):
    statement = await client.execute("metadata", method="get")
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    (server,) = statement["rest"]
    assert {r["type"] for r in server["resource"]} == {"Patient"}
    assert {i["code"] for i in server["interaction"]} == {"transaction", "batch"}

    patient = client.resource(
        "Patient", identifier=[{"system": "urn:oid:2.16.840.1.113883.3.999",
                                "value": "E2EPY1"}],
        name=[{"family": "Pyclient", "given": ["Ada"]}], birthDate="1980-02-29")
    await patient.save()
    # fhirpy reads the answer back into the resource: the server's id and meta.
    assert patient.id and patient["meta"]["lastUpdated"]
    assert patient["name"][0]["family"] == "Pyclient"
    out = daemon.data_dir / "out" / "fhir-to-hl7v2"
    assert patient["meta"]["versionId"] == "1"
    await eventually(lambda: len(list(out.glob("*.hl7"))) == 1, timeout=20,
                     message="the HL7 file of the created Patient")
    (written,) = out.glob("*.hl7")
    adt = Hl7Message.parse(written.read_text())
    assert adt.value("PID-3.1") == "E2EPY1"

    # An update is a PUT to Patient/{id}: the server's next version, an A31.
    patient["name"][0]["given"] = ["Ada", "L"]
    await patient.update()
    assert patient["meta"]["versionId"] == "2"
    await eventually(lambda: len(list(out.glob("*.hl7"))) == 2, timeout=20,
                     message="a second HL7 file")
    assert sorted(Hl7Message.parse(f.read_text()).value("MSH-9.2")
                  for f in out.glob("*.hl7")) == ["A28", "A31"]

    # Errors reach the client library as its own exception types.
    with pytest.raises(OperationOutcome) as caught:
        await client.resource("Patient", name=[{"family": "NoIdentifier"}]).save()
    assert "identifier" in str(caught.value)
    stranger = AsyncFHIRClient(client.url, authorization="Bearer cdt_wrong")
    with pytest.raises(AuthorizationError):
        await stranger.resource("Patient", identifier=[{"value": "x"}]).save()
    async with aiohttp.ClientSession() as http, http.get(f"{client.url}/metadata") as resp:
        assert resp.status == 200
