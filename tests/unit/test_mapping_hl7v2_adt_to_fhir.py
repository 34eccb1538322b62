"""hl7v2-adt-to-fhir@1: every fixture, valid FHIR, stable ids, and errors without PHI."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7v2Codec
from engine.mapping import Mapping, MappingCatalog, Skip

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "mappings" / "hl7v2-adt-to-fhir" / "fixtures" / "v1"
EXPECTED_KINDS = (".json", ".skip", ".error")
CASES = sorted(p.stem for p in FIXTURES.glob("*.hl7"))
JSON_CASES = [c for c in CASES if (FIXTURES / f"{c}.json").exists()]
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}\Z")


@pytest.fixture(scope="module")
def adt() -> Mapping:
    found = MappingCatalog.discover(ROOT / "mappings").get("hl7v2-adt-to-fhir@1")
    assert found is not None, "mappings/hl7v2-adt-to-fhir/v1.py was not discovered"
    return found


def run(mapping: Mapping, raw: bytes) -> bytes | Skip:
    """Parse with the codec and apply the mapping, as a channel does."""
    return mapping.apply(Hl7v2Codec().parse(raw).body)


def bundle_of(mapping: Mapping, raw: bytes) -> dict:
    out = run(mapping, raw)
    assert isinstance(out, bytes), f"expected a Bundle, got {out!r}"
    return json.loads(out)


def resources(bundle: dict) -> dict[str, dict]:
    """The bundle's resources by type (this mapping writes at most one of each)."""
    return {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}


def pv1_with(fields: dict[int, str]) -> str:
    """A PV1 with visit number MGV5550001 and class I unless `fields` say otherwise."""
    base = {1: "1", 2: "I", 19: "MGV5550001^^^MERCY^VN", **fields}
    return "PV1|" + "|".join(base.get(i, "") for i in range(1, max(base) + 1))


PV1_INPATIENT = pv1_with({3: "3E^301^A"})


def adt_message(
    event: str = "A01",
    *,
    facility: str = "MERCY_GEN",
    msh7: str = "20240601120000-0500",
    pid: str = "PID|1||MG001234^^^MERCY^MR||ROWE^TAMSIN^^^^^L||19900101|F",
    pv1: str | None = PV1_INPATIENT,
) -> bytes:
    segments = [
        f"MSH|^~\\&|ADT|{facility}|CONDUIT|HIE|{msh7}||ADT^{event}|CTRL{event}|P|2.5",
        f"EVN|{event}|{msh7}",
        pid,
    ]
    if pv1 is not None:
        segments.append(pv1)
    return ("\r".join(segments) + "\r").encode()


# ---- fixtures ---------------------------------------------------------------------------


def test_every_fixture_has_exactly_one_expected_file() -> None:
    assert len(CASES) >= 10
    for case in CASES:
        expected = [k for k in EXPECTED_KINDS if (FIXTURES / f"{case}{k}").exists()]
        assert len(expected) == 1, f"{case}.hl7 needs one of {EXPECTED_KINDS}, has {expected}"
    for path in FIXTURES.iterdir():
        assert (FIXTURES / f"{path.stem}.hl7").exists(), f"{path.name} has no input file"


@pytest.mark.parametrize("case", CASES)
def test_fixture(adt: Mapping, case: str) -> None:
    raw = (FIXTURES / f"{case}.hl7").read_bytes()
    skip, error = FIXTURES / f"{case}.skip", FIXTURES / f"{case}.error"
    if error.exists():
        with pytest.raises(MappingError) as caught:
            run(adt, raw)
        assert str(caught.value) == error.read_text().strip()
        return
    out = run(adt, raw)
    if skip.exists():
        assert out == Skip(skip.read_text().strip())
        return
    assert isinstance(out, bytes), f"{case}: expected output, got {out!r}"
    expected = json.loads((FIXTURES / f"{case}.json").read_text(encoding="utf-8"))
    actual = json.loads(out)
    if actual != expected:
        diff = difflib.unified_diff(
            _pretty(expected).splitlines(),
            _pretty(actual).splitlines(),
            f"{case}.json (expected)",
            f"{case} (mapping output)",
            lineterm="",
        )
        pytest.fail("output differs from the fixture:\n" + "\n".join(diff), pytrace=False)


def _pretty(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False)


# ---- valid FHIR -------------------------------------------------------------------------


@pytest.mark.parametrize("case", JSON_CASES)
def test_output_is_a_valid_r4_transaction(adt: Mapping, case: str) -> None:
    bundle = bundle_of(adt, (FIXTURES / f"{case}.hl7").read_bytes())
    Bundle.model_validate(bundle)
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "transaction")
    full_urls = {e["fullUrl"] for e in bundle["entry"]}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        rid = resource["id"]
        assert FHIR_ID.match(rid), f"{rid!r} is not a FHIR id"
        assert entry["fullUrl"] == f"urn:uuid:{rid}"
        assert entry["request"] == {"method": "PUT", "url": f"{resource['resourceType']}/{rid}"}
    for ref in _references(bundle):
        assert ref in full_urls, f"reference {ref} does not resolve inside the bundle"
    assert _empty_elements(bundle) == []


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


def _empty_elements(node: Any, path: str = "$") -> list[str]:
    """Paths of empty strings, arrays or objects, which FHIR forbids."""
    if node in ("", [], {}, None):
        return [path]
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _empty_elements(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _empty_elements(v, f"{path}[{i}]")]
    return []


# ---- deterministic ids ------------------------------------------------------------------


@pytest.mark.parametrize("case", JSON_CASES)
def test_same_input_gives_identical_bytes(adt: Mapping, case: str) -> None:
    raw = (FIXTURES / f"{case}.hl7").read_bytes()
    assert run(adt, raw) == run(adt, raw)


def test_admit_and_discharge_update_the_same_patient_and_encounter(adt: Mapping) -> None:
    admit = resources(bundle_of(adt, (FIXTURES / "epic_a01_admit.hl7").read_bytes()))
    discharge = resources(bundle_of(adt, (FIXTURES / "epic_a03_discharge.hl7").read_bytes()))
    assert admit["Patient"]["id"] == discharge["Patient"]["id"]
    assert admit["Encounter"]["id"] == discharge["Encounter"]["id"]
    assert (admit["Encounter"]["status"], discharge["Encounter"]["status"]) == (
        "in-progress",
        "finished",
    )


def test_patient_id_ignores_event_names_and_other_identifiers(adt: Mapping) -> None:
    first = resources(bundle_of(adt, adt_message("A04")))["Patient"]
    updated = adt_message(
        "A08",
        pid="PID|1||X-77^^^OTHER^PI~MG001234^^^MERCY^MR||ROWE-HALL^TAMSIN^^^^^L||19900101|F",
    )
    assert resources(bundle_of(adt, updated))["Patient"]["id"] == first["id"]


def test_another_facility_gets_other_ids(adt: Mapping) -> None:
    here = resources(bundle_of(adt, adt_message(facility="MERCY_GEN")))
    there = resources(bundle_of(adt, adt_message(facility="MERCY_NORTH")))
    assert here["Patient"]["id"] != there["Patient"]["id"]
    assert here["Encounter"]["id"] != there["Encounter"]["id"]


def test_another_identifier_gets_another_patient(adt: Mapping) -> None:
    one = resources(bundle_of(adt, adt_message()))["Patient"]["id"]
    other = adt_message(pid="PID|1||MG001235^^^MERCY^MR||ROWE^TAMSIN^^^^^L||19900101|F")
    assert resources(bundle_of(adt, other))["Patient"]["id"] != one


def test_sending_application_scopes_ids_when_facility_is_empty(adt: Mapping) -> None:
    raw = adt_message(facility="")
    assert resources(bundle_of(adt, raw))["Patient"]["id"]
    msh = raw.split(b"\r")[0].split(b"|")
    msh[2] = b""
    with pytest.raises(MappingError) as caught:
        run(adt, b"|".join(msh) + raw[raw.index(b"\r") :])
    assert caught.value.field == "MSH-4"


# ---- errors name fields, never values ---------------------------------------------------

PHI_PID = "PID|1|EXT-55012|{pid3}||QUARTERMAINE^ODALYS^^^^^L||19770315|F|||9 ELM ST^^SALEM^MA"


@pytest.mark.parametrize(
    "pid",
    [
        PHI_PID.format(pid3=""),
        PHI_PID.format(pid3="^^^MERCY^MR"),
        PHI_PID.format(pid3='""'),
    ],
)
def test_missing_pid3_fails_naming_the_field_and_no_value(adt: Mapping, pid: str) -> None:
    with pytest.raises(MappingError) as caught:
        run(adt, adt_message(pid=pid))
    assert caught.value.field == "PID-3"
    text = str(caught.value)
    assert text.startswith("PID-3: ")
    for value in ("EXT-55012", "QUARTERMAINE", "ODALYS", "19770315", "ELM", "SALEM", "MERCY"):
        assert value not in text


def test_missing_pid_segment_fails_naming_pid3(adt: Mapping) -> None:
    raw = adt_message(pid="PD1|||CLINIC", pv1=None)
    with pytest.raises(MappingError) as caught:
        run(adt, raw)
    assert caught.value.field == "PID-3"


@pytest.mark.parametrize(
    ("pid", "field", "value"),
    [
        ("PID|1||MG1^^^MERCY^MR||ROWE^T||19901402|F", "PID-7", "19901402"),
        ("PID|1||MG1^^^MERCY^MR||ROWE^T||19900101|Q", "PID-8", "Q"),
        (
            "PID|1||MG1^^^MERCY^MR||ROWE^T||19900101|F" + "|" * 21 + "2024-01-05",
            "PID-29",
            "2024-01-05",
        ),
    ],
)
def test_bad_values_fail_naming_their_field(adt: Mapping, pid: str, field: str, value: str) -> None:
    with pytest.raises(MappingError) as caught:
        run(adt, adt_message(pid=pid))
    assert caught.value.field == field
    assert value not in str(caught.value).removeprefix(f"{field}:")


def test_bad_admit_time_fails_naming_pv1_44(adt: Mapping) -> None:
    with pytest.raises(MappingError) as caught:
        run(adt, adt_message(pv1=pv1_with({44: "20241332"})))
    assert caught.value.field == "PV1-44"


def test_non_adt_message_fails_naming_msh9(adt: Mapping) -> None:
    raw = adt_message().replace(b"ADT^A01", b"ORM^O01")
    with pytest.raises(MappingError) as caught:
        run(adt, raw)
    assert caught.value.field == "MSH-9"


# ---- events -----------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["A02", "A05", "A13", "A40"])
def test_unmapped_adt_events_are_skipped_with_a_reason(adt: Mapping, event: str) -> None:
    assert run(adt, adt_message(event)) == Skip(f"ADT^{event} is not mapped by this version")


def test_event_is_read_from_evn_when_msh9_has_none(adt: Mapping) -> None:
    raw = adt_message("A03").replace(b"ADT^A03", b"ADT")
    assert resources(bundle_of(adt, raw))["Encounter"]["status"] == "finished"


@pytest.mark.parametrize(
    ("event", "pv1_fields", "status"),
    [
        ("A01", {}, "in-progress"),
        ("A04", {2: "O"}, "in-progress"),
        ("A08", {}, "in-progress"),
        ("A08", {45: "20240602080000-0500"}, "finished"),
        ("A03", {45: "20240602080000-0500"}, "finished"),
        ("A03", {}, "finished"),
        ("A11", {}, "cancelled"),
        ("A08", {2: "P"}, "planned"),
    ],
)
def test_encounter_status_follows_the_event(
    adt: Mapping, event: str, pv1_fields: dict[int, str], status: str
) -> None:
    bundle = bundle_of(adt, adt_message(event, pv1=pv1_with(pv1_fields)))
    assert resources(bundle)["Encounter"]["status"] == status


@pytest.mark.parametrize(
    ("code", "system", "expected"),
    [
        ("I", "http://terminology.hl7.org/CodeSystem/v3-ActCode", "IMP"),
        ("O", "http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB"),
        ("E", "http://terminology.hl7.org/CodeSystem/v3-ActCode", "EMER"),
        ("P", "http://terminology.hl7.org/CodeSystem/v3-ActCode", "PRENC"),
        ("R", "http://terminology.hl7.org/CodeSystem/v2-0004", "R"),
        ("N", "http://terminology.hl7.org/CodeSystem/v2-0004", "N"),
        ("Z", "http://terminology.hl7.org/CodeSystem/v2-0004", "Z"),
        ("", "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "UNK"),
    ],
)
def test_patient_class_becomes_encounter_class(
    adt: Mapping, code: str, system: str, expected: str
) -> None:
    encounter = resources(bundle_of(adt, adt_message(pv1=pv1_with({2: code}))))["Encounter"]
    assert (encounter["class"]["system"], encounter["class"]["code"]) == (system, expected)


def test_no_encounter_without_a_visit_number(adt: Mapping) -> None:
    bundle = bundle_of(adt, adt_message(pv1="PV1|1|I|3E^301^A"))
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Patient"]


@pytest.mark.parametrize("event", ["A28", "A31"])
def test_person_events_write_no_encounter_even_with_a_visit(adt: Mapping, event: str) -> None:
    bundle = bundle_of(adt, adt_message(event))
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Patient"]


# ---- what lands in the resources --------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "gender"),
    [
        ("M", "male"),
        ("F", "female"),
        ("O", "other"),
        ("U", "unknown"),
        ("A", "other"),
        ("N", "unknown"),
        ("f", "female"),
    ],
)
def test_sex_maps_through_table_0001(adt: Mapping, code: str, gender: str) -> None:
    pid = f"PID|1||MG1^^^MERCY^MR||ROWE^T||19900101|{code}"
    assert resources(bundle_of(adt, adt_message(pid=pid)))["Patient"]["gender"] == gender


def test_missing_sex_is_omitted(adt: Mapping) -> None:
    pid = "PID|1||MG1^^^MERCY^MR||ROWE^T||19900101"
    assert "gender" not in resources(bundle_of(adt, adt_message(pid=pid)))["Patient"]


def test_times_without_zone_take_the_senders_zone_from_msh7(adt: Mapping) -> None:
    pv1 = pv1_with({44: "202406011130", 45: "20240601180000"})
    period = resources(bundle_of(adt, adt_message(pv1=pv1)))["Encounter"]["period"]
    assert period == {"start": "2024-06-01T11:30:00-05:00", "end": "2024-06-01T18:00:00-05:00"}


def test_times_without_any_zone_keep_only_the_date(adt: Mapping) -> None:
    raw = adt_message(msh7="20240601120000", pv1=pv1_with({44: "202406011130"}))
    assert resources(bundle_of(adt, raw))["Encounter"]["period"] == {"start": "2024-06-01"}


@pytest.mark.parametrize(
    ("fields", "deceased"),
    [
        ("|Y", {"deceasedBoolean": True}),
        ("|N", {"deceasedBoolean": False}),
        ("20240105224000-0500|Y", {"deceasedDateTime": "2024-01-05T22:40:00-05:00"}),
        ("20240105|", {"deceasedDateTime": "2024-01-05"}),
        ("|", {}),
    ],
)
def test_death_indicator_and_time(adt: Mapping, fields: str, deceased: dict) -> None:
    pid = "PID|1||MG1^^^MERCY^MR||ROWE^T||19300101|F" + "|" * 21 + fields
    patient = resources(bundle_of(adt, adt_message(pid=pid)))["Patient"]
    assert {k: v for k, v in patient.items() if k.startswith("deceased")} == deceased


def test_escaped_delimiters_arrive_as_text(adt: Mapping) -> None:
    bundle = bundle_of(adt, (FIXTURES / "escapes_a08_preadmit.hl7").read_bytes())
    patient = resources(bundle)["Patient"]
    assert patient["name"][0]["family"] == "O'BRIEN-MCKAY"
    assert patient["address"][0]["line"] == [
        "12 HARBOR ST & 3RD AVE",
        "C\\O MARINA OFFICE | SLIP 9",
    ]
    assert patient["address"][1]["line"] == ["BLDG 2~WING C", "UNIT 4^B REAR ENTRANCE"]


def test_latin1_message_keeps_its_accents(adt: Mapping) -> None:
    bundle = bundle_of(adt, (FIXTURES / "latin1_a01.hl7").read_bytes())
    patient = resources(bundle)["Patient"]
    assert patient["name"][0]["family"] == "PEÑA IBÁÑEZ"
    assert patient["address"][0]["city"] == "BAYAMÓN"
