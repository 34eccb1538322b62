"""fhir-to-hl7v2-orm@1: every fixture (compared parsed, field by field), determinism, valid
inputs, the ORM_O01 segment order, order control from status, timing and priority, the
requester, specimen and reasons, errors naming FHIR paths, and the round trip of the ORM
fixtures of hl7v2-orm-to-fhir@2."""

from __future__ import annotations

import re
from typing import Any

import pytest

from engine.formats.hl7v2 import Hl7v2Codec
from engine.mapping import Mapping
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, message_of, of_type, run, segment_names
from tests.order_round_trip import check_round_trip

FIXTURES = checks.Fixtures("fhir-to-hl7v2-orm@1", input_ext=".json", output_ext=".hl7")
ORDERS = checks.Fixtures("hl7v2-orm-to-fhir@2")
HL7 = "x-application/hl7-v2+er7"
LOINC = "http://loinc.org"
STRUCTURE = re.compile(r"MSH PID (PV1 )?(ORC OBR (NTE )*(DG1 )*(OBX )*)+\Z")

to_orm = checks.mapping_fixture(FIXTURES.ref, accepts="fhir", emits=HL7)
to_fhir = checks.mapping_fixture(ORDERS.ref)


def order_bundle(*extra: dict, **fields: Any) -> dict:
    """A collection Bundle: an active glucose order of one patient, with `fields`."""
    request = {"resourceType": "ServiceRequest", "id": "o1",
               "meta": {"lastUpdated": "2025-03-01T09:00:00-06:00"},
               "identifier": [{"type": {"coding": [{
                   "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                   "code": "PLAC"}]}, "system": "urn:conduit:id:EPIC", "value": "ORD-1"}],
               "status": "active", "intent": "order",
               "code": {"coding": [{"system": LOINC, "code": "2345-7",
                                    "display": "Glucose"}]},
               "subject": {"reference": "Patient/p1"}, **fields}
    patient = {"resourceType": "Patient", "id": "p1",
               "identifier": [{"system": "urn:conduit:id:LAKESIDE", "value": "LK-5501"}],
               "name": [{"family": "QUILLAN", "given": ["ROSA"]}]}
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in (request, patient, *extra)]}


# ---- fixtures ---------------------------------------------------------------------------


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=8, min_outputs=8)


@pytest.mark.parametrize("case", FIXTURES.output_cases)
def test_output_parses_in_orm_o01_order_with_msh_fields(to_orm: Mapping, case: str) -> None:
    out = run(to_orm, FIXTURES.input(case))
    assert isinstance(out, bytes)
    parsed = Hl7v2Codec().parse(out)
    message = parsed.body
    assert STRUCTURE.match(segment_names(message)), segment_names(message)
    assert parsed.message_type == "ORM^O01" and message.value("MSH-9.3") == "ORM_O01"
    assert message.value("MSH-3") == "CONDUIT" and message.value("MSH-7")
    assert message.value("MSH-11") == "P" and message.version == "2.5.1"
    for n, (orc, obr) in enumerate(zip(message.all("ORC"), message.all("OBR"), strict=True),
                                   start=1):
        assert orc.value(1) and (orc.value(2) or orc.value(3))
        assert obr.value(1) == str(n) and obr.value(2) == orc.value(2) and obr.value(4)


# ---- what a receiver sees -----------------------------------------------------------------


@pytest.mark.parametrize(("status", "version", "control", "order_status"), [
    ("active", None, "NW", ""), ("active", "2", "XO", ""), ("on-hold", None, "HD", ""),
    ("revoked", None, "CA", ""), ("completed", None, "SC", "CM"),
    ("entered-in-error", None, "CA", "CA")])
def test_order_control_follows_status(to_orm: Mapping, status: str, version: str | None,
                                      control: str, order_status: str) -> None:
    meta = {"lastUpdated": "2025-03-01T09:00:00-06:00",
            **({"versionId": version} if version else {})}
    message = message_of(to_orm, order_bundle(status=status, meta=meta))
    assert (message.value("ORC-1"), message.value("ORC-5")) == (control, order_status)


def test_a_cancel_never_shares_the_orders_control_id(to_orm: Mapping) -> None:
    new = message_of(to_orm, order_bundle())
    cancel = message_of(to_orm, order_bundle(status="revoked"))
    assert new.control_id != cancel.control_id


@pytest.mark.parametrize(("priority", "code"), [("stat", "S"), ("asap", "A"),
                                                ("urgent", "A"), ("routine", "R")])
def test_timing_and_priority_in_orc7_and_obr27(to_orm: Mapping, priority: str,
                                               code: str) -> None:
    message = message_of(to_orm, order_bundle(priority=priority,
                                              occurrenceDateTime="2025-03-02T07:30:00-06:00"))
    for field in ("ORC-7", "OBR-27"):
        assert message.value(f"{field}.4") == "20250302073000-0600"
        assert message.value(f"{field}.6") == code


def test_requester_specimen_reasons_and_notes(to_orm: Mapping) -> None:
    role = {"resourceType": "PractitionerRole", "id": "r1",
            "practitioner": {"reference": "Practitioner/d1"}}
    doctor = {"resourceType": "Practitioner", "id": "d1",
              "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi",
                              "value": "1234567893"}],
              "name": [{"family": "OKAFOR", "given": ["CHIDI"], "suffix": ["MD"]}]}
    specimen = {"resourceType": "Specimen", "id": "s1",
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0487",
                                     "code": "SER", "display": "Serum"}]},
                "collection": {"collectedDateTime": "2025-03-01T08:45:00-06:00"}}
    condition = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
                 "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm",
                                      "code": "E11.9"}]}}
    reason = condition["code"]
    message = message_of(to_orm, order_bundle(
        role, doctor, specimen, condition, requester={"reference": "PractitionerRole/r1"},
        specimen=[{"reference": "Specimen/s1"}], reasonCode=[reason],
        reasonReference=[{"reference": "Condition/c1"}], note=[{"text": "Fasting | 8h"}],
        patientInstruction="No food after midnight"))
    for field in ("ORC-12", "OBR-16"):
        assert [message.value(f"{field}.{i}") for i in (1, 2, 3, 7, 13)] == [
            "1234567893", "OKAFOR", "CHIDI", "MD", "NPI"]
    assert message.value("OBR-7") == "20250301084500-0600"
    assert message.value("OBR-15.1") == "SER"
    assert [d.value(3) for d in message.all("DG1")] == ["E11.9"]  # once, not twice
    assert [(n.value(3), n.value(4)) for n in message.all("NTE")] == [
        ("Fasting | 8h", "RE"), ("No food after midnight", "PI")]


def test_every_order_of_a_bundle_is_a_group(to_orm: Mapping) -> None:
    second = {"resourceType": "ServiceRequest", "id": "o2", "status": "active",
              "intent": "order", "code": {"text": "Lipid panel"},
              "subject": {"reference": "Patient/p1"}}
    message = message_of(to_orm, order_bundle(second))
    assert [o.value(2) for o in message.all("ORC")] == ["ORD-1", "o2"]
    assert [o.value(1) for o in message.all("OBR")] == ["1", "2"]


# ---- errors name FHIR paths -----------------------------------------------------------------


def test_errors_name_the_path_and_no_value(to_orm: Mapping) -> None:
    checks.check_error(to_orm, order_bundle(status="draft"), "Bundle.entry[0].resource.status")
    checks.check_error(to_orm, order_bundle(intent="plan"), "Bundle.entry[0].resource.intent")
    checks.check_error(to_orm, order_bundle(subject={"reference": "Patient/zz"}),
                       "Bundle.entry[0].resource.subject", phi=["QUILLAN", "LK-5501"])
    checks.check_error(to_orm, order_bundle(authoredOn="2025-13-01"),
                       "Bundle.entry[0].resource.authoredOn", values=["2025-13-01"])
    checks.check_error(to_orm, order_bundle(specimen=[{"reference": "Specimen/zz"}]),
                       "Bundle.entry[0].resource.specimen[0]")
    checks.check_error(to_orm, {"resourceType": "Observation", "id": "x"}, "resourceType")


# ---- round trip: ORM -> FHIR -> ORM -> FHIR --------------------------------------------------


@pytest.mark.parametrize("case", ORDERS.output_cases)
def test_orm_fixture_round_trips(to_orm: Mapping, to_fhir: Mapping, case: str) -> None:
    check_round_trip(to_fhir, to_orm, ORDERS.input(case))


def test_most_orm_fixtures_round_trip_in_full(to_fhir: Mapping) -> None:
    full = [c for c in ORDERS.output_cases
            if of_type(b := bundle_of(to_fhir, ORDERS.input(c)), "ServiceRequest")
            and "timestamp" in b]
    assert len(full) >= len(ORDERS.output_cases) // 2
