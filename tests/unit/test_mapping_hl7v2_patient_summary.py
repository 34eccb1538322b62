"""hl7v2-patient-summary@1 (declarative): every fixture, valid FHIR R4 Patients, stable ids,
agreement with hl7v2-adt-to-fhir@1's Patient, and errors without PHI."""

from __future__ import annotations

import pytest

from engine.mapping import Mapping, MappingCatalog, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of as patient_of
from tests.mapping_checks import run

FIXTURES = checks.Fixtures("hl7v2-patient-summary@1")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> MappingCatalog:
    """This mapping and the Python ADT one, discovered together from a folder of their own
    (so a mapping being edited elsewhere in mappings/ cannot break these tests)."""
    folder = tmp_path_factory.mktemp("mappings")
    for name in ("hl7v2-patient-summary", "hl7v2-adt-to-fhir"):
        (folder / name).symlink_to(checks.MAPPINGS / name)
    return MappingCatalog.discover(folder)


@pytest.fixture(scope="module")
def summary(catalog: MappingCatalog) -> Mapping:
    found = catalog.get(FIXTURES.ref)
    assert found is not None, "mappings/hl7v2-patient-summary/v1.yaml was not discovered"
    return found


def fixture(case: str) -> bytes:
    return FIXTURES.input(case)


def adt_message(pid: str, msh9: str = "ADT^A08") -> bytes:
    msh = f"MSH|^~\\&|ADT|MERCY_GEN|CONDUIT|HIE|20240601120000-0500||{msh9}|C1|P|2.5"
    return "\r".join([msh, pid, ""]).encode()


# ---- fixtures ---------------------------------------------------------------------------


def _check_output(patient: dict) -> None:
    checks.check_resource(patient)
    assert patient["resourceType"] == "Patient"
    assert not ({"deceasedBoolean", "deceasedDateTime"} <= set(patient))


class TestFixtures(checks.fixture_tests(FIXTURES, min_outputs=4, output=_check_output)):
    @pytest.fixture
    def mapping(self, summary: Mapping) -> Mapping:
        return summary

    def test_every_fixture_has_exactly_one_expected_file(self) -> None:
        super().test_every_fixture_has_exactly_one_expected_file()
        kinds = {p.suffix for p in FIXTURES.folder.iterdir()}
        assert {".json", ".skip", ".error"} <= kinds


# ---- agreement with the Python ADT mapping ---------------------------------------------

# What the summary deliberately does differently (see the comment at the top of v1.yaml).
_OWN_CHOICES = ("id", "telecom", "maritalStatus")


@pytest.mark.parametrize("case", FIXTURES.output_cases)
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
    raw = adt_message(PHI_PID.format(pid3=pid3, dob=dob, sex=sex))
    checks.check_error(summary, raw, field, values=(*PHI, dob))


def test_missing_pid_segment_fails_naming_pid3(summary: Mapping) -> None:
    checks.check_error(summary, adt_message("PD1|||CLINIC"), "PID-3")
