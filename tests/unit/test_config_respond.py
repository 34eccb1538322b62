"""The `respond:` block of a channel (engine/config/respond.py): which destination, how
long, which mapping; mistakes reported at their place in the channel file."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.config.checks import check
from engine.config.loader import load_channels
from engine.config.schema import EngineConfig
from engine.errors import ConfigErrors
from engine.mapping import MappingCatalog

MAPPING = """\
from engine.mapping import mapping


@mapping("answer-to-fhir@1", accepts="x12", emits="application/fhir+json")
def run(message):
    return {}
"""


def channel(respond: str) -> str:
    return textwrap.dedent("""\
        format: x12
        source: {type: http, port: 8444, auth: {type: none}}
        destinations:
          - {name: payer, type: core, url: "https://payer.example/core", sender_id: US,
             receiver_id: THEM}
        """) + textwrap.dedent(respond)


def problems(root: Path, text: str) -> list[str]:
    (root / "channels" / "elig.yaml").write_text(text)
    (root / "mappings" / "answer-to-fhir").mkdir(parents=True, exist_ok=True)
    (root / "mappings" / "answer-to-fhir" / "v1.py").write_text(MAPPING)
    try:
        channels = load_channels("channels", {})
    except ConfigErrors as errors:
        return [str(e) for e in errors.errors]
    return [str(e) for e in check(EngineConfig(), channels,
                                  MappingCatalog.discover(root / "mappings"))]


def test_a_respond_block_naming_a_destination_and_a_mapping_is_sound(project: Path) -> None:
    assert problems(project, channel("""\
        respond: {destination: payer, timeout: 15s, mapping: answer-to-fhir@1}
        """)) == []
    channels = load_channels("channels", {})
    respond = channels[0].config.respond
    assert (respond.destination, respond.timeout, respond.mapping) == (
        "payer", 15.0, "answer-to-fhir@1")


def test_the_timeout_defaults_to_ten_seconds_and_the_mapping_to_none(project: Path) -> None:
    assert problems(project, channel("respond: {destination: payer}\n")) == []
    respond = load_channels("channels", {})[0].config.respond
    assert (respond.timeout, respond.mapping) == (10.0, None)


def test_a_destination_the_channel_does_not_have_is_named(project: Path) -> None:
    [problem] = problems(project, channel("respond: {destination: clearinghouse}\n"))
    assert "respond.destination 'clearinghouse' is not one of this channel's " \
           "destinations" in problem


@pytest.mark.parametrize(("ref", "expected"), [
    ("answer-to-fhir@2", "unknown mapping answer-to-fhir@2; available: answer-to-fhir@1"),
    ("x12-999-to-fhir@1", "no mapping called x12-999-to-fhir"),
])
def test_an_unknown_response_mapping_is_named(project: Path, ref: str, expected: str) -> None:
    [problem] = problems(project, channel(f"respond: {{destination: payer, mapping: {ref}}}\n"))
    assert problem.startswith("channels/elig.yaml:") and "respond.mapping" in problem
    assert expected in problem
