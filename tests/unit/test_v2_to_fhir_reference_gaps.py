"""Facts the reference converter gives that the newest HL7v2 builders had missed: an ISO
8601 MSH-7 still dates the Bundle and its Provenance (with a warning), and the older
released versions keep refusing it as before."""

from __future__ import annotations

from tests import mapping_checks as checks

ORU_ISO = (
    b"MSH|^~\\&|EPIC|NORTHWIND|LAB|RECV|2024-01-15T12:00:00-05:00||ORU^R01^ORU_R01|M1|P|2.5.1\r"
    b"PID|1||MRN123^^^NW^MR||DOE^JANE||19800512|F\r"
    b"OBR|1|ORD1|FIL1|2345-7^Glucose^LN|||202401151100-0500||||||||||||||||||F\r"
    b"OBX|1|NM|2345-7^Glucose^LN||98|mg/dL|70-99|N|||F|||202401151100-0500\r"
)


def test_an_iso_msh7_dates_the_bundle_and_provenance_with_a_warning() -> None:
    mapping = checks.mapping("hl7v2-to-fhir@1")
    bundle = checks.bundle_of(mapping, ORU_ISO)
    assert bundle["timestamp"] == "2024-01-15T12:00:00-05:00"
    assert checks.only(bundle, "Provenance")["recorded"] == "2024-01-15T12:00:00-05:00"
    warnings = checks.warnings_of(mapping, ORU_ISO)
    assert any(w.startswith("MSH-7: is an ISO 8601 date/time") for w in warnings)
    assert not any("engine's zone" in w for w in warnings)
    checks.check_transaction(bundle)


def test_an_iso_msh7_in_utc_and_without_seconds_is_the_same_instant() -> None:
    raw = ORU_ISO.replace(b"2024-01-15T12:00:00-05:00", b"2024-01-15T17:00Z")
    bundle = checks.bundle_of(checks.mapping("hl7v2-oru-to-fhir@2"), raw)
    assert bundle["timestamp"] == "2024-01-15T17:00:00+00:00"


def test_the_released_oru_version_still_gives_no_timestamp() -> None:
    bundle = checks.bundle_of(checks.mapping("hl7v2-oru-to-fhir@1"), ORU_ISO)
    assert "timestamp" not in bundle
