"""The documented real-time eligibility channel (docs/x12.md) with the repository's own
mappings: a FHIR CoverageEligibilityRequest becomes a 270 by fhir-to-x12-270@1 under the
channel's x12: envelope, the payer (tests/core_payer.py) answers a 271, and the caller
gets it as x12-271-to-fhir@1 maps it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.formats.x12.codec import X12Codec
from tests.core_payer import CorePayer
from tests.harness import EngineHarness, free_port


@pytest.fixture
async def payer():
    server = CorePayer()
    await server.start()
    yield server
    await server.stop()


def fhir_inquiry(trace: str) -> dict[str, Any]:
    """A subscriber inquiry as fhir-to-x12-270@1 reads it: payer, clinic, patient and
    coverage contained."""
    return {
        "resourceType": "CoverageEligibilityRequest", "id": trace, "status": "active",
        "identifier": [{"system": "urn:example:trace", "value": trace}],
        "purpose": ["benefits"], "created": "2026-12-03T10:15:00Z",
        "patient": {"reference": "#pat"}, "insurer": {"reference": "#payer"},
        "provider": {"reference": "#clinic"},
        "insurance": [{"coverage": {"reference": "#cov"}}],
        "contained": [
            {"resourceType": "Patient", "id": "pat", "gender": "female",
             "birthDate": "1961-07-04",
             "name": [{"family": "Quillfeather", "given": ["Rosalind"]}]},
            {"resourceType": "Organization", "id": "payer", "name": "Acme Health",
             "identifier": [{"system": "urn:conduit:id:x12:PI", "value": "ACMEHEALTH"}]},
            {"resourceType": "Organization", "id": "clinic", "name": "Harborside Clinic",
             "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi",
                             "value": "1234567893"}]},
            {"resourceType": "Coverage", "id": "cov", "status": "active",
             "subscriberId": "ACM88120457", "beneficiary": {"reference": "#pat"},
             "relationship": {"coding": [{
                 "system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                 "code": "self"}]},
             "payor": [{"reference": "#payer"}]},
        ],
    }


async def test_the_documented_channel_with_the_real_x12_mappings(tmp_path: Path,
                                                                 payer: CorePayer) -> None:
    harness = EngineHarness(tmp_path)  # the repository's mappings
    port = free_port()
    await harness.start({"eligibility": f"""
        format: fhir
        source:
          type: fhir
          port: {port}
          auth: {{type: none}}
          resources: [CoverageEligibilityRequest]
        mapping: fhir-to-x12-270@1
        x12:
          sender: "ZZ:HARBORSIDE01"
          receiver: "ZZ:ACMEHEALTH"
        duplicate_window: 0
        respond:
          destination: payer
          timeout: 5s
          mapping: x12-271-to-fhir@1
        destinations:
          - name: payer
            type: core
            url: {payer.url}
            sender_id: HARBORSIDE01
            receiver_id: ACMEHEALTH
    """})
    try:
        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{port}/fhir/CoverageEligibilityRequest",
                data=json.dumps(fhir_inquiry("TRC000901")),
                headers={"Content-Type": "application/fhir+json"}) as resp:
            status, body = resp.status, json.loads(await resp.read())
    finally:
        await harness.stop()
    assert status == 200, body
    [seen] = payer.received
    sent = X12Codec().parse(seen.fields["Payload"].encode())
    assert sent.message_type == "270" and sent.patient_id == "ACM88120457"
    assert sent.sender.startswith("HARBORSIDE01")  # under the x12: block's envelope
    resources = {e["resource"]["resourceType"]: e["resource"] for e in body["entry"]}
    response = resources["CoverageEligibilityResponse"]
    assert response["outcome"] == "complete"
    [insurance] = response["insurance"]
    assert insurance["inforce"] is True
    copays = [b["allowedMoney"] for item in insurance["item"] for b in item.get("benefit", [])
              if "allowedMoney" in b]
    assert {"value": 25, "currency": "USD"} in copays
    assert resources["Coverage"]["subscriberId"] == "ACM88120457"
