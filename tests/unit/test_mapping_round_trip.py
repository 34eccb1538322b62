"""Our own Bundles go back to HL7v2: hl7v2-adt-to-fhir@2 -> fhir-to-hl7v2-adt@1 and
hl7v2-oru-to-fhir@1 -> fhir-to-hl7v2-oru@1 on the v2-to-FHIR fixtures, through the codecs
as a channel chain runs them. MSH-7 comes back from Bundle.timestamp (the v2-to-FHIR
mappings write it from MSH-7), so it needs an input whose MSH-7 has a zone."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from engine.formats.fhir import FhirCodec
from engine.formats.hl7v2 import Hl7Message, Hl7v2Codec
from engine.formats.hl7v2 import datatypes as dt
from tests import mapping_checks as checks

ADT = checks.Fixtures("hl7v2-adt-to-fhir@2")
ORU = checks.Fixtures("hl7v2-oru-to-fhir@1")


def _zoned(fixtures: checks.Fixtures) -> list[str]:
    """The fixtures whose MSH-7 has a time of day and a zone."""
    found = []
    for case in fixtures.output_cases:
        msh7 = Hl7v2Codec().parse(fixtures.input(case)).body.segments[0].value(7)
        if dt.to_fhir_instant(msh7, "MSH-7", None):
            found.append(case)
    return found


ADT_CASES = _zoned(ADT)
ORU_CASES = _zoned(ORU)


def to_fhir(ref: str, raw: bytes) -> bytes:
    out = checks.run(checks.mapping(ref), raw)
    assert isinstance(out, bytes)
    return out


def to_v2(ref: str, bundle: bytes) -> Hl7Message:
    out = checks.run(checks.mapping(ref), bundle)
    assert isinstance(out, bytes)
    return Hl7Message.parse(out.decode("utf-8"))


def there_and_back(fixtures: checks.Fixtures, back: str, case: str) -> tuple[Hl7Message, ...]:
    """A fixture's message as sent, and as `back` writes it again from the FHIR the
    fixture's mapping made of it."""
    raw = fixtures.input(case)
    return Hl7v2Codec().parse(raw).body, to_v2(back, to_fhir(fixtures.ref, raw))


def test_the_fixtures_cover_zoned_and_unzoned_senders() -> None:
    assert len(ADT_CASES) >= 10 and len(ORU_CASES) >= 4
    assert len(ADT_CASES) < len(ADT.output_cases)  # Meditech sends no zone
    assert len(ORU_CASES) < len(ORU.output_cases)


@pytest.mark.parametrize("case", ADT_CASES)
def test_adt_comes_back_as_adt(case: str) -> None:
    original, message = there_and_back(ADT, "fhir-to-hl7v2-adt@1", case)
    assert message.value("MSH-7") == original.value("MSH-7")
    assert message.value("MSH-9.2") == "A28"  # our Patient has no meta.versionId
    sent = [dt.present(r.value(1)) for r in original.segment("PID").repetitions(3)]
    back = [r.value(1) for r in message.segment("PID").repetitions(3)]
    assert back == [v for v in sent if v]
    families = [dt.present(r.value(1, 1)) for r in original.segment("PID").repetitions(5)]
    assert [r.value(1) for r in message.segment("PID").repetitions(5)] == [f for f in families if f]


def _nm_results(message: Hl7Message) -> list[tuple[str, str]]:
    """(OBX-3.1, OBX-5) of every NM OBX of the first OBR whose value is a number (a FHIR
    input gives one message, of its first report)."""
    found, reports = [], 0
    for seg in message:
        reports += seg.name == "OBR"
        numeric = seg.name == "OBX" and seg.value(2) == "NM"
        if reports == 1 and numeric and dt.parse_nm(seg.value(5)) is not None:
            found.append((seg.value(3, 1), seg.value(5)))
    return found


@pytest.mark.parametrize("case", ORU_CASES)
def test_oru_comes_back_as_oru_with_the_digits_sent(case: str) -> None:
    original, message = there_and_back(ORU, "fhir-to-hl7v2-oru@1", case)
    assert message.value("MSH-9") == "ORU" and message.value("PID-3") == original.value("PID-3")
    assert message.value("OBR-4") == original.value("OBR-4")
    sent = [(code, format(dt.parse_nm(value), "f")) for code, value in _nm_results(original)]
    assert _nm_results(message) == sent


@pytest.mark.parametrize("case", ORU_CASES)
def test_oru_report_without_issued_takes_msh7_from_the_bundle_timestamp(
    case: str
) -> None:
    raw = ORU.input(case)
    bundle = json.loads(to_fhir("hl7v2-oru-to-fhir@1", raw))
    for entry in bundle["entry"]:
        entry["resource"].pop("issued", None)
    message = to_v2("fhir-to-hl7v2-oru@1", json.dumps(bundle).encode())
    assert message.value("MSH-7") == Hl7v2Codec().parse(raw).body.value("MSH-7")


def test_a_sender_without_a_zone_gives_no_timestamp() -> None:
    """An instant needs a zone: without one in MSH-7 the Bundle has no timestamp, and the
    FHIR-to-v2 mapping says so rather than read the clock."""
    case = next(c for c in ADT.output_cases if c not in ADT_CASES)
    bundle = to_fhir("hl7v2-adt-to-fhir@2", ADT.input(case))
    assert "timestamp" not in json.loads(bundle)
    to_adt = checks.mapping("fhir-to-hl7v2-adt@1")
    checks.check_error(to_adt, bundle, "Bundle.entry[0].resource.meta.lastUpdated")


@pytest.mark.parametrize(
    "ref", ["hl7v2-adt-to-fhir@2", "hl7v2-mdm-to-fhir@1", "hl7v2-orm-to-fhir@1",
            "hl7v2-oru-to-fhir@1", "hl7v2-rde-to-fhir@1", "hl7v2-siu-to-fhir@1",
            "hl7v2-vxu-to-fhir@1"],
)
def test_every_v2_to_fhir_mapping_but_adt_v1_stamps_the_bundle(ref: str) -> None:
    fixtures = checks.Fixtures(ref)
    stamped = 0
    for case in _zoned(fixtures):
        bundle = json.loads(to_fhir(ref, fixtures.input(case)))
        assert bundle["timestamp"][10] == "T" and bundle["timestamp"][-6] in "+-"
        stamped += 1
    assert stamped


def test_adt_v1_stays_as_released() -> None:
    v1 = checks.Fixtures("hl7v2-adt-to-fhir@1")
    for case in v1.output_cases:
        bundle = json.loads(to_fhir(v1.ref, v1.input(case)))
        assert "timestamp" not in bundle


def test_fhir_numbers_reach_a_mapping_with_their_digits() -> None:
    body = FhirCodec().parse(
        b'{"resourceType": "Observation", "valueQuantity": {"value": 7.20}, "x": 3}'
    ).body
    assert body["valueQuantity"]["value"] == Decimal("7.20")
    assert str(body["valueQuantity"]["value"]) == "7.20" and body["x"] == 3
