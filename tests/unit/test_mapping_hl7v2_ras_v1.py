"""hl7v2-ras-to-fhir@1: every fixture a valid R4 transaction; what was given, when, by
whom and how, under the order the RDE feed made; whether it was given at all; and
leniency."""

from __future__ import annotations

import re

import pytest

from engine.errors import MappingError
from engine.mapping import Mapping
from engine.mapping_base import Skip
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, of_type, only, resolve, segment, warnings_of

FIXTURES = checks.Fixtures("hl7v2-ras-to-fhir@1")
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

ras = checks.mapping_fixture(FIXTURES.ref)

PID = "PID|1||MG001234^^^MERCY^MR||ROWE^TAMSIN^^^^^L||19900101|F"
ORC = "ORC|RE|ORD-1^EHR|RX-1^PHARM||CM"
RXE = segment("RXE", {2: "197361^amLODIPine 5 MG Oral Tablet^RXNORM", 3: "5",
                      5: "mg^milligram^UCUM", 15: "RX-1"})
BASE_RXA = {1: "1", 2: "1", 3: "20240601090000-0500",
            5: "197361^amLODIPine 5 MG Oral Tablet^RXNORM", 6: "5", 7: "mg^milligram^UCUM",
            10: "RN1^ABARA^NKEM^^^^RN", 20: "CP"}


def message(*segments: str, message_type: str = "RAS^O17^RAS_O17",
            pid: str | None = PID) -> bytes:
    msh = ("MSH|^~\\&|MAR|MERCY_GEN|EHR|MERCY_GEN|20240601120000-0500||"
           f"{message_type}|CTRL0001|P|2.5.1")
    return ("\r".join([msh, *([pid] if pid else []), *segments]) + "\r").encode()


def rxa(**fields: str) -> str:
    values = dict(BASE_RXA)
    values.update({int(k.removeprefix("rxa")): v for k, v in fields.items()})
    return segment("RXA", {k: v for k, v in values.items() if v})


def given(raw: bytes, mapping: Mapping) -> dict:
    return only(bundle_of(mapping, raw), "MedicationAdministration")


# ---- fixtures ---------------------------------------------------------------------------


TestFixtures = checks.fixture_tests(
    FIXTURES, min_cases=7, min_outputs=5,
    output=checks.transaction_holding("Patient", "MedicationAdministration"))


def test_fixtures_cover_versions_vendors_and_messy_styles() -> None:
    raw = {case: FIXTURES.input(case) for case in FIXTURES.cases}
    for version in (b"2.3", b"2.4", b"2.5", b"2.5.1", b"2.8"):
        assert any(re.search(rb"\|" + re.escape(version) + rb"[|\r\n]", r)
                   for r in raw.values()), version
    assert any(b"\n" in r and b"\r" not in r for r in raw.values()), "a \\n-only fixture"
    assert any(b"RAS^O01" in r for r in raw.values()), "v2.3's event"


# ---- identity ---------------------------------------------------------------------------


def test_the_request_is_the_rde_feeds(ras: Mapping) -> None:
    bundle = bundle_of(ras, message(ORC, RXE, rxa()))
    ordered = bundle_of(checks.mapping("hl7v2-rde-to-fhir@2"), message(
        "ORC|NW|ORD-1^EHR|RX-1^PHARM", RXE, message_type="RDE^O11^RDE_O11"))
    request = only(ordered, "MedicationRequest")
    assert only(bundle, "MedicationAdministration")["request"] == {
        "reference": f"urn:uuid:{request['id']}"}
    assert only(bundle, "MedicationRequest")["id"] == request["id"]


def test_a_resend_or_update_changes_one_resource_and_the_next_dose_is_new(
        ras: Mapping) -> None:
    first = given(message(ORC, RXE, rxa()), ras)
    updated = given(message(ORC, RXE, rxa(rxa6="2.5", rxa21="U")), ras)
    next_dose = given(message(ORC, RXE, rxa(rxa2="2", rxa3="20240601210000-0500")), ras)
    assert first["id"] == updated["id"] != next_dose["id"]
    assert updated["dosage"]["dose"]["value"] == 2.5


def test_patient_id_is_the_one_the_adt_feed_makes(ras: Mapping) -> None:
    patient = only(bundle_of(ras, message(ORC, RXE, rxa())), "Patient")
    msh = "MSH|^~\\&|ADT|MERCY_GEN|HIE|HIE|20240601120000-0500||ADT^A08|A1|P|2.5.1"
    adt = "\r".join([msh, "EVN|A08", PID, "PV1|1|O"]).encode() + b"\r"
    checks.check_same_patient(patient, adt)


# ---- the facts of an administration -----------------------------------------------------


def test_an_infusion_given_at_a_rate(ras: Mapping) -> None:
    bundle = bundle_of(ras, FIXTURES.input("epic_mar_v251_o17_iv_rate"))
    administration = only(bundle, "MedicationAdministration")
    drug = resolve(bundle, administration["medicationReference"])
    assert (drug["code"]["coding"][0]["system"], drug["code"]["coding"][0]["code"]) == (
        RXNORM, "313002")
    assert drug["batch"] == {"lotNumber": "LX77120"}
    assert resolve(bundle, drug["manufacturer"])["name"] == "Baxter Healthcare"
    assert administration["effectivePeriod"] == {"start": "2025-03-12T08:30:00-05:00",
                                                 "end": "2025-03-12T09:30:00-05:00"}
    nurse = resolve(bundle, administration["performer"][0]["actor"])
    assert nurse["name"][0]["family"] == "TILLMAN"
    dosage = administration["dosage"]
    assert "dose" not in dosage
    assert dosage["rateRatio"]["numerator"]["code"] == "mL"
    assert dosage["rateRatio"]["numerator"]["value"] == 100
    assert dosage["rateRatio"]["denominator"] == {
        "value": 1, "unit": "h", "system": "http://unitsofmeasure.org", "code": "h"}
    assert [dosage[k]["coding"][0]["code"] for k in ("route", "site", "method")] == [
        "IV", "LA", "IVP"]
    assert administration["reasonCode"][0]["coding"][0]["code"] == "R50.9"
    heart_rate = only(bundle, "Observation")
    assert heart_rate["partOf"] == [{"reference": f"urn:uuid:{administration['id']}"}]
    assert administration["supportingInformation"] == [
        {"reference": f"urn:uuid:{heart_rate['id']}"}]
    assert administration["context"] == {
        "reference": f"urn:uuid:{only(bundle, 'Encounter')['id']}"}


def test_two_doses_share_the_route_sent_once_after_them(ras: Mapping) -> None:
    bundle = bundle_of(ras, FIXTURES.input("cerner_v24_o17_two_doses_one_rxr"))
    doses = of_type(bundle, "MedicationAdministration")
    assert [d["effectiveDateTime"] for d in doses] == ["2024-11-05T06:05:00-06:00",
                                                       "2024-11-05T18:02:00-06:00"]
    assert all(d["dosage"]["route"]["coding"][0]["code"] == "IV" for d in doses)
    assert [resolve(bundle, d["performer"][0]["actor"])["name"][0]["family"]
            for d in doses] == ["ABERNATHY", "VELASQUEZ"]
    assert doses[0]["note"] == [{"text": "Given via IV piggyback"}]
    assert doses[0]["medicationReference"] == doses[1]["medicationReference"]
    assert resolve(bundle, doses[0]["medicationReference"])["batch"] == {
        "lotNumber": "C4411A", "expirationDate": "2026-03-31"}


def test_a_refused_dose_is_not_done_with_its_reason(ras: Mapping) -> None:
    bundle = bundle_of(ras, FIXTURES.input("meditech_v23_o01_refused"))
    administration = only(bundle, "MedicationAdministration")
    assert administration["status"] == "not-done"
    assert administration["statusReason"][0]["coding"][0]["display"] == "Patient refused"
    assert administration["note"] == [
        {"text": "Patient states he feels dizzy; provider notified."}]
    placed = only(bundle, "MedicationRequest")  # a v2.3 order placed as RXO only
    assert administration["request"] == {"reference": f"urn:uuid:{placed['id']}"}


@pytest.mark.parametrize("completion, action, status", [
    ("CP", "A", "completed"), ("", "", "completed"), ("RE", "", "not-done"),
    ("NA", "", "not-done"), ("PA", "", "stopped"), ("CP", "D", "entered-in-error")])
def test_status_from_completion_status_and_action_code(ras: Mapping, completion: str,
                                                       action: str, status: str) -> None:
    administration = given(message(ORC, RXE, rxa(rxa20=completion, rxa21=action,
                                                 rxa18="PR^Patient refused^L")), ras)
    assert administration["status"] == status
    assert ("statusReason" in administration) == (status == "not-done")


def test_the_same_time_twice_is_a_moment_not_a_period(ras: Mapping) -> None:
    administration = given(message(ORC, RXE, rxa(rxa4=BASE_RXA[3])), ras)
    assert administration["effectiveDateTime"] == "2024-06-01T09:00:00-05:00"
    assert "effectivePeriod" not in administration


def test_without_an_order_segment_the_dose_still_maps(ras: Mapping) -> None:
    bundle = bundle_of(ras, message(ORC, rxa()))
    assert not of_type(bundle, "MedicationRequest")
    assert "request" not in only(bundle, "MedicationAdministration")


# ---- leniency ---------------------------------------------------------------------------


def test_a_bad_amount_costs_only_the_dose(ras: Mapping) -> None:
    raw = message(ORC, RXE, rxa(rxa6="five"))
    administration = given(raw, ras)
    assert "dosage" not in administration and administration["status"] == "completed"
    assert warnings_of(ras, raw) == ["RXA-6: is not a number"]


def test_an_unknown_completion_status_is_unknown_with_a_warning(ras: Mapping) -> None:
    raw = message(ORC, RXE, rxa(rxa20="ZZ"))
    assert given(raw, ras)["status"] == "unknown"
    assert warnings_of(ras, raw) == [
        "RXA-20: is not a code from HL7 table 0322 (CP, RE, NA, PA); the status is unknown"]


def test_an_rxa_without_drug_or_time_is_named_and_the_others_map(ras: Mapping) -> None:
    raw = message(ORC, RXE, rxa(), rxa(rxa2="2", rxa5=""), rxa(rxa2="3", rxa3=""))
    assert len(of_type(bundle_of(ras, raw), "MedicationAdministration")) == 1
    assert warnings_of(ras, raw) == [
        "RXA[2]-5: is empty: the administration names no medication",
        "RXA[3]-3: has no readable time (nor has RXA-4): the administration is left out"]


def test_warnings_hold_no_values_from_the_message(ras: Mapping) -> None:
    warnings = " ".join(warnings_of(ras, FIXTURES.input("messy_odd_fields_v25")))
    for value in ("one", "X9", "ZZ", "diphenhydrAMINE", "HOLLOWAY"):
        assert value not in warnings.split(), value


def test_only_a_message_without_a_pid_fails(ras: Mapping) -> None:
    with pytest.raises(MappingError) as caught:
        checks.run(ras, message(ORC, rxa(), pid=None))
    assert caught.value.field == "PID-3"


def test_other_events_are_skipped_and_other_types_fail(ras: Mapping) -> None:
    assert isinstance(checks.run(ras, message(message_type="RAS^O99")), Skip)
    with pytest.raises(MappingError) as caught:
        checks.run(ras, message(message_type="RDS^O13"))
    assert caught.value.field == "MSH-9"


def test_every_resource_type_written_is_declared_for_the_coverage_table() -> None:
    from engine.maplib.v2_to_fhir import ras as builder

    written = FIXTURES.written_types()
    assert written <= set(builder.RESOURCES), written - set(builder.RESOURCES)
