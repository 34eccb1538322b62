"""The analyst's test bench: detection, fixtures of mappings and channels, diffs."""

from __future__ import annotations

import shutil

from engine.config.loader import load_channels
from engine.mapping import MappingCatalog
from engine.testbench import (
    acknowledgement,
    channel_fixtures,
    detect,
    diff_versions,
    inspect,
    mapping_fixtures,
)
from tests.harness import REPO, adt

ADT_FIXTURES = REPO / "mappings" / "hl7v2-adt-to-fhir" / "fixtures"


def test_standards_are_detected_from_the_first_bytes():
    assert detect(b"\xef\xbb\xbfMSH|^~\\&|") == "hl7v2"
    assert detect(b"\r\nBHS|^~\\&|") == "hl7v2"
    assert detect(b"ISA*00*          *00*") == "x12"
    assert detect(b'{"resourceType": "Patient"}') == "fhir"
    assert detect(b'<?xml version="1.0"?><Message xmlns="http://www.ncpdp.org/schema/SCRIPT">'
                  ) == "ncpdp"
    assert detect(b"hello") == "unknown"


def test_inspect_names_problems_with_their_location():
    found = inspect(adt("C1", "MRN1").replace(b"PID|1||MRN1^^^NORTHWING^MR|", b"PID|1|||"))
    assert found.parsed is not None and found.parsed.message_type == "ADT^A01"
    assert any((p.segment, p.field, p.code) == ("PID", 3, "101") for p in found.problems)
    x12 = inspect(b"ISA*00*          *00*          *ZZ*SENDER")  # read now, but cut short
    assert x12.parsed is None and x12.problems[0].segment == "ISA"
    assert x12.problems[0].code == "023"  # TA105: improper (premature) end of file


def test_acknowledgement_is_what_the_engine_would_send():
    assert b"MSA|AA|C1" in acknowledgement(adt("C1", "MRN1"))
    assert b"MSA|AR" in acknowledgement(b"not a message")


def test_a_fixture_that_no_longer_matches_fails_with_a_diff(tmp_path):
    mappings = tmp_path / "mappings"
    shutil.copytree(REPO / "mappings" / "hl7v2-adt-to-fhir", mappings / "hl7v2-adt-to-fhir")
    expected = mappings / "hl7v2-adt-to-fhir" / "fixtures" / "v1" / "epic_a01_admit.json"
    expected.write_text(expected.read_text().replace('"female"', '"male"'))
    (mappings / "hl7v2-adt-to-fhir" / "fixtures" / "v1" / "orphan.hl7").write_bytes(b"MSH|")
    catalog = MappingCatalog.discover(mappings)
    results = {r.name: r for r in mapping_fixtures(catalog, mappings, ["hl7v2-adt-to-fhir@1"])}
    broken = results["hl7v2-adt-to-fhir@1 epic_a01_admit"]
    assert not broken.ok
    assert any("gender" in line and "female" in line for line in broken.details)
    assert not results["hl7v2-adt-to-fhir@1 orphan"].ok  # no expected file beside it
    assert results["hl7v2-adt-to-fhir@1 cerner_a04_register"].ok


def test_shipped_channel_fixtures_pass():
    catalog = MappingCatalog.discover(REPO / "mappings")
    channels = load_channels(REPO / "channels", {})
    results = list(channel_fixtures(channels, catalog, REPO / "channels"))
    assert len(results) >= 6
    assert all(r.ok for r in results), [r for r in results if not r.ok]


def test_version_diff_is_structural():
    catalog = MappingCatalog.discover(REPO / "mappings")
    v1, v2 = catalog.get("hl7v2-adt-to-fhir@1"), catalog.get("hl7v2-adt-to-fhir@2")
    raw = (ADT_FIXTURES / "v2" / "epic_a01_clinical.hl7").read_bytes()
    changes = diff_versions(v1, v2, raw)
    assert not isinstance(changes, str)
    assert any(c.kind == "added" and c.path.startswith("entry[") for c in changes)
    assert diff_versions(v1, v1, raw) == []
