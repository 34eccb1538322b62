"""Every X12 mapping through a channel, both directions: each fixture of each X12
mapping is taken on by a channel pinned to that mapping, as a sender would send it,
and what the channel stores for delivery is exactly the fixture's expected output, with
the sender answered the standard's way (a 999 accepting every set of an X12 input; a
FHIR input's acknowledgement with the X12 it became stored for the payer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.formats.fhir import FhirCodec
from engine.formats.x12 import X12Codec
from engine.mapping import MappingCatalog
from engine.message import MessageStatus
from tests.harness import REPO
from tests.unit.test_channel import meta
from tests.unit.test_x12_codec import segments

CATALOG = MappingCatalog.discover(REPO / "mappings")
X12_MAPPINGS = sorted(ref for ref in CATALOG.refs() if "x12" in ref)


def cases() -> list[tuple[str, Path]]:
    found = []
    for ref in X12_MAPPINGS:
        name, version = ref.split("@")
        folder = REPO / "mappings" / name / "fixtures" / f"v{version}"
        ext = ".x12" if name.startswith("x12-") else ".json"
        found += [(ref, source) for source in sorted(folder.glob(f"*{ext}"))
                  if source.with_suffix(".json" if ext == ".x12" else ".x12").exists()]
    return found


def test_every_issue_mapping_has_channel_cases():
    refs = {ref for ref, _ in cases()}
    assert refs == {"x12-270-to-fhir@1", "fhir-to-x12-270@1", "x12-271-to-fhir@1",
                    "x12-837-to-fhir@1", "x12-837-to-fhir@2", "x12-835-to-fhir@1",
                    "x12-834-to-fhir@1",
                    "x12-278-to-fhir@1", "fhir-to-x12-278@1"}


@pytest.mark.parametrize("ref, source", cases(), ids=lambda v: getattr(v, "stem", v))
async def test_a_fixture_through_a_channel_gives_the_expected_output(channel_env, ref, source):
    mapping = CATALOG.get(ref)
    from_x12 = mapping.accepts == "x12"
    codec = X12Codec() if from_x12 else FhirCodec()
    channel = channel_env.channel(mapping, codec, format=mapping.accepts,
                          source={"type": "channel", "inbox": "in"})
    raw = source.read_bytes()
    receipt = await channel.deliver(raw, meta(raw, "channel"))
    assert receipt.status is MessageStatus.ACCEPTED, receipt
    stored = [o for _, _, o in channel_env.store.open_outputs(receipt.message_id)]
    assert len(stored) == 1
    if from_x12:
        want = json.loads(source.with_suffix(".json").read_bytes())
        assert json.loads(stored[0]) == want
        answer = segments(receipt.replies[0])
        assert [s[1] for s in answer if s[0] == "AK9"] == ["A"]
        assert {s[1] for s in answer if s[0] == "IK5"} == {"A"}
    else:
        want = source.with_suffix(".x12").read_bytes()
        assert X12Codec().diff(stored[0], want) == []
        parsed = X12Codec().parse(stored[0])
        assert X12Codec().validate(parsed, "strict") == []
