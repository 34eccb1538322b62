"""Our own Bundles go back to HL7v2: hl7v2-adt-to-fhir@2 -> fhir-to-hl7v2-adt@1 and
hl7v2-oru-to-fhir@1 -> fhir-to-hl7v2-oru@1 on the v2-to-FHIR fixtures, through the codecs
as a channel chain runs them. MSH-7 comes back from Bundle.timestamp (the v2-to-FHIR
mappings write it from MSH-7), so it needs an input whose MSH-7 has a zone."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from engine.errors import MappingError
from engine.formats.fhir import FhirCodec
from engine.formats.hl7v2 import Hl7Message, Hl7v2Codec
from engine.formats.hl7v2 import datatypes as dt
from engine.mapping import Mapping, MappingCatalog

ROOT = Path(__file__).resolve().parents[2]
MAPPINGS = ROOT / "mappings"


def _cases(name: str, version: int) -> list[str]:
    folder = MAPPINGS / name / "fixtures" / f"v{version}"
    return sorted(p.stem for p in folder.glob("*.hl7") if p.with_suffix(".json").exists())


def _raw(name: str, version: int, case: str) -> bytes:
    return (MAPPINGS / name / "fixtures" / f"v{version}" / f"{case}.hl7").read_bytes()


def _zoned(name: str, version: int) -> list[str]:
    """The fixtures whose MSH-7 has a time of day and a zone."""
    found = []
    for case in _cases(name, version):
        msh7 = Hl7v2Codec().parse(_raw(name, version, case)).body.segments[0].value(7)
        if dt.to_fhir_instant(msh7, "MSH-7", None):
            found.append(case)
    return found


ADT_CASES = _zoned("hl7v2-adt-to-fhir", 2)
ORU_CASES = _zoned("hl7v2-oru-to-fhir", 1)


@pytest.fixture(scope="module")
def catalog() -> MappingCatalog:
    return MappingCatalog.discover(MAPPINGS)


def _get(catalog: MappingCatalog, ref: str) -> Mapping:
    found = catalog.get(ref)
    assert found is not None, f"{ref} was not discovered"
    return found


def to_fhir(catalog: MappingCatalog, ref: str, raw: bytes) -> bytes:
    out = _get(catalog, ref).apply(Hl7v2Codec().parse(raw).body)
    assert isinstance(out, bytes)
    return out


def to_v2(catalog: MappingCatalog, ref: str, bundle: bytes) -> Hl7Message:
    out = _get(catalog, ref).apply(FhirCodec().parse(bundle).body)
    assert isinstance(out, bytes)
    return Hl7Message.parse(out.decode("utf-8"))


def test_the_fixtures_cover_zoned_and_unzoned_senders() -> None:
    assert len(ADT_CASES) >= 10 and len(ORU_CASES) >= 4
    assert len(ADT_CASES) < len(_cases("hl7v2-adt-to-fhir", 2))  # Meditech sends no zone
    assert len(ORU_CASES) < len(_cases("hl7v2-oru-to-fhir", 1))


@pytest.mark.parametrize("case", ADT_CASES)
def test_adt_comes_back_as_adt(catalog: MappingCatalog, case: str) -> None:
    raw = _raw("hl7v2-adt-to-fhir", 2, case)
    original = Hl7v2Codec().parse(raw).body
    bundle = to_fhir(catalog, "hl7v2-adt-to-fhir@2", raw)
    message = to_v2(catalog, "fhir-to-hl7v2-adt@1", bundle)
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
def test_oru_comes_back_as_oru_with_the_digits_sent(catalog: MappingCatalog, case: str) -> None:
    raw = _raw("hl7v2-oru-to-fhir", 1, case)
    original = Hl7v2Codec().parse(raw).body
    bundle = to_fhir(catalog, "hl7v2-oru-to-fhir@1", raw)
    message = to_v2(catalog, "fhir-to-hl7v2-oru@1", bundle)
    assert message.value("MSH-9") == "ORU" and message.value("PID-3") == original.value("PID-3")
    assert message.value("OBR-4") == original.value("OBR-4")
    sent = [(code, format(dt.parse_nm(value), "f")) for code, value in _nm_results(original)]
    assert _nm_results(message) == sent


@pytest.mark.parametrize("case", ORU_CASES)
def test_oru_report_without_issued_takes_msh7_from_the_bundle_timestamp(
    catalog: MappingCatalog, case: str
) -> None:
    raw = _raw("hl7v2-oru-to-fhir", 1, case)
    bundle = json.loads(to_fhir(catalog, "hl7v2-oru-to-fhir@1", raw))
    for entry in bundle["entry"]:
        entry["resource"].pop("issued", None)
    message = to_v2(catalog, "fhir-to-hl7v2-oru@1", json.dumps(bundle).encode())
    assert message.value("MSH-7") == Hl7v2Codec().parse(raw).body.value("MSH-7")


def test_a_sender_without_a_zone_gives_no_timestamp(catalog: MappingCatalog) -> None:
    """An instant needs a zone: without one in MSH-7 the Bundle has no timestamp, and the
    FHIR-to-v2 mapping says so rather than read the clock."""
    case = next(c for c in _cases("hl7v2-adt-to-fhir", 2) if c not in ADT_CASES)
    bundle = to_fhir(catalog, "hl7v2-adt-to-fhir@2", _raw("hl7v2-adt-to-fhir", 2, case))
    assert "timestamp" not in json.loads(bundle)
    with pytest.raises(MappingError) as caught:
        to_v2(catalog, "fhir-to-hl7v2-adt@1", bundle)
    assert caught.value.field == "Bundle.entry[0].resource.meta.lastUpdated"


@pytest.mark.parametrize(
    "ref", ["hl7v2-adt-to-fhir@2", "hl7v2-mdm-to-fhir@1", "hl7v2-orm-to-fhir@1",
            "hl7v2-oru-to-fhir@1", "hl7v2-rde-to-fhir@1", "hl7v2-siu-to-fhir@1",
            "hl7v2-vxu-to-fhir@1"],
)
def test_every_v2_to_fhir_mapping_but_adt_v1_stamps_the_bundle(
    catalog: MappingCatalog, ref: str
) -> None:
    name, version = ref.split("@")
    stamped = 0
    for case in _zoned(name, int(version)):
        bundle = json.loads(to_fhir(catalog, ref, _raw(name, int(version), case)))
        assert bundle["timestamp"][10] == "T" and bundle["timestamp"][-6] in "+-"
        stamped += 1
    assert stamped


def test_adt_v1_stays_as_released(catalog: MappingCatalog) -> None:
    for case in _cases("hl7v2-adt-to-fhir", 1):
        bundle = json.loads(to_fhir(catalog, "hl7v2-adt-to-fhir@1",
                                    _raw("hl7v2-adt-to-fhir", 1, case)))
        assert "timestamp" not in bundle


def test_fhir_numbers_reach_a_mapping_with_their_digits() -> None:
    body = FhirCodec().parse(
        b'{"resourceType": "Observation", "valueQuantity": {"value": 7.20}, "x": 3}'
    ).body
    assert body["valueQuantity"]["value"] == Decimal("7.20")
    assert str(body["valueQuantity"]["value"]) == "7.20" and body["x"] == 3
