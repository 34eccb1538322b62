"""A destination's `conformance:` settings: what loads, and what the config check refuses
(located in the channel file) because every message would be held."""

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


@mapping("{ref}", accepts="hl7v2", emits="{emits}")
def run(message):
    return b"{{}}"
"""


@pytest.fixture
def project(project: Path) -> Path:
    for ref, emits in [("lab-to-fhir@1", "application/fhir+json"),
                       ("lab-to-v2@1", "x-application/hl7-v2+er7")]:
        name, version = ref.split("@")
        path = project / "mappings" / name / f"v{version}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(MAPPING.format(ref=ref, emits=emits))
    return project


def channel(root: Path, mapping: str | None, destination: str) -> list[str]:
    """The config-check problems of one channel (loading must succeed)."""
    text = textwrap.dedent("""\
        source: {type: mllp, port: 2575}
        """) + (f"mapping: {mapping}\n" if mapping else "") + textwrap.dedent(f"""\
        destinations:
          - name: files
            type: file
            directory: out
          - {destination}
        """)
    (root / "channels" / "lab.yaml").write_text(text)
    catalog = MappingCatalog.discover(root / "mappings")
    return [str(e) for e in check(EngineConfig(), load_channels("channels", {}), catalog)]


EHR = "{name: ehr, type: fhir, url: 'http://fhir.example.org/fhir', conformance: %s}"


def test_a_gate_loads_with_its_defaults(project: Path) -> None:
    assert channel(project, "lab-to-fhir@1", EHR % "{profiles: [us-core]}") == []
    [loaded] = load_channels("channels", {})
    gate = loaded.config.destinations[1].conformance
    assert (gate.fhir, gate.profiles, gate.max_entries) == ("R4", ["us-core"], 300)
    assert loaded.config.destinations[0].conformance is None


def test_an_unknown_profile_is_located_with_a_suggestion(project: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        channel(project, "lab-to-fhir@1", EHR % "{profiles: [us-core-patiant]}")
    [error] = [str(e) for e in caught.value.errors]
    assert error.startswith("channels/lab.yaml:7:")
    assert "destinations[1].conformance.profiles[0]: expected one of us-core, " in error
    assert error.endswith("(did you mean `us-core-patient`?)")


def test_another_fhir_release_is_refused(project: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        channel(project, "lab-to-fhir@1", EHR % "{fhir: R5}")
    assert "destinations[1].conformance.fhir: expected one of R4" in str(
        caught.value.errors[0])


def test_a_gate_needs_a_mapping_that_emits_fhir(project: Path) -> None:
    assert channel(project, "lab-to-v2@1", EHR % "{}") == [
        "channels/lab.yaml:7:79: destinations[1].conformance: destination `ehr` has a "
        "conformance gate, which checks FHIR JSON, but mapping lab-to-v2@1 emits "
        "x-application/hl7-v2+er7"]
    assert channel(project, None, EHR % "{}") == [
        "channels/lab.yaml:6:79: destinations[1].conformance: destination `ehr` has a "
        "conformance gate, which checks the mapping's FHIR output, but this channel has "
        "no mapping"]


def test_a_gate_on_a_destination_sent_the_message_as_received_is_refused(project: Path
                                                                          ) -> None:
    received = ("{name: ehr, type: fhir, url: 'http://fhir.example.org/fhir', "
                "send: received, conformance: {}}")
    [error] = channel(project, "lab-to-fhir@1", received)
    assert error.endswith("destinations[1].conformance: destination `ehr` is sent the "
                          "message as received (send: received); a conformance gate "
                          "checks the mapping's FHIR output: remove one of the two")
