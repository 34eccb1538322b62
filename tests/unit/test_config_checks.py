"""engine/config/checks.py: problems visible only across files, located in the channel file."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.config.checks import check
from engine.config.loader import load_channels
from engine.config.schema import EngineConfig, WebConfig
from engine.mapping import MappingCatalog

MAPPING = """\
from engine.mapping import mapping


@mapping("{ref}", accepts="{accepts}", emits="application/fhir+json")
def run(message):
    return {{}}
"""


def channel(port: int = 2575, extra: str = "") -> str:
    return textwrap.dedent(f"""\
        source:
          type: mllp
          port: {port}
        destinations:
          - name: files
            type: file
            directory: out
        """) + textwrap.dedent(extra)


@pytest.fixture
def project(project: Path) -> Path:
    """The shared project root, with mappings the channels can name."""
    tmp_path = project
    for ref, accepts in [("adt-to-fhir@1", "hl7v2"), ("adt-to-fhir@2", "hl7v2"),
                         ("fhir-to-adt@1", "fhir")]:
        name, version = ref.split("@")
        path = tmp_path / "mappings" / name / f"v{version}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(MAPPING.format(ref=ref, accepts=accepts))
    return tmp_path


def problems(root: Path, files: dict[str, str], engine: EngineConfig | None = None
             ) -> list[str]:
    for name, text in files.items():
        (root / "channels" / name).write_text(text)
    channels = load_channels("channels", {})
    catalog = MappingCatalog.discover(root / "mappings")
    found = check(engine or EngineConfig(), channels, catalog)
    return [str(e) for e in found]


def test_a_clean_configuration_has_no_problems(project: Path) -> None:
    extra = "mapping: adt-to-fhir@2\nfilter:\n  - field: MSH-9.2\n    in: [A01]\n"
    assert problems(project, {"a.yaml": channel(extra=extra)}) == []


def test_duplicate_channel_names(project: Path) -> None:
    files = {"a.yaml": channel(2575, "name: adt\n"), "b.yaml": channel(2576, "name: adt\n")}
    assert problems(project, files) == [
        "channels/b.yaml:8:7: name: channel name `adt` is already used by channels/a.yaml; "
        "give each channel its own name"
    ]


def test_two_enabled_channels_on_one_port(project: Path) -> None:
    files = {"a.yaml": channel(2575), "b.yaml": channel(2575), "c.yaml": channel(2576)}
    assert problems(project, files) == [
        "channels/b.yaml:3:9: source.port: source binds tcp:2575, which channel `a` "
        "(channels/a.yaml) binds too; give each channel its own port"
    ]


def test_a_disabled_channel_may_share_a_port(project: Path) -> None:
    files = {"a.yaml": channel(2575), "b.yaml": channel(2575, "enabled: false\n")}
    assert problems(project, files) == []


def test_source_on_the_web_port(project: Path) -> None:
    files = {"a.yaml": channel(8080)}
    assert problems(project, files) == [
        "channels/a.yaml:3:9: source.port: source binds tcp:8080, the port of the engine's "
        "web listener (web.port); use another port for one of them"
    ]
    assert problems(project, files, EngineConfig(web=WebConfig(port=0))) == []


def test_duplicate_destination_names(project: Path) -> None:
    extra = "  - name: files\n    type: file\n    directory: other\n"
    text = channel().replace("destinations:\n", "destinations:\n" + extra)
    assert problems(project, {"a.yaml": text}) == [
        "channels/a.yaml:8:11: destinations[1].name: destination name `files` is used twice "
        "in this channel; each destination needs its own name"
    ]


def test_unknown_mapping_version_lists_the_versions(project: Path) -> None:
    assert problems(project, {"a.yaml": channel(extra="mapping: adt-to-fhir@3\n")}) == [
        "channels/a.yaml:8:10: mapping: unknown mapping adt-to-fhir@3; available: "
        "adt-to-fhir@1, @2"
    ]


def test_unknown_mapping_name_lists_every_mapping(project: Path) -> None:
    assert problems(project, {"a.yaml": channel(extra="mapping: orders@1\n")}) == [
        "channels/a.yaml:8:10: mapping: no mapping called orders; available: adt-to-fhir@1, "
        "adt-to-fhir@2, fhir-to-adt@1"
    ]


def test_mapping_for_another_format(project: Path) -> None:
    assert problems(project, {"a.yaml": channel(extra="mapping: fhir-to-adt@1\n")}) == [
        "channels/a.yaml:8:10: mapping: mapping fhir-to-adt@1 accepts fhir messages, but this "
        "channel's format is hl7v2"
    ]


def test_filter_rules(project: Path) -> None:
    extra = """\
        filter:
          - field: MSH-9.1
          - field: MSH-9.2
            equals: A01
            matches: A0[1-4]
          - field: PID-3[2].4
            matches: "A0[1-"
          - field: PID3
            present: true
          - field: OBX[2]-5
            not_in: [x]
        """
    assert problems(project, {"a.yaml": channel(extra=extra)}) == [
        "channels/a.yaml:9:5: filter[0]: filter rule on MSH-9.1 has no condition; give one of "
        "equals, in, not_in, matches, present",
        "channels/a.yaml:10:5: filter[1]: filter rule on MSH-9.2 has 2 conditions (equals, "
        "matches); write one rule per condition",
        "channels/a.yaml:14:14: filter[2].matches: invalid regular expression: unterminated "
        "character set at position 2",
        "channels/a.yaml:15:12: filter[3].field: `PID3` is not an HL7 field path; write e.g. "
        "MSH-9.1, PID-3[2].4 or OBX[2]-5",
    ]


def listener(kind: str, host: str, extra: str = "") -> str:
    source = ("type: fhir\n  port: 8443\n  resources: [Patient]\n  auth: {type: users}"
              if kind == "fhir" else "type: mllp\n  port: 2575")
    return (f"format: {'fhir' if kind == 'fhir' else 'hl7v2'}\nsource:\n  {source}\n"
            f"  host: \"{host}\"\n{extra}"
            "destinations:\n  - {name: files, type: file, directory: out}\n")


@pytest.mark.parametrize("kind", ["mllp", "fhir"])
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "lis.northwing.org", ""])
def test_a_network_listener_without_tls_is_refused(project: Path, kind: str,
                                                   host: str) -> None:
    line = 7 if kind == "fhir" else 5
    assert problems(project, {"a.yaml": listener(kind, host)}) == [
        f"channels/a.yaml:{line}:9: source.host: source listens on {host or 'every interface'} "
        "without TLS, so messages and credentials would cross the network in clear; give it "
        "`tls:` (cert and key), bind 127.0.0.1, or set `insecure: true` to accept the risk "
        "(logged and shown on the status page)"
    ]


@pytest.mark.parametrize("kind", ["mllp", "fhir"])
def test_insecure_true_or_tls_lets_a_network_listener_start(project: Path, kind: str) -> None:
    files = {"a.yaml": listener(kind, "0.0.0.0", "  insecure: true\n"),
             "b.yaml": listener(kind, "0.0.0.0", "  tls: {cert: s.crt, key: s.key}\n")
             .replace("8443", "8444").replace("2575", "2576"),
             "c.yaml": listener(kind, "0.0.0.0", "enabled: false\n")}
    assert problems(project, files) == []


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.9.9", "::1", "[::1]", "localhost",
                                  "LOCALHOST"])
def test_loopback_listeners_need_no_tls(project: Path, host: str) -> None:
    assert problems(project, {"a.yaml": listener("mllp", host)}) == []
