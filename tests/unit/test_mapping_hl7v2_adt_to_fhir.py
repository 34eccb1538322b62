"""hl7v2-adt-to-fhir@1: every fixture, valid FHIR, stable ids, and errors without PHI."""

from __future__ import annotations

import pytest

from engine.mapping import Mapping, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, by_type, run

FIXTURES = checks.Fixtures("hl7v2-adt-to-fhir@1")

adt = checks.mapping_fixture(FIXTURES.ref)


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


# ---- fixtures, valid FHIR, deterministic ids -------------------------------------------


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=10, output=checks.check_transaction)


def test_admit_and_discharge_update_the_same_patient_and_encounter(adt: Mapping) -> None:
    admit = by_type(bundle_of(adt, FIXTURES.input("epic_a01_admit")))
    discharge = by_type(bundle_of(adt, FIXTURES.input("epic_a03_discharge")))
    assert admit["Patient"]["id"] == discharge["Patient"]["id"]
    assert admit["Encounter"]["id"] == discharge["Encounter"]["id"]
    assert (admit["Encounter"]["status"], discharge["Encounter"]["status"]) == (
        "in-progress",
        "finished",
    )


def test_patient_id_ignores_event_names_and_other_identifiers(adt: Mapping) -> None:
    first = by_type(bundle_of(adt, adt_message("A04")))["Patient"]
    updated = adt_message(
        "A08",
        pid="PID|1||X-77^^^OTHER^PI~MG001234^^^MERCY^MR||ROWE-HALL^TAMSIN^^^^^L||19900101|F",
    )
    assert by_type(bundle_of(adt, updated))["Patient"]["id"] == first["id"]


def test_another_facility_gets_other_ids(adt: Mapping) -> None:
    here = by_type(bundle_of(adt, adt_message(facility="MERCY_GEN")))
    there = by_type(bundle_of(adt, adt_message(facility="MERCY_NORTH")))
    assert here["Patient"]["id"] != there["Patient"]["id"]
    assert here["Encounter"]["id"] != there["Encounter"]["id"]


def test_another_identifier_gets_another_patient(adt: Mapping) -> None:
    one = by_type(bundle_of(adt, adt_message()))["Patient"]["id"]
    other = adt_message(pid="PID|1||MG001235^^^MERCY^MR||ROWE^TAMSIN^^^^^L||19900101|F")
    assert by_type(bundle_of(adt, other))["Patient"]["id"] != one


def test_sending_application_scopes_ids_when_facility_is_empty(adt: Mapping) -> None:
    raw = adt_message(facility="")
    assert by_type(bundle_of(adt, raw))["Patient"]["id"]
    msh = raw.split(b"\r")[0].split(b"|")
    msh[2] = b""
    checks.check_error(adt, b"|".join(msh) + raw[raw.index(b"\r") :], "MSH-4")


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
    phi = ("EXT-55012", "QUARTERMAINE", "ODALYS", "19770315", "ELM", "SALEM", "MERCY")
    checks.check_error(adt, adt_message(pid=pid), "PID-3", phi=phi)


def test_missing_pid_segment_fails_naming_pid3(adt: Mapping) -> None:
    raw = adt_message(pid="PD1|||CLINIC", pv1=None)
    checks.check_error(adt, raw, "PID-3")


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
    checks.check_error(adt, adt_message(pid=pid), field, values=[value])


def test_bad_admit_time_fails_naming_pv1_44(adt: Mapping) -> None:
    checks.check_error(adt, adt_message(pv1=pv1_with({44: "20241332"})), "PV1-44")


def test_non_adt_message_fails_naming_msh9(adt: Mapping) -> None:
    raw = adt_message().replace(b"ADT^A01", b"ORM^O01")
    checks.check_error(adt, raw, "MSH-9")


# ---- events -----------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["A02", "A05", "A13", "A40"])
def test_unmapped_adt_events_are_skipped_with_a_reason(adt: Mapping, event: str) -> None:
    assert run(adt, adt_message(event)) == Skip(f"ADT^{event} is not mapped by this version")


def test_event_is_read_from_evn_when_msh9_has_none(adt: Mapping) -> None:
    raw = adt_message("A03").replace(b"ADT^A03", b"ADT")
    assert by_type(bundle_of(adt, raw))["Encounter"]["status"] == "finished"


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
    assert by_type(bundle)["Encounter"]["status"] == status


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
    encounter = by_type(bundle_of(adt, adt_message(pv1=pv1_with({2: code}))))["Encounter"]
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
    assert by_type(bundle_of(adt, adt_message(pid=pid)))["Patient"]["gender"] == gender


def test_missing_sex_is_omitted(adt: Mapping) -> None:
    pid = "PID|1||MG1^^^MERCY^MR||ROWE^T||19900101"
    assert "gender" not in by_type(bundle_of(adt, adt_message(pid=pid)))["Patient"]


def test_times_without_zone_take_the_senders_zone_from_msh7(adt: Mapping) -> None:
    pv1 = pv1_with({44: "202406011130", 45: "20240601180000"})
    period = by_type(bundle_of(adt, adt_message(pv1=pv1)))["Encounter"]["period"]
    assert period == {"start": "2024-06-01T11:30:00-05:00", "end": "2024-06-01T18:00:00-05:00"}


def test_times_without_any_zone_keep_only_the_date(adt: Mapping) -> None:
    raw = adt_message(msh7="20240601120000", pv1=pv1_with({44: "202406011130"}))
    assert by_type(bundle_of(adt, raw))["Encounter"]["period"] == {"start": "2024-06-01"}


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
    patient = by_type(bundle_of(adt, adt_message(pid=pid)))["Patient"]
    assert {k: v for k, v in patient.items() if k.startswith("deceased")} == deceased


def test_escaped_delimiters_arrive_as_text(adt: Mapping) -> None:
    bundle = bundle_of(adt, FIXTURES.input("escapes_a08_preadmit"))
    patient = by_type(bundle)["Patient"]
    assert patient["name"][0]["family"] == "O'BRIEN-MCKAY"
    assert patient["address"][0]["line"] == [
        "12 HARBOR ST & 3RD AVE",
        "C\\O MARINA OFFICE | SLIP 9",
    ]
    assert patient["address"][1]["line"] == ["BLDG 2~WING C", "UNIT 4^B REAR ENTRANCE"]


def test_latin1_message_keeps_its_accents(adt: Mapping) -> None:
    bundle = bundle_of(adt, FIXTURES.input("latin1_a01"))
    patient = by_type(bundle)["Patient"]
    assert patient["name"][0]["family"] == "PEÑA IBÁÑEZ"
    assert patient["address"][0]["city"] == "BAYAMÓN"
