"""The conformance gate in a running engine: a lab result whose mapping leaves out the
Observation's category is valid R4 but not US Core, so the FHIR server behind the gate
never sees it while the file archive does; the analyst reads why (the message's error,
its errored hop with every located reason, the channel's last error), then reprocesses
it with a fixed mapping version, and it is sent."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

from engine.store.search import MessageQuery
from tests.harness import EngineHarness, exchange, free_port, written

NAME, MRN = "PLUMTREEWICK", "MRN55501234"  # fictional; never in a reason
ORU = (
    "MSH|^~\\&|BEAKER|NORTHWING|CONDUIT|NORTHWING|20240301101500-0500||ORU^R01^ORU_R01|"
    "GATE-1|P|2.5.1\r"
    f"PID|1||{MRN}^^^NORTHWING^MR||{NAME}^ALEX||19700412|F\r"
    "OBR|1|ORD1|FIL1|2823-3^Potassium^LN|||20240301100000-0500\r"
    "OBX|1|NM|2823-3^Potassium^LN||4.1|mmol/L|3.5-5.1|N|||F\r"
).encode()

# A test-only lab mapping in two versions: v1 forgets the category of the Observation its
# DiagnosticReport lists, v2 does not.
MAPPING = '''
from engine.mapping import mapping


@mapping("lab-demo-to-fhir@{version}", accepts="hl7v2", emits="application/fhir+json")
def run(message):
    mrn, control = message.value("PID-3.1"), message.value("MSH-10")
    patient = {{"resourceType": "Patient", "id": f"pat-{{mrn}}",
               "identifier": [{{"system": "urn:conduit:id:NORTHWING", "value": mrn}}],
               "name": [{{"family": message.value("PID-5.1"),
                         "given": [message.value("PID-5.2")]}}],
               "gender": "female"}}
    obs = {{"resourceType": "Observation", "id": f"obs-{{control}}", "status": "final",
           "code": {{"coding": [{{"system": "http://loinc.org",
                                  "code": message.value("OBX-3.1")}}]}},
           "subject": {{"reference": f"urn:uuid:pat-{{mrn}}"}},
           "valueQuantity": {{"value": float(message.value("OBX-5")), "unit": "mmol/L",
                             "system": "http://unitsofmeasure.org", "code": "mmol/L"}}}}
    if {version} > 1:
        obs["category"] = [{{"coding": [{{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "laboratory"}}]}}]
    report = {{"resourceType": "DiagnosticReport", "id": f"dr-{{control}}",
              "status": "final",
              "category": [{{"coding": [{{
                  "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                  "code": "LAB"}}]}}],
              "code": {{"coding": [{{"system": "http://loinc.org",
                                     "code": message.value("OBR-4.1")}}]}},
              "subject": {{"reference": f"urn:uuid:pat-{{mrn}}"}},
              "effectiveDateTime": "2024-03-01T10:00:00-05:00",
              "issued": "2024-03-01T10:15:00-05:00",
              "result": [{{"reference": f"urn:uuid:obs-{{control}}"}}]}}
    return {{"resourceType": "Bundle", "type": "transaction", "entry": [
        {{"fullUrl": f"urn:uuid:{{r['id']}}", "resource": r,
          "request": {{"method": "PUT", "url": f"{{r['resourceType']}}/{{r['id']}}"}}}}
        for r in (patient, obs, report)]}}
'''
REASON = ("Bundle.entry[1].resource(Observation).category: US Core Laboratory Result "
          "Observation requires a laboratory category")


def mappings(root: Path) -> Path:
    folder = root / "mappings" / "lab-demo-to-fhir"
    folder.mkdir(parents=True)
    for version in (1, 2):
        (folder / f"v{version}.py").write_text(MAPPING.format(version=version))
    return root / "mappings"


def channel(port: int, fhir_url: str, out: Path) -> str:
    return textwrap.dedent(f"""
        source: {{type: mllp, port: {port}}}
        mapping: lab-demo-to-fhir@1
        destinations:
          - name: ehr
            type: fhir
            url: "{fhir_url}"
            timeout: 2s
            conformance: {{fhir: R4, profiles: [us-core]}}
          - {{name: archive, type: file, directory: "{out}"}}
        """)


async def test_a_us_core_failure_is_held_for_the_gated_destination_then_reprocessed(
        tmp_path, fhir) -> None:
    port, out = free_port(), tmp_path / "out"
    harness = EngineHarness(tmp_path, mappings_dir=mappings(tmp_path))
    engine = await harness.start({"lab": channel(port, fhir.url, out)})
    try:
        [ack] = await exchange(port, [ORU])
        assert ack.value("MSA-1") == "AE"  # stored, but not everything could be sent
        assert "held for destination ehr" in ack.value("ERR-8")
        # the ungated archive gets the output; the FHIR server gets nothing
        await harness.settle(lambda: len(written(out)) == 1)
        archived = json.loads(written(out)[0].read_bytes())
        assert "category" not in archived["entry"][1]["resource"]
        await asyncio.sleep(0.5)
        assert fhir.requests == []

        [summary] = await engine.ops.search(MessageQuery(channel="lab", limit=5))
        detail = await engine.ops.message(summary["id"])
        assert detail["status"] == "error"
        assert detail["error"] == (
            "held for destination ehr: the output of lab-demo-to-fhir@1 fails its "
            f"conformance gate (FHIR R4, us-core): {REASON}")
        [held] = [h for h in detail["hops"] if h["kind"] == "errored"]
        assert held["destination"] == "ehr"
        assert held["detail"]["reasons"] == [REASON]
        assert held["detail"]["mapping"] == "lab-demo-to-fhir@1"
        queued = [h["destination"] for h in detail["hops"] if h["kind"] == "queued"]
        assert queued == ["archive"]
        status = await engine.ops.channel("lab")
        assert status["last_error"] == detail["error"]
        said = json.dumps([detail["error"], held, status["last_error"]])
        assert NAME not in said and MRN not in said and "19700412" not in said

        # the analyst fixes the mapping (a new version) and reprocesses the message
        again = await engine.ops.reprocess(summary["id"], "lab-demo-to-fhir@2", "analyst")
        assert again["status"] == "accepted"
        [sent] = await fhir.wait_for(1)
        bundle = sent.json()
        category = bundle["entry"][1]["resource"]["category"][0]["coding"][0]["code"]
        assert category == "laboratory"
        detail = await engine.ops.message(summary["id"])
        assert detail["status"] == "accepted" and detail["error"] is None
    finally:
        await harness.stop()


async def test_a_valid_output_goes_to_both_and_the_message_is_accepted(tmp_path, fhir
                                                                       ) -> None:
    port, out = free_port(), tmp_path / "out"
    harness = EngineHarness(tmp_path, mappings_dir=mappings(tmp_path))
    engine = await harness.start({"lab": channel(port, fhir.url, out).replace(
        "lab-demo-to-fhir@1", "lab-demo-to-fhir@2")})
    try:
        [ack] = await exchange(port, [ORU])
        assert ack.value("MSA-1") == "AA"
        await fhir.wait_for(1)
        await harness.settle(lambda: len(written(out)) == 1)
        [summary] = await engine.ops.search(MessageQuery(channel="lab", limit=5))
        assert summary["status"] == "accepted"
    finally:
        await harness.stop()
