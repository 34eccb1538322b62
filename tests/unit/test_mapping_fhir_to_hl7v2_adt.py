"""fhir-to-hl7v2-adt@1: every fixture (compared parsed, field by field), determinism, valid
inputs, required MSH fields, the A28/A31 rule, and the round trip through
hl7v2-adt-to-fhir@1 for every v1 ADT fixture."""

from __future__ import annotations

import copy
import json

import pytest

from engine.formats.hl7v2 import Hl7v2Codec
from engine.mapping import Mapping
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, message_of, run

FIXTURES = checks.Fixtures("fhir-to-hl7v2-adt@1", input_ext=".json", output_ext=".hl7")
ADT_V1 = checks.Fixtures("hl7v2-adt-to-fhir@1")
ADT_V2 = checks.Fixtures("hl7v2-adt-to-fhir@2")
INVALID_ON_PURPOSE = {"patient_invalid_birth_date_error"}  # fhir.resources rejects it too
ROUND_TRIP_CASES = ADT_V1.output_cases
ROUND_TRIP_FIELDS = ("identifier", "name", "birthDate", "gender", "address", "telecom",
                     "deceasedBoolean", "deceasedDateTime")
HL7 = "x-application/hl7-v2+er7"

to_adt = checks.mapping_fixture(FIXTURES.ref, accepts="fhir", emits=HL7)


def patient(**fields: object) -> dict:
    base: dict = {
        "resourceType": "Patient", "id": "p-1",
        "meta": {"lastUpdated": "2024-06-10T16:15:00Z"},
        "identifier": [{"system": "urn:conduit:id:MERCY", "value": "MG001234"}],
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


# ---- fixtures ---------------------------------------------------------------------------


TestFixtures = checks.fixture_tests(FIXTURES, min_outputs=6, invalid_inputs=INVALID_ON_PURPOSE)


@pytest.mark.parametrize("case", FIXTURES.output_cases)
def test_output_parses_and_carries_the_required_msh_fields(to_adt: Mapping, case: str) -> None:
    out = run(to_adt, FIXTURES.input(case))
    assert isinstance(out, bytes)
    parsed = Hl7v2Codec().parse(out)  # as a receiving channel would read it
    message = parsed.body
    assert out.count(b"\r") == len(message.segments) and b"\n" not in out
    assert [s.name for s in message.segments] == ["MSH", "EVN", "PID", "PV1"]
    assert message.value("MSH-3") == "CONDUIT"
    assert message.value("MSH-7") and message.value("MSH-11") == "P"
    assert message.version == "2.5.1"
    assert parsed.message_type in ("ADT^A28", "ADT^A31")
    assert message.value("MSH-9.3") == "ADT_A05"
    assert 0 < len(message.control_id) <= 20
    assert message.value("EVN-1") == message.value("MSH-9.2")
    assert message.value("EVN-2") == message.value("MSH-7")
    assert message.value("PID-3")
    assert (message.value("PV1-1"), message.value("PV1-2")) == ("1", "N")


# ---- round trip -------------------------------------------------------------------------


@pytest.mark.parametrize("case", ROUND_TRIP_CASES)
def test_round_trip_through_hl7v2_adt_to_fhir_v1(to_adt: Mapping, case: str) -> None:
    bundle = json.loads((ADT_V1.folder / f"{case}.json").read_text(encoding="utf-8"))
    original = bundle["entry"][0]["resource"]
    sent = {**original, "meta": {"versionId": "3", "lastUpdated": "2024-06-01T12:00:00-05:00"}}
    message = run(to_adt, sent)
    assert isinstance(message, bytes)
    again = checks.adt_bundle(message)["entry"][0]["resource"]
    for field in ROUND_TRIP_FIELDS:
        assert again.get(field) == original.get(field), f"{case}: {field} changed"


def test_race_and_ethnicity_round_trip_through_v2(to_adt: Mapping) -> None:
    v2 = checks.mapping(ADT_V2.ref)
    original = bundle_of(v2, ADT_V2.input("epic_a01_clinical"))["entry"][0]["resource"]
    sent = {**original, "meta": {"lastUpdated": "2024-07-04T09:15:12-05:00"}}
    message = run(to_adt, sent)
    assert isinstance(message, bytes)
    again = bundle_of(v2, message)["entry"][0]["resource"]
    assert again["extension"] == original["extension"]


# ---- what goes where --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "event"),
    [({}, "A28"), ({"versionId": "1"}, "A28"), ({"versionId": "2"}, "A31"),
     ({"versionId": "W/\"17\""}, "A31")],
)
def test_first_version_is_a28_later_ones_a31(to_adt: Mapping, meta: dict, event: str) -> None:
    resource = patient(meta={**meta, "lastUpdated": "2024-06-10T16:15:00Z"})
    message = message_of(to_adt, resource)
    assert message.value("MSH-9") == "ADT" and message.value("MSH-9.2") == event


def test_control_id_changes_with_the_version_only(to_adt: Mapping) -> None:
    def control(meta: dict) -> str:
        return message_of(to_adt, patient(meta=meta)).control_id

    v2 = {"versionId": "2", "lastUpdated": "2024-06-10T16:15:00Z"}
    v3 = {"versionId": "3", "lastUpdated": "2024-06-11T08:00:00Z"}
    assert control(v2) == control(dict(v2)) != control(v3)
    assert control(v2) != control({**v2, "lastUpdated": "2024-06-10T16:16:00Z"})


def test_message_time_keeps_the_zone(to_adt: Mapping) -> None:
    assert message_of(to_adt, patient()).value("MSH-7") == "20240610161500+0000"
    local = patient(meta={"lastUpdated": "2024-06-10T11:15:00.123-05:00"})
    assert message_of(to_adt, local).value("MSH-7") == "20240610111500.123-0500"


def test_bundle_timestamp_stands_in_for_last_updated(to_adt: Mapping) -> None:
    bundle = {"resourceType": "Bundle", "type": "collection", "timestamp": "2024-01-02T03:04:05Z",
              "entry": [{"resource": patient(meta=None)}]}
    assert message_of(to_adt, bundle).value("MSH-7") == "20240102030405+0000"


def test_msh4_comes_from_meta_source(to_adt: Mapping) -> None:
    uri = patient(meta={"lastUpdated": "2024-06-10T16:15:00Z",
                        "source": "http://ehr.example.org/fhir#request-55"})
    message = message_of(to_adt, uri)
    assert [message.value(f"MSH-4.{i}") for i in (1, 2, 3)] == [
        "", "http://ehr.example.org/fhir", "URI"]
    named = patient(meta={"lastUpdated": "2024-06-10T16:15:00Z", "source": "MPI_EAST"})
    assert message_of(to_adt, named).value("MSH-4") == "MPI_EAST"


V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


@pytest.mark.parametrize(
    ("identifier", "cx"),
    [
        ({"system": "urn:oid:2.16.840.1.113883.4.1", "value": "1"},
         ("1", "", "2.16.840.1.113883.4.1", "ISO", "")),
        ({"system": "urn:conduit:id:ST%20MARY", "value": "2"}, ("2", "ST MARY", "", "", "")),
        ({"system": "http://hl7.org/fhir/sid/us-ssn", "value": "3"}, ("3", "SSA", "", "", "SS")),
        ({"system": "https://mpi.example.org/id", "value": "4"},
         ("4", "", "https://mpi.example.org/id", "URI", "")),
        ({"value": "5", "type": {"coding": [{"system": V2_0203, "code": "PI"}]}},
         ("5", "", "", "", "PI")),
    ],
)
def test_identifier_systems_become_assigning_authorities(
    to_adt: Mapping, identifier: dict, cx: tuple[str, ...]
) -> None:
    message = message_of(to_adt, patient(identifier=[identifier]))
    found = (message.value("PID-3.1"), message.value("PID-3.4.1"), message.value("PID-3.4.2"),
             message.value("PID-3.4.3"), message.value("PID-3.5"))
    assert found == cx


def test_values_with_delimiters_arrive_as_text(to_adt: Mapping) -> None:
    name = {"family": "O'BRIEN|MCKAY", "given": ["ANNE^MARIE", "JO~JO"], "prefix": ["DR & MRS"]}
    address = {"line": ["C\\O MARINA | SLIP 9"], "city": "BOSTON"}
    message = message_of(to_adt, patient(name=[name], address=[address]))
    assert [message.value(f"PID-5.{i}") for i in (1, 2, 3, 5)] == [
        "O'BRIEN|MCKAY", "ANNE^MARIE", "JO~JO", "DR & MRS"]
    assert message.value("PID-11.1") == "C\\O MARINA | SLIP 9"


def test_a_name_sent_only_as_text_reaches_pid_5(to_adt: Mapping) -> None:
    """Apps send {"text": "Jane Q Public"} without parts: the ADT must not go out with an
    empty PID-5. The text goes whole into the family name, not split by a guess (and
    only when no name has parts: beside them a text is their display)."""
    message = message_of(to_adt, patient(name=[{"use": "official", "text": "Jane Q Public"},
                                               {"use": "nickname"}]))
    assert [rep.value(1) for rep in message.segment("PID").repetitions(5)] == [
        "Jane Q Public"]
    assert message.value("PID-5.2") == "" and message.value("PID-5.7") == "L"


def test_charset_is_declared_only_when_needed(to_adt: Mapping) -> None:
    assert message_of(to_adt, patient()).value("MSH-18") == ""
    accented = patient(name=[{"family": "PEÑA", "given": ["JOSÉ"]}])
    out = run(to_adt, accented)
    assert isinstance(out, bytes)
    body = Hl7v2Codec().parse(out).body
    assert body.value("MSH-18") == "UNICODE UTF-8"
    assert body.value("PID-5") == "PEÑA"


def test_only_the_first_patient_of_a_bundle_is_sent(to_adt: Mapping) -> None:
    first = patient(identifier=[{"system": "urn:conduit:id:A", "value": "FIRST"}])
    second = patient(identifier=[{"system": "urn:conduit:id:A", "value": "SECOND"}])
    bundle = {"resourceType": "Bundle", "type": "batch",
              "entry": [{"resource": first}, {"resource": second}]}
    assert message_of(to_adt, bundle).value("PID-3") == "FIRST"


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"gender": "femme"}, "Patient.gender"),
        ({"birthDate": "19900101"}, "Patient.birthDate"),
        ({"deceasedDateTime": "2024-01-05T22:40"}, "Patient.deceasedDateTime"),
        ({"meta": {"lastUpdated": "yesterday"}}, "Patient.meta.lastUpdated"),
        ({"identifier": [{"system": "urn:conduit:id:A"}]}, "Patient.identifier"),
    ],
)
def test_bad_values_fail_naming_the_fhir_path(to_adt: Mapping, fields: dict, path: str) -> None:
    resource = patient(name=[{"family": "QUARTERMAINE"}], **fields)
    phi = ("QUARTERMAINE", "MG001234", *map(str, fields.values()))
    checks.check_error(to_adt, resource, path, phi=phi)


def test_a_bundled_patients_errors_name_its_entry(to_adt: Mapping) -> None:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Organization", "name": "X"}},
        {"resource": patient(gender="F")},
    ]}
    checks.check_error(to_adt, bundle, "Bundle.entry[1].resource.gender")


def test_input_is_not_changed(to_adt: Mapping) -> None:
    resource = json.loads(FIXTURES.input("patient_update_many_identifiers_a31"))
    before = copy.deepcopy(resource)
    to_adt.func(resource)
    assert resource == before
