"""hl7v2-patient-summary@1 (declarative): every fixture, valid FHIR R4 Patients, stable ids,
agreement with hl7v2-adt-to-fhir@1's Patient, and errors without PHI."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.patient import Patient

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7v2Codec
from engine.mapping import Mapping, MappingCatalog, Skip

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "mappings" / "hl7v2-patient-summary"
FIXTURES = FOLDER / "fixtures" / "v1"
EXPECTED_KINDS = (".json", ".skip", ".error")
CASES = sorted(p.stem for p in FIXTURES.glob("*.hl7"))
JSON_CASES = [c for c in CASES if (FIXTURES / f"{c}.json").exists()]
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}\Z")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> MappingCatalog:
    """This mapping and the Python ADT one, discovered together from a folder of their own
    (so a mapping being edited elsewhere in mappings/ cannot break these tests)."""
    folder = tmp_path_factory.mktemp("mappings")
    for name in ("hl7v2-patient-summary", "hl7v2-adt-to-fhir"):
        (folder / name).symlink_to(ROOT / "mappings" / name)
    return MappingCatalog.discover(folder)


@pytest.fixture(scope="module")
def summary(catalog: MappingCatalog) -> Mapping:
    found = catalog.get("hl7v2-patient-summary@1")
    assert found is not None, "mappings/hl7v2-patient-summary/v1.yaml was not discovered"
    return found


def run(mapping: Mapping, raw: bytes) -> bytes | Skip:
    """Parse with the codec and apply the mapping, as a channel does."""
    return mapping.apply(Hl7v2Codec().parse(raw).body)


def patient_of(mapping: Mapping, raw: bytes) -> dict:
    out = run(mapping, raw)
    assert isinstance(out, bytes), f"expected a Patient, got {out!r}"
    return json.loads(out)


def fixture(case: str) -> bytes:
    return (FIXTURES / f"{case}.hl7").read_bytes()


def adt_message(pid: str, msh9: str = "ADT^A08") -> bytes:
    msh = f"MSH|^~\\&|ADT|MERCY_GEN|CONDUIT|HIE|20240601120000-0500||{msh9}|C1|P|2.5"
    return "\r".join([msh, pid, ""]).encode()


# ---- fixtures ---------------------------------------------------------------------------


def test_every_fixture_has_exactly_one_expected_file() -> None:
    assert len(JSON_CASES) >= 4
    for case in CASES:
        expected = [k for k in EXPECTED_KINDS if (FIXTURES / f"{case}{k}").exists()]
        assert len(expected) == 1, f"{case}.hl7 needs one of {EXPECTED_KINDS}, has {expected}"
    for path in FIXTURES.iterdir():
        assert (FIXTURES / f"{path.stem}.hl7").exists(), f"{path.name} has no input file"
    kinds = {p.suffix for p in FIXTURES.iterdir()}
    assert {".json", ".skip", ".error"} <= kinds


@pytest.mark.parametrize("case", CASES)
def test_fixture(summary: Mapping, case: str) -> None:
    raw = fixture(case)
    skip, error = FIXTURES / f"{case}.skip", FIXTURES / f"{case}.error"
    if error.exists():
        with pytest.raises(MappingError) as caught:
            run(summary, raw)
        assert str(caught.value) == error.read_text().strip()
        return
    out = run(summary, raw)
    if skip.exists():
        assert out == Skip(skip.read_text().strip())
        return
    assert isinstance(out, bytes), f"{case}: expected output, got {out!r}"
    expected = json.loads((FIXTURES / f"{case}.json").read_text(encoding="utf-8"))
    actual = json.loads(out)
    if actual != expected:
        diff = difflib.unified_diff(
            _pretty(expected).splitlines(), _pretty(actual).splitlines(),
            f"{case}.json (expected)", f"{case} (mapping output)", lineterm="")
        pytest.fail("output differs from the fixture:\n" + "\n".join(diff), pytrace=False)


def _pretty(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False)


# ---- valid FHIR -------------------------------------------------------------------------


@pytest.mark.parametrize("case", JSON_CASES)
def test_output_is_a_valid_r4_patient(summary: Mapping, case: str) -> None:
    patient = patient_of(summary, fixture(case))
    Patient.model_validate(patient)
    assert patient["resourceType"] == "Patient"
    assert FHIR_ID.match(patient["id"])
    assert _empty_elements(patient) == []
    assert not ({"deceasedBoolean", "deceasedDateTime"} <= set(patient))


def _empty_elements(node: Any, path: str = "$") -> list[str]:
    """Paths of empty strings, arrays or objects, which FHIR forbids."""
    if node in ("", [], {}, None):
        return [path]
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _empty_elements(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _empty_elements(v, f"{path}[{i}]")]
    return []


@pytest.mark.parametrize("case", JSON_CASES)
def test_same_input_gives_identical_bytes(summary: Mapping, case: str) -> None:
    assert run(summary, fixture(case)) == run(summary, fixture(case))


# ---- agreement with the Python ADT mapping ---------------------------------------------

# What the summary deliberately does differently (see the comment at the top of v1.yaml).
_OWN_CHOICES = ("id", "telecom", "maritalStatus")


@pytest.mark.parametrize("case", JSON_CASES)
def test_agrees_with_the_python_adt_mappings_patient(
    catalog: MappingCatalog, summary: Mapping, case: str
) -> None:
    bundle = patient_of(catalog.get("hl7v2-adt-to-fhir@1"), fixture(case))
    python = bundle["entry"][0]["resource"]
    declarative = patient_of(summary, fixture(case))
    for key in set(python) | set(declarative):
        if key not in _OWN_CHOICES:
            assert declarative.get(key) == python.get(key), key
    assert [t["system"] for t in declarative.get("telecom", [])] == [
        t["system"] for t in python.get("telecom", [])]


@pytest.mark.parametrize(
    ("case", "same"),
    [("epic_a01_admit", True), ("meditech_a08_update", True), ("cerner_a04_register", False)],
)
def test_patient_id_equals_the_adt_mappings_when_the_mr_comes_first(
    catalog: MappingCatalog, summary: Mapping, case: str, same: bool
) -> None:
    python = patient_of(catalog.get("hl7v2-adt-to-fhir@1"), fixture(case))
    assert (patient_of(summary, fixture(case))["id"] == python["entry"][0]["resource"]["id"]) \
        is same


# ---- behaviour --------------------------------------------------------------------------


def test_non_adt_messages_are_skipped(summary: Mapping) -> None:
    raw = adt_message("PID|1||MG1^^^MERCY^MR||ROWE^T", msh9="ORU^R01")
    assert run(summary, raw) == Skip("only ADT messages are summarised by this version")


def test_time_of_death_takes_the_senders_zone(summary: Mapping) -> None:
    pid = "PID|1||MG1^^^MERCY^MR||ROWE^T||19300101|F" + "|" * 21 + "202401052240|Y"
    patient = patient_of(summary, adt_message(pid))
    assert patient["deceasedDateTime"] == "2024-01-05T22:40:00-05:00"
    assert "deceasedBoolean" not in patient


PHI_PID = "PID|1|EXT-55012|{pid3}||QUARTERMAINE^ODALYS^^^^^L||{dob}|{sex}|||9 ELM ST^^SALEM^MA"
PHI = ("EXT-55012", "QUARTERMAINE", "ODALYS", "ELM", "SALEM", "MERCY")


@pytest.mark.parametrize(
    ("pid3", "dob", "sex", "field"),
    [
        ("", "19770315", "F", "PID-3"),
        ("^^^MERCY^MR", "19770315", "F", "PID-3"),
        ('""', "19770315", "F", "PID-3"),
        ("MG1^^^MERCY^MR", "19770231", "F", "PID-7"),
        ("MG1^^^MERCY^MR", "19770315", "Q", "PID-8"),
    ],
)
def test_errors_name_the_field_and_no_value(
    summary: Mapping, pid3: str, dob: str, sex: str, field: str
) -> None:
    with pytest.raises(MappingError) as caught:
        run(summary, adt_message(PHI_PID.format(pid3=pid3, dob=dob, sex=sex)))
    assert caught.value.field == field
    text = str(caught.value)
    for value in (*PHI, dob):
        assert value not in text.removeprefix(f"{field}:")


def test_missing_pid_segment_fails_naming_pid3(summary: Mapping) -> None:
    with pytest.raises(MappingError) as caught:
        run(summary, adt_message("PD1|||CLINIC"))
    assert caught.value.field == "PID-3"
