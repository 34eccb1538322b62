"""Shadow mode: a candidate version runs on live traffic, compared but never delivered."""

from __future__ import annotations

import json
import textwrap

from tests.harness import EngineHarness, adt, exchange, free_port

LIVE = """
from engine.mapping import mapping

@mapping("demo@1", accepts="hl7v2", emits="application/json")
def run(msg):
    return {"family": msg.value("PID-5.1"), "mrn": msg.value("PID-3.1")}
"""

CANDIDATE = """
from engine.errors import MappingError
from engine.mapping import mapping

@mapping("demo@2", accepts="hl7v2", emits="application/json")
def run(msg):
    if msg.value("PID-3.1") == "MRN-BAD":
        raise MappingError("candidate cannot read this", field="PID-3")
    return {"family": msg.value("PID-5.1").title(), "mrn": msg.value("PID-3.1"),
            "given": msg.value("PID-5.2")}
"""


async def test_candidate_is_compared_per_path_and_never_delivered(tmp_path):
    mappings = tmp_path / "mappings" / "demo"
    mappings.mkdir(parents=True)
    (mappings / "v1.py").write_text(textwrap.dedent(LIVE))
    (mappings / "v2.py").write_text(textwrap.dedent(CANDIDATE))
    port = free_port()
    harness = EngineHarness(tmp_path, mappings_dir=tmp_path / "mappings")
    engine = await harness.start({"demo": f"""
        source: {{type: mllp, port: {port}}}
        mapping: demo@1
        shadow: demo@2
        destinations: [{{name: files, type: file, directory: "{tmp_path / 'out'}"}}]
        """})
    try:
        acks = await exchange(port, [adt("S1", "MRN-1", family="SMITH"),
                                     adt("S2", "MRN-2", family="Jones"),
                                     adt("S3", "MRN-BAD", family="DOE")])
        assert {a.value("MSA-1") for a in acks} == {"AA"}
        await harness.settle(lambda: len(list((tmp_path / "out").glob("*.json"))) == 3)
        delivered = [json.loads(p.read_bytes()) for p in (tmp_path / "out").glob("*.json")]
        assert all(set(d) == {"family", "mrn"} for d in delivered)  # live output only
        summary = (await engine.ops.channel("demo"))["shadow"]
        assert summary["candidate"] == "demo@2"
        assert (summary["compared"], summary["differed"], summary["candidate_errors"]) == (3, 3, 1)
        by_path = {p["path"]: p["messages"] for p in summary["paths"]}
        assert by_path == {"given": 2, "family": 1, "(outcome: output -> error)": 1}
        assert len(next(p for p in summary["paths"] if p["path"] == "given")["examples"]) == 2
    finally:
        await harness.stop()
