"""Config checks for FHIRPath filter rules and Bundle splitting, reported at the line of
the channel file an analyst must change."""

from __future__ import annotations

import textwrap
from pathlib import Path

from engine.config.checks import check
from engine.config.loader import load_channels
from engine.config.schema import EngineConfig
from engine.mapping import MappingCatalog


def channel(fmt: str, extra: str) -> str:
    return textwrap.dedent(f"""\
        source:
          type: channel
          inbox: fhir-in
        format: {fmt}
        destinations:
          - name: files
            type: file
            directory: out
        """) + textwrap.dedent(extra)


def problems(root: Path, text: str) -> list[str]:
    (root / "channels" / "a.yaml").write_text(text)
    found = check(EngineConfig(), load_channels("channels", {}), MappingCatalog.discover(
        root / "mappings"))
    return [str(e) for e in found]


def test_good_fhirpath_rules_and_split_pass(project: Path) -> None:
    extra = """\
        split:
          resource: Patient
        filter:
          - fhirpath: "Patient.birthDate < @2000-01-01"
          - fhirpath: "Patient.identifier.where(system = 'urn:oid:1.2.3').exists()"
          - field: meta.source
            present: true
        """
    assert problems(project, channel("fhir", extra)) == []
    assert problems(project, channel("fhir", "split: {resource: '*'}\n")) == []


def test_bad_fhirpath_rules(project: Path) -> None:
    extra = """\
        filter:
          - fhirpath: "Patient.name.where(use = 'official'"
          - fhirpath: "Patient.telecom.memberOf('http://x')"
          - fhirpath: "Patient.active"
            field: active
          - fhirpath: "Patient.active"
            equals: "true"
          - equals: A01
          - fhirpath: "%patient.id"
        """
    assert problems(project, channel("fhir", extra)) == [
        "channels/a.yaml:10:15: filter[0].fhirpath: invalid FHIRPath: not valid FHIRPath at "
        "character 36: missing ')' at '<EOF>'",
        "channels/a.yaml:11:15: filter[1].fhirpath: invalid FHIRPath: function memberOf() is "
        "not supported by the FHIRPath engine (fhirpathpy)",
        "channels/a.yaml:12:5: filter[2]: a filter rule takes `field:` or `fhirpath:`, not "
        "both; write two rules",
        "channels/a.yaml:14:5: filter[3]: a fhirpath rule is its own condition; remove equals "
        "(write e.g. `fhirpath: Patient.gender = 'female'`)",
        "channels/a.yaml:16:5: filter[4]: a filter rule needs `field:` with one condition, or "
        "`fhirpath:` (FHIR channels)",
        "channels/a.yaml:17:15: filter[5].fhirpath: invalid FHIRPath: unknown constant "
        "%patient; available: %context, %resource, %rootResource, %ucum",
    ]


def test_fhirpath_and_split_on_an_hl7v2_channel(project: Path) -> None:
    extra = """\
        split: {resource: Patient}
        filter:
          - fhirpath: "Patient.active"
        """
    assert problems(project, channel("hl7v2", extra)) == [
        "channels/a.yaml:11:15: filter[0].fhirpath: fhirpath rules read FHIR resources, but "
        "this channel's format is hl7v2",
        "channels/a.yaml:9:8: split: split takes FHIR Bundles apart, but this channel's format "
        "is hl7v2",
    ]


def test_split_on_an_unknown_resource_type(project: Path) -> None:
    assert problems(project, channel("fhir", "split: {resource: Observaton}\n")) == [
        "channels/a.yaml:9:19: split.resource: `Observaton` is not a FHIR R4 resource type "
        "(did you mean `Observation`?); give one such as Patient, or * for every entry",
    ]
    assert problems(project, channel("fhir", "split: {resource: BundleEntry}\n")) == [
        "channels/a.yaml:9:19: split.resource: `BundleEntry` is not a FHIR R4 resource type "
        "(did you mean `Bundle`?); "
        "give one such as Patient, or * for every entry",
    ]


def test_split_resource_must_look_like_a_type(project: Path) -> None:
    [problem] = problems_loading(project, channel("fhir", "split: {resource: patient}\n"))
    assert problem.startswith("channels/a.yaml:9:19: split.resource: expected text matching")


def problems_loading(root: Path, text: str) -> list[str]:
    from engine.errors import ConfigErrors

    (root / "channels" / "a.yaml").write_text(text)
    try:
        load_channels("channels", {})
    except ConfigErrors as exc:
        return [str(e) for e in exc.errors]
    return []
