"""Every HL7v2 message type the engine maps flows through a channel from MLLP to a FHIR
server, each through its own mapping and all of them through the one `hl7v2-to-fhir`
dispatcher channel a mixed feed needs: the server receives, per message, the very Bundle
`conduit test` expects, and nothing errors."""

from __future__ import annotations

import json

import pytest

from engine.mapping import MappingCatalog
from tests.fhir_server import FhirTestServer
from tests.harness import REPO, EngineHarness, exchange, free_port
from tests.mapping_checks import dispatched_types

MAPPINGS = REPO / "mappings"
CATALOG = MappingCatalog.discover(MAPPINGS)
PER_TYPE = 2  # messages sent per type: enough to show each flows, few enough to be quick


def samples(ref: str) -> list[tuple[bytes, dict]]:
    """Fixtures of `ref` with an expected Bundle, vendor styles taken in turn."""
    name, version = ref.split("@")
    folder = MAPPINGS / name / "fixtures" / f"v{version}"
    found = [(p.read_bytes(), json.loads(p.with_suffix(".json").read_bytes()))
             for p in sorted(folder.glob("*.hl7")) if p.with_suffix(".json").exists()]
    step = max(1, len(found) // PER_TYPE)
    return found[::step][:PER_TYPE]


# Each dispatcher with the per-type versions whose output it gives (hl7v2-to-fhir@2: ADT
# and ORU only; the other types' own versions key the Patient as @1 does).
DISPATCHERS = {ref: dispatched_types(ref) for ref in ("hl7v2-to-fhir@1", "hl7v2-to-fhir@2")}
TYPES = [pair for types in DISPATCHERS.values() for pair in types]


@pytest.fixture
async def fhir():
    server = await FhirTestServer().start()
    yield server
    await server.stop()


def test_every_message_type_of_the_issue_has_a_mapping():
    assert {code for code, _ in TYPES} >= {"ADT"}
    assert CATALOG.get("hl7v2-to-fhir@1") is not None


async def test_each_type_through_its_own_mapping_and_through_the_dispatcher(tmp_path, fhir):
    ports = {ref: free_port() for ref in {ref for _, ref in TYPES} | set(DISPATCHERS)}
    channels = {
        ref.replace("@", "-v"): f"""
        source: {{type: mllp, port: {port}}}
        mapping: {ref}
        duplicate_window: 0
        destinations: [{{name: ehr, type: fhir, url: "{fhir.url}"}}]
        """ for ref, port in ports.items()}
    harness = EngineHarness(tmp_path)
    engine = await harness.start(channels)
    try:
        expected: list[dict] = []
        for mixed, types in DISPATCHERS.items():
            for _, ref in types:
                for raw, bundle in samples(ref):
                    [ack] = await exchange(ports[ref], [raw])
                    assert ack.value("MSA-1") in ("AA", "CA"), ref
                    [again] = await exchange(ports[mixed], [raw])
                    assert again.value("MSA-1") in ("AA", "CA"), (mixed, ref)
                    expected += [bundle, bundle]
        received = await fhir.wait_for(len(expected), timeout=30)
        got = sorted(json.dumps(r.json(), sort_keys=True) for r in received)
        assert got == sorted(json.dumps(b, sort_keys=True) for b in expected)
        assert engine.services.stats.count("errored") == 0
        assert engine.services.stats.count("dead-lettered") == 0
    finally:
        await harness.stop()
