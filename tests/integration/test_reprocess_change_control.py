"""Under change control, an analyst's reprocess sends output to production like a deploy
does, so it may use only a mapping version the live revision pins; and the trail names
the source that mapped it, which a later edit of the file cannot hide."""

from __future__ import annotations

import json
import textwrap

import pytest

from engine.change.revisions import RevisionStore
from engine.change.snapshot import sha256, take
from engine.operations import NotApproved
from engine.store.search import AuditQuery, MessageQuery
from tests.harness import EngineHarness, adt, exchange, free_port, written

# A test-only mapping: each version stamps its number on the Patient it emits.
MAPPING = '''
from engine.mapping import mapping


@mapping("stamp-demo@{version}", accepts="hl7v2", emits="application/fhir+json")
def run(message):
    return {{"resourceType": "Patient", "id": "v{version}"}}
'''


def mappings(tmp_path):
    folder = tmp_path / "mappings" / "stamp-demo"
    folder.mkdir(parents=True)
    for version in (1, 2):
        (folder / f"v{version}.py").write_text(MAPPING.format(version=version))
    return tmp_path / "mappings"


def channel(port: int, out) -> str:
    return textwrap.dedent(f"""\
        source: {{type: mllp, port: {port}}}
        mapping: stamp-demo@1
        destinations: [{{name: files, type: file, directory: "{out}"}}]
        """)


@pytest.mark.parametrize("approvals", [1, 0])
async def test_reprocess_uses_only_what_the_live_revision_pins(tmp_path, approvals):
    folder, port, out = mappings(tmp_path), free_port(), tmp_path / "out"
    harness = EngineHarness(tmp_path, mappings_dir=folder,
                            conf=f"change_control:\n  approvals: {approvals}\n")
    engine = await harness.start({"adt": channel(port, out)})
    try:
        svc = engine.services
        RevisionStore(svc.db, svc.keys.audit).make(
            take(engine.config.channels_dir, folder,
                 [c.config for c in engine.channels.values()]),
            author="ann", actor="cli:ann", reason="bootstrap", approvals=0, force_live=True)
        [ack] = await exchange(port, [adt("R1", "MRN1")])
        assert ack.value("MSA-1") == "AA"
        await harness.settle(lambda: len(written(out)) == 1)
        [stored] = await engine.ops.search(MessageQuery(channel="adt", limit=5))

        if approvals:
            with pytest.raises(NotApproved, match="stamp-demo@2 is in no live revision"):
                await engine.ops.reprocess(stored["id"], "stamp-demo@2", "analyst")
            used = "stamp-demo@1"  # the pinned one still may
        else:
            used = "stamp-demo@2"  # without change control any version may
        again = await engine.ops.reprocess(stored["id"], used, "analyst")
        assert again["status"] == "accepted"
        version = used[-1]
        await harness.settle(lambda: json.loads(written(out)[0].read_bytes())["id"]
                             == f"v{version}", timeout=10)
        [event] = [e for e in await engine.ops.audit(AuditQuery(message_id=stored["id"]))
                   if e["kind"] == "reprocessed"]
        source = (folder / "stamp-demo" / f"v{version}.py").read_text()
        assert json.loads(event["detail"]) == {"mapping": used,
                                               "source_sha256": sha256(source)}
    finally:
        await harness.stop()
