"""Every shipped message type flows through a channel from MLLP to FHIR, and ADT and ORU
come back from FHIR to HL7v2 through a second channel, as a hospital would chain them."""

from __future__ import annotations

import asyncio

import pytest

from engine.formats.hl7v2 import Hl7Message
from tests.fhir_server import FhirTestServer
from tests.harness import REPO, EngineHarness, exchange, free_port, written
from tests.mllp_receiver import MllpReceiver

FIXTURES = REPO / "mappings"

# type -> (mapping, a vendor-style fixture, resource types the Bundle must hold)
FEEDS = {
    "adt": ("hl7v2-adt-to-fhir@2", "hl7v2-adt-to-fhir/fixtures/v2/epic_a01_clinical.hl7",
            {"Patient", "Encounter", "RelatedPerson", "AllergyIntolerance", "Condition",
             "Coverage"}),
    "oru": ("hl7v2-oru-to-fhir@1", "hl7v2-oru-to-fhir/fixtures/v1/epic_beaker_cbc_cmp.hl7",
            {"Patient", "DiagnosticReport", "Observation", "Specimen"}),
    "orm": ("hl7v2-orm-to-fhir@1", "hl7v2-orm-to-fhir/fixtures/v1/epic_new_orders.hl7",
            {"Patient", "ServiceRequest"}),
    "vxu": ("hl7v2-vxu-to-fhir@1", "hl7v2-vxu-to-fhir/fixtures/v1/epic_v251_cdc_ig.hl7",
            {"Patient", "Immunization"}),
    "siu": ("hl7v2-siu-to-fhir@1",
            "hl7v2-siu-to-fhir/fixtures/v1/epic_cadence_s12_booked.hl7",
            {"Patient", "Appointment"}),
    "mdm": ("hl7v2-mdm-to-fhir@1", "hl7v2-mdm-to-fhir/fixtures/v1/epic_t02_discharge_pdf.hl7",
            {"Patient", "DocumentReference"}),
    "rde": ("hl7v2-rde-to-fhir@1",
            "hl7v2-rde-to-fhir/fixtures/v1/epic_o11_willow_amlodipine.hl7",
            {"Patient", "MedicationRequest"}),
}
BACK = {"adt": ("fhir-to-hl7v2-adt@1", "ADT"), "oru": ("fhir-to-hl7v2-oru@1", "ORU")}


@pytest.fixture
async def systems():
    fhir = await FhirTestServer().start()
    lis = await MllpReceiver().start()
    yield fhir, lis
    await fhir.stop()
    await lis.stop()


async def test_every_type_reaches_fhir_and_adt_and_oru_come_back(tmp_path, systems):
    fhir, lis = systems
    ports = {kind: free_port() for kind in FEEDS}
    channels = {}
    for kind, (mapping, _, _) in FEEDS.items():
        back = (f'\n          - {{name: to-hl7, type: channel, inbox: {kind}-back}}'
                if kind in BACK else "")
        channels[kind] = f"""
        source: {{type: mllp, port: {ports[kind]}}}
        mapping: {mapping}
        retry: {{initial_delay: 50ms, jitter: 0}}
        destinations:
          - {{name: ehr, type: fhir, url: "{fhir.url}"}}{back}
        """
    for kind, (mapping, _) in BACK.items():
        channels[f"{kind}-back"] = f"""
        source: {{type: channel, inbox: {kind}-back}}
        format: fhir
        mapping: {mapping}
        destinations:
          - {{name: lis, type: mllp, host: 127.0.0.1, port: {lis.port}}}
        """
    harness = EngineHarness(tmp_path)
    engine = await harness.start(channels)
    try:
        for kind, (_, fixture, _) in FEEDS.items():
            [ack] = await exchange(ports[kind], [(FIXTURES / fixture).read_bytes()])
            assert ack.value("MSA-1") in ("AA", "CA"), kind
        received = await fhir.wait_for(len(FEEDS), timeout=15)
        kinds_by_bundle = [{e["resource"]["resourceType"] for e in r.json()["entry"]}
                           for r in received]
        for kind, (_, _, expected) in FEEDS.items():
            assert any(expected <= kinds for kinds in kinds_by_bundle), kind
        await harness.settle(lambda: len(lis.received) == len(BACK), timeout=15)
        types = sorted(Hl7Message.parse(m.decode()).message_type.split("^")[0]
                       for m in lis.received)
        assert types == sorted(t for _, t in BACK.values())
        await asyncio.sleep(0.1)
        assert engine.services.stats.count("dead-lettered") == 0
        assert engine.services.stats.count("errored") == 0
    finally:
        await harness.stop()


def _expected_codes(raw: bytes, verdict) -> list[str]:
    """The MSA-1 codes the sender asked for (MSH-15/16) under `verdict`, by the codec's
    own rules, which its unit tests pin down."""
    from engine.formats.hl7v2 import Hl7v2Codec
    from engine.message import Outcome

    codec = Hl7v2Codec()
    parsed = codec.parse(raw)
    outcome = Outcome(verdict)
    frames = [codec.reply(raw, parsed, outcome), codec.application_reply(raw, parsed, outcome)]
    return [Hl7Message.parse(f.decode()).value("MSA-1") for f in frames if f]


async def test_every_vendor_fixture_gets_the_acknowledgement_its_outcome_calls_for(tmp_path):
    """All the vendor-style fixtures of every v2 mapping, sent over MLLP: outputs are
    accepted, skips filtered, mapping errors answered AE; nothing is lost or doubled."""
    from engine.message import Verdict
    from tests.integration.test_hl7v2_acks import _frames

    mappings = sorted({m for m, _, _ in FEEDS.values()} | {"hl7v2-adt-to-fhir@1"})
    ports = {ref: free_port() for ref in mappings}
    channels = {
        ref.replace("@", "-v"): f"""
        source: {{type: mllp, port: {ports[ref]}}}
        mapping: {ref}
        duplicate_window: 0
        destinations: [{{name: out, type: file, directory: "{tmp_path / ref}"}}]
        """ for ref in mappings}
    (tmp_path / "engine").mkdir()
    harness = EngineHarness(tmp_path / "engine")
    await harness.start(channels)
    try:
        total = 0
        for ref in mappings:
            name, version = ref.split("@")
            folder = FIXTURES / name / "fixtures" / f"v{version}"
            outputs = 0
            for source in sorted(folder.glob("*.hl7")):
                raw = source.read_bytes()
                if source.with_suffix(".error").exists():
                    verdict = Verdict.ERROR
                else:
                    verdict = Verdict.ACCEPTED
                    outputs += source.with_suffix(".json").exists()
                want = _expected_codes(raw, verdict)
                got = await _frames(ports[ref], raw, len(want))
                codes = [Hl7Message.parse(f.decode()).value("MSA-1") for f in got]
                assert codes == want, f"{ref} {source.name}"
                total += 1
            await harness.settle(
                lambda r=ref, n=outputs: len(written(tmp_path / r)) == n)
        assert total >= 60
    finally:
        await harness.stop()
