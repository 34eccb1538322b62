"""hl7v2-vxu-to-fhir@2: every fixture a valid R4 transaction, the facts of a dose where
the reference converter puts them, v1's ids, and one odd field costing only that field."""

from __future__ import annotations

import pytest

from engine.errors import MappingError
from engine.mapping import Mapping
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, mapped, of_type, only, resolve, segment, warnings_of

FIXTURES = checks.Fixtures("hl7v2-vxu-to-fhir@2")
V1 = checks.Fixtures("hl7v2-vxu-to-fhir@1")

CVX = "http://hl7.org/fhir/sid/cvx"
NDC = "http://hl7.org/fhir/sid/ndc"
MVX = "http://hl7.org/fhir/sid/mvx"
V2_0443 = "http://terminology.hl7.org/CodeSystem/v2-0443"

vxu = checks.mapping_fixture(FIXTURES.ref)

PID = "PID|1||MG001234^^^MERCY^MR||ROWE^TAMSIN^^^^^L||19900101|F|||12 ELM ST^^SALEM^MA^01970"
BASE_RXA = {1: "0", 2: "1", 3: "20240601103000", 5: "141^Influenza, seasonal, injectable^CVX",
            6: "0.5", 7: "mL^milliliters^UCUM", 9: "00^New immunization record^NIP001",
            15: "FL2291", 16: "20250630", 17: "SKB^GlaxoSmithKline^MVX", 20: "CP", 21: "A"}


def message(*segments: str, msh7: str = "20240601120000-0500",
            message_type: str = "VXU^V04^VXU_V04", pid: str | None = PID) -> bytes:
    msh = f"MSH|^~\\&|EHR|MERCY_GEN|IIS|STATE|{msh7}||{message_type}|CTRL0001|P|2.5.1"
    lines = [msh, *([pid] if pid else []), *segments]
    return ("\r".join(lines) + "\r").encode()


def dose(orc: str | None = "ORC|RE|P-1^EHR|IMM-1^EHR", **fields: str) -> list[str]:
    """An ORC + RXA group; RXA fields by name rxa<N> (an empty string clears one)."""
    rxa = dict(BASE_RXA)
    rxa.update({int(k.removeprefix("rxa")): v for k, v in fields.items()})
    return [*([orc] if orc else []), segment("RXA", {k: v for k, v in rxa.items()})]


# ---- fixtures ---------------------------------------------------------------------------


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=18, min_outputs=15,
                                    output=checks.transaction_holding("Patient"))


def test_fixtures_cover_versions_and_messy_styles() -> None:
    raw = {case: FIXTURES.input(case) for case in FIXTURES.cases}
    for version in (b"|2.3.1", b"|2.4", b"|2.5.1", b"|2.8"):
        assert any(version + b"|" in r or version + b"\r" in r for r in raw.values()), version
    assert any(b"\n" in r and b"\r" not in r for r in raw.values()), "a \\n-only fixture"
    assert any(b"\rZ" in r for r in raw.values()), "a Z-segment"
    assert any(b"\r\n" in r for r in raw.values()), "a \\r\\n fixture"
    assert any(b"\\T\\" in r for r in raw.values()), "an escape sequence"
    assert sum(c.endswith("warns") or c.startswith("messy") for c in raw) >= 3


# ---- identity ---------------------------------------------------------------------------


def test_patient_id_is_the_one_the_adt_feed_makes(vxu: Mapping) -> None:
    patient = only(bundle_of(vxu, message(*dose())), "Patient")
    msh = "MSH|^~\\&|ADT|MERCY_GEN|HIE|HIE|20240601120000-0500||ADT^A08|A1|P|2.5.1"
    adt = "\r".join([msh, "EVN|A08", PID, "PV1|1|O"]).encode() + b"\r"
    checks.check_same_patient(patient, adt)


@pytest.mark.parametrize("case", [c for c in V1.output_cases])
def test_immunization_ids_are_v1s_for_the_same_doses(vxu: Mapping, case: str) -> None:
    raw = V1.input(case)
    old = bundle_of(checks.mapping(V1.ref), raw)
    new = bundle_of(vxu, raw)
    for kind in ("Patient", "Immunization"):
        assert [r["id"] for r in of_type(new, kind)] == [r["id"] for r in of_type(old, kind)]


def test_two_doses_with_the_same_obx_sub_ids_keep_their_own_observations(vxu: Mapping
                                                                       ) -> None:
    obx = "OBX|1|CE|64994-7^Eligibility^LN|1|V02^Medicaid^HL70064||||||F|||20240601"
    raw = message(*dose(), obx, *dose(orc="ORC|RE||IMM-2^EHR", rxa5="08^HepB^CVX"), obx)
    bundle = bundle_of(vxu, raw)
    observations = of_type(bundle, "Observation")
    assert len(observations) == 2
    doses = {o["partOf"][0]["reference"] for o in observations}
    assert doses == {f"urn:uuid:{i['id']}" for i in of_type(bundle, "Immunization")}


# ---- the facts of a dose ----------------------------------------------------------------


def test_epic_fixture_facts_land_where_the_reference_puts_them(vxu: Mapping) -> None:
    bundle = bundle_of(vxu, FIXTURES.input("cdc_ig_v251_r15_epic_full"))
    imm = only(bundle, "Immunization")
    assert imm["vaccineCode"]["coding"][0] == {"system": CVX, "code": "10", "display": "IPV"}
    assert imm["occurrenceDateTime"] == "2024-03-12T09:45:00-07:00"
    assert imm["primarySource"] is True
    assert (imm["lotNumber"], imm["expirationDate"]) == ("J4421KX", "2025-06-30")
    assert imm["doseQuantity"]["value"] == 0.5 and imm["doseQuantity"]["code"] == "mL"
    maker = resolve(bundle, imm["manufacturer"])
    assert maker["resourceType"] == "Organization"
    assert maker["identifier"] == [{"system": MVX, "value": "PMC"}]
    roles = {p["function"]["coding"][0]["code"]: resolve(bundle, p["actor"])
             for p in imm["performer"]}
    assert roles["AP"]["name"][0]["family"] == "JACKSON"
    assert roles["OP"]["identifier"][0]["value"] == "1982745510"
    assert resolve(bundle, imm["location"])["name"] == "HVPEDS"
    assert imm["site"]["coding"][0]["code"] == "RT"
    assert imm["programEligibility"][0]["coding"][0]["code"] == "V02"
    assert imm["fundingSource"]["coding"][0]["code"] == "VXC50"
    assert imm["education"] == [{"documentType": "Polio VIS", "presentationDate": "2024-03-12"}]
    assert only(bundle, "RelatedPerson")["name"][0]["family"] == "OKONKWO-BELL"
    assert len(of_type(bundle, "Observation")) == 4


def test_ndc_and_cvx_triplets_both_code_the_vaccine(vxu: Mapping) -> None:
    imm = only(bundle_of(vxu, FIXTURES.input("ndc_coded_flu_v251_cerner")), "Immunization")
    codings = {(c["system"], c["code"]) for c in imm["vaccineCode"]["coding"]}
    assert codings == {(NDC, "49281-0124-10"), (CVX, "197")}


def test_historical_doses_are_not_primary_and_say_their_origin(vxu: Mapping) -> None:
    bundle = bundle_of(vxu, FIXTURES.input("historical_doses_from_parent_record"))
    first, second = of_type(bundle, "Immunization")
    assert first["primarySource"] is False and second["primarySource"] is False
    origins = {c["code"] for c in first["reportOrigin"]["coding"]}
    assert {"03", "record"} <= origins
    assert "doseQuantity" not in first  # 999 is "amount unknown"
    assert first["id"] != second["id"]  # the 9999 placeholder is not an order number


def test_refusals_are_not_done_with_their_reason(vxu: Mapping) -> None:
    bundle = bundle_of(vxu, FIXTURES.input("refusal_parental_decision"))
    reasons = [i["statusReason"]["coding"][0]["code"] for i in of_type(bundle, "Immunization")]
    assert [i["status"] for i in of_type(bundle, "Immunization")] == ["not-done", "not-done"]
    assert reasons == ["00", "01"]


def test_reaction_and_dose_number(vxu: Mapping) -> None:
    bundle = bundle_of(vxu, FIXTURES.input("reaction_and_dose_number_v251"))
    imm = only(bundle, "Immunization")
    assert imm["protocolApplied"] == [{"doseNumberPositiveInt": 2}]
    reaction = resolve(bundle, imm["reaction"][0]["detail"])
    assert reaction["valueCodeableConcept"]["coding"][0]["code"] == "39579001"
    assert imm["reaction"][0]["date"] == reaction["effectiveDateTime"]
    assert imm["reasonCode"][0]["coding"][0]["code"] == "Z23"


def test_a_forecast_is_an_immunization_recommendation_not_a_dose(vxu: Mapping) -> None:
    bundle = bundle_of(vxu, FIXTURES.input("forecast_recommendation_v251"))
    assert not of_type(bundle, "Immunization")
    rec = only(bundle, "ImmunizationRecommendation")
    vaccines = [r["vaccineCode"][0]["coding"][0]["code"] for r in rec["recommendation"]]
    assert vaccines == ["20", "133"]
    due = {c["code"]["coding"][0]["code"]: c["value"]
           for c in rec["recommendation"][0]["dateCriterion"]}
    assert due == {"30980-7": "2024-09-01", "30981-5": "2024-08-15", "59777-3": "2025-01-01"}
    assert rec["recommendation"][0]["forecastStatus"]["coding"][0]["display"] == "Overdue"


def test_v231_registry_without_orc_takes_vfc_eligibility_from_pv1(vxu: Mapping) -> None:
    bundle = bundle_of(vxu, FIXTURES.input("registry_v231_no_orc_pv1_vfc"))
    given, = [i for i in of_type(bundle, "Immunization") if i.get("primarySource")]
    assert given["programEligibility"][0]["coding"][0]["code"] == "V02"


def test_rxa27_is_the_location_in_v28(vxu: Mapping) -> None:
    bundle = bundle_of(vxu, FIXTURES.input("v28_rxa27_administered_at"))
    imm = only(bundle, "Immunization")
    assert resolve(bundle, imm["location"])["name"] == "IMMCLINIC / 02"
    assert imm["encounter"] == {"reference": f"urn:uuid:{only(bundle, 'Encounter')['id']}"}


def test_delete_is_entered_in_error(vxu: Mapping) -> None:
    bundle = bundle_of(vxu, FIXTURES.input("deleted_dose_rxa21_d"))
    assert only(bundle, "Immunization")["status"] == "entered-in-error"


# ---- leniency ---------------------------------------------------------------------------


def test_a_bad_expiry_date_costs_only_that_date(vxu: Mapping) -> None:
    raw = message(*dose(rxa16="20251345"))
    imm = only(bundle_of(vxu, raw), "Immunization")
    assert "expirationDate" not in imm and imm["lotNumber"] == "FL2291"
    assert warnings_of(vxu, raw) == ["RXA-16: holds a date/time that does not exist"]


def test_an_unknown_completion_status_warns_and_the_dose_maps(vxu: Mapping) -> None:
    raw = message(*dose(rxa20="ZZ"))
    assert only(bundle_of(vxu, raw), "Immunization")["status"] == "completed"
    assert warnings_of(vxu, raw) == ["RXA-20: is not a code from HL7 table 0322 (CP, RE, NA, PA)"]


def test_an_unknown_completion_status_with_a_refusal_is_not_done(vxu: Mapping) -> None:
    raw = message(*dose(rxa20="ZZ", rxa18="03^Patient decision^NIP002"))
    assert only(bundle_of(vxu, raw), "Immunization")["status"] == "not-done"


def test_an_empty_vaccine_code_is_unknown_with_a_warning(vxu: Mapping) -> None:
    raw = message(*dose(rxa5=""))
    imm = only(bundle_of(vxu, raw), "Immunization")
    assert imm["vaccineCode"]["extension"][0]["valueCode"] == "unknown"
    assert warnings_of(vxu, raw) == ["RXA-5: is empty; the vaccine is recorded as unknown"]


def test_a_bad_date_in_a_later_dose_names_that_rxa(vxu: Mapping) -> None:
    raw = message(*dose(), *dose(orc="ORC|RE||IMM-2^EHR", rxa3="20240231"))
    bundle = bundle_of(vxu, raw)
    assert len(of_type(bundle, "Immunization")) == 2
    assert warnings_of(vxu, raw) == ["RXA[2]-3: holds a date/time that does not exist"]


def test_a_code_without_a_system_is_cvx_and_a_bad_amount_is_left_out(vxu: Mapping) -> None:
    raw = message(*dose(rxa5="03", rxa6="a little"))
    imm = only(bundle_of(vxu, raw), "Immunization")
    assert imm["vaccineCode"]["coding"][0] == {"system": CVX, "code": "03"}
    assert "doseQuantity" not in imm
    warnings = warnings_of(vxu, raw)
    assert warnings == ["RXA-6: is not a non-negative number"]
    assert not any("a little" in w for w in warnings)


def test_the_same_dose_twice_keeps_one_with_a_warning(vxu: Mapping) -> None:
    raw = message(*dose(), *dose(rxa15="OTHERLOT"))
    imm = only(bundle_of(vxu, raw), "Immunization")
    assert imm["lotNumber"] == "OTHERLOT"
    assert warnings_of(vxu, raw) == [
        "RXA[2]-5: names a dose this message already holds; the later one is kept"]


def test_warnings_hold_no_values_from_the_message(vxu: Mapping) -> None:
    raw = FIXTURES.input("messy_status_amount_unknown_codes")
    warnings = " ".join(warnings_of(vxu, raw))
    for value in ("half", "XX", "2024-04-20", "FAIRWEATHER", "FLU2024", "Q"):
        assert f" {value}" not in warnings and f"{value} " not in warnings, value


def test_left_behind_lists_what_no_rule_read(vxu: Mapping) -> None:
    result = mapped(vxu, FIXTURES.input("messy_status_amount_unknown_codes"))
    assert "ZIM-2" in result.left_behind
    assert not any(f.startswith(("RXA-5", "RXA-15", "RXR-1")) for f in result.left_behind)


def test_only_a_message_without_a_pid_fails(vxu: Mapping) -> None:
    with pytest.raises(MappingError) as caught:
        checks.run(vxu, message(*dose(), pid=None))
    assert caught.value.field == "PID-3"
    only(bundle_of(vxu, message()), "Patient")  # no dose at all still maps the person


def test_other_events_are_skipped_and_other_types_fail(vxu: Mapping) -> None:
    skipped = checks.run(vxu, message(message_type="VXU^V99"))
    assert not isinstance(skipped, bytes)
    with pytest.raises(MappingError) as caught:
        checks.run(vxu, message(message_type="ORM^O01"))
    assert caught.value.field == "MSH-9"


def test_every_resource_type_written_is_declared_for_the_coverage_table() -> None:
    from engine.maplib.v2_to_fhir import vxu as builder

    written = FIXTURES.written_types()
    assert written <= set(builder.RESOURCES), written - set(builder.RESOURCES)


@pytest.mark.parametrize(("value", "applied"), [
    ("2", {"doseNumberPositiveInt": 2}),
    ("0", {"doseNumberString": "0"}),
    ("99999999999", {"doseNumberString": "99999999999"}),  # too large for a positiveInt
])
def test_dose_number_is_a_positive_int_only_when_fhir_can_hold_it(
        vxu: Mapping, value: str, applied: dict) -> None:
    raw = message(*dose(), f"OBX|1|NM|30973-2^Dose number in series^LN|1|{value}||||||F")
    bundle = bundle_of(vxu, raw)
    checks.check_transaction(bundle)
    assert only(bundle, "Immunization")["protocolApplied"] == [applied]


def test_a_forecast_after_a_given_dose_is_a_recommendation_beside_it(vxu: Mapping) -> None:
    raw = message(*dose(), "OBX|1|CE|30979-9^Vaccines due next^LN|1|141^Influenza^CVX||||||F",
                  "OBX|2|TS|30980-7^Date vaccine due^LN|1|20250601||||||F")
    bundle = bundle_of(vxu, raw)
    checks.check_transaction(bundle)
    assert only(bundle, "Immunization")["status"] == "completed"
    rec = only(bundle, "ImmunizationRecommendation")
    assert rec["recommendation"][0]["dateCriterion"][0]["value"] == "2025-06-01"


def test_dose_observations_are_survey_answers_for_us_core(vxu: Mapping) -> None:
    """US Core holds an uncategorised Observation to no profile's satisfaction: the
    eligibility and VIS answers given with a dose are surveys."""
    obx = "OBX|1|CE|64994-7^Eligibility^LN|1|V02^Medicaid^HL70064||||||F|||20240601"
    bundle = bundle_of(vxu, message(*dose(), obx))
    category = only(bundle, "Observation")["category"][0]["coding"][0]
    assert (category["system"], category["code"]) == (
        "http://terminology.hl7.org/CodeSystem/observation-category", "survey")
