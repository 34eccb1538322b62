"""hl7v2-rde-to-fhir@2: every fixture a valid R4 transaction, the facts of an order where
the reference converter puts them, v1's ids, and one odd field costing only that field."""

from __future__ import annotations

import pytest

from engine.errors import MappingError
from engine.mapping import Mapping
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, of_type, only, resolve, segment, warnings_of

FIXTURES = checks.Fixtures("hl7v2-rde-to-fhir@2")
V1 = checks.Fixtures("hl7v2-rde-to-fhir@1")

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC = "http://hl7.org/fhir/sid/ndc"
UCUM = "http://unitsofmeasure.org"

rde = checks.mapping_fixture(FIXTURES.ref)

PID = "PID|1||MG001234^^^MERCY^MR||ROWE^TAMSIN^^^^^L||19900101|F|||12 ELM ST^^SALEM^MA^01970"
BASE_RXE = {2: "197361^amLODIPine 5 MG Oral Tablet^RXNORM", 3: "5", 5: "mg^milligram^UCUM",
            6: "TAB^Tablet^HL70292", 9: "N", 10: "30", 11: "TAB^Tablet", 12: "2"}


def message(*segments: str, message_type: str = "RDE^O11^RDE_O11",
            pid: str | None = PID) -> bytes:
    msh = ("MSH|^~\\&|EHR|MERCY_GEN|RX|MERCY_GEN|20240601120000-0500||"
           f"{message_type}|CTRL0001|P|2.5.1")
    return ("\r".join([msh, *([pid] if pid else []), *segments]) + "\r").encode()


def order(orc: str = "ORC|NW|ORD-1^EHR|RX-1^PHARM||||||20240601115500-0500|||"
          "1234567890^OKAFOR^CHIDI^^^DR^MD^^NPI", **fields: str) -> list[str]:
    """An ORC + RXE group; RXE fields by name rxe<N> (an empty string clears one)."""
    rxe = dict(BASE_RXE)
    rxe.update({int(k.removeprefix("rxe")): v for k, v in fields.items()})
    return [orc, segment("RXE", rxe)]


def drug_of(bundle: dict, request: dict) -> dict:
    return resolve(bundle, request["medicationReference"])


# ---- fixtures ---------------------------------------------------------------------------


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=16, min_outputs=12,
                                    output=checks.transaction_holding("Patient"))


def test_fixtures_cover_versions_vendors_and_messy_styles() -> None:
    raw = {case: FIXTURES.input(case) for case in FIXTURES.cases}
    for version in (b"|2.3\r", b"|2.4\n", b"|2.5|", b"|2.5.1|", b"|2.6\r", b"|2.8|"):
        assert any(version in r for r in raw.values()), version
    assert any(b"\n" in r and b"\r" not in r for r in raw.values()), "a \\n-only fixture"
    assert any(b"\rZ" in r for r in raw.values()), "a Z-segment"
    assert any(b"RDE^O25" in r for r in raw.values()), "a refill authorization"
    assert sum(b"\rRXC|" in r for r in raw.values()) >= 2, "compounds with RXC"


# ---- identity ---------------------------------------------------------------------------


def test_patient_id_is_the_one_the_adt_feed_makes(rde: Mapping) -> None:
    patient = only(bundle_of(rde, message(*order())), "Patient")
    msh = "MSH|^~\\&|ADT|MERCY_GEN|HIE|HIE|20240601120000-0500||ADT^A08|A1|P|2.5.1"
    adt = "\r".join([msh, "EVN|A08", PID, "PV1|1|O"]).encode() + b"\r"
    checks.check_same_patient(patient, adt)


@pytest.mark.parametrize("case", V1.output_cases)
def test_request_ids_are_v1s_for_the_same_orders(rde: Mapping, case: str) -> None:
    raw = V1.input(case)
    old = bundle_of(checks.mapping(V1.ref), raw)
    new = bundle_of(rde, raw)
    for kind in ("Patient", "MedicationRequest"):
        assert [r["id"] for r in of_type(new, kind)] == [r["id"] for r in of_type(old, kind)]


def test_the_new_and_its_discontinue_update_one_request(rde: Mapping) -> None:
    new = only(bundle_of(rde, message(*order())), "MedicationRequest")
    stop = "ORC|DC|ORD-1^EHR|RX-1^PHARM||DC"
    stopped = only(bundle_of(rde, message(*order(orc=stop))), "MedicationRequest")
    assert new["id"] == stopped["id"]
    assert (new["status"], stopped["status"]) == ("active", "stopped")


def test_the_same_drug_in_two_orders_is_one_medication(rde: Mapping) -> None:
    raw = message(*order(), *order(orc="ORC|NW|ORD-2^EHR"))
    bundle = bundle_of(rde, raw)
    requests = of_type(bundle, "MedicationRequest")
    assert len(requests) == 2 and requests[0]["id"] != requests[1]["id"]
    assert len(of_type(bundle, "Medication")) == 1


# ---- the facts of an order --------------------------------------------------------------


def test_epic_fixture_facts_land_where_the_reference_puts_them(rde: Mapping) -> None:
    bundle = bundle_of(rde, FIXTURES.input("epic_willow_o11_v251_inpatient"))
    request = only(bundle, "MedicationRequest")
    drug = drug_of(bundle, request)
    assert drug["code"]["coding"][0] == {"system": RXNORM, "code": "860975",
                                         "display": "metFORMIN 500 MG Oral Tablet"}
    assert drug["form"]["coding"][0]["code"] == "TAB"
    assert drug["ingredient"][0]["strength"]["numerator"]["value"] == 500
    assert (request["status"], request["intent"]) == ("active", "order")
    assert request["authoredOn"] == "2024-09-14T08:09:00-05:00"
    role = resolve(bundle, request["requester"])  # the prescriber as ordering provider
    assert resolve(bundle, role["practitioner"])["identifier"][0]["value"] == "5566778899"
    assert resolve(bundle, request["recorder"])["name"][0]["family"] == "TRAN"
    assert request["encounter"]["reference"] == f"urn:uuid:{only(bundle, 'Encounter')['id']}"
    values = {i["value"] for i in request["identifier"]}
    assert {"77120044", "RX3300918"} <= values
    dosage = request["dosageInstruction"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"] == {
        "value": 500, "unit": "milligram", "system": UCUM, "code": "mg"}
    assert dosage["timing"]["repeat"]["frequency"] == 2
    assert dosage["timing"]["repeat"]["timeOfDay"] == ["09:00:00", "21:00:00"]
    assert dosage["route"]["coding"][0]["code"] == "PO"
    assert dosage["maxDosePerPeriod"]["numerator"]["value"] == 1000
    assert request["dispenseRequest"]["quantity"]["value"] == 14
    assert request["dispenseRequest"]["numberOfRepeatsAllowed"] == 0
    assert request["reasonCode"][0]["coding"][0]["code"] == "E11.9"
    assert request["note"] == [{"text": "Hold if NPO for procedure."}]
    assert only(bundle, "AllergyIntolerance")


def test_ndc_and_v23_timing_from_rxe1(rde: Mapping) -> None:
    bundle = bundle_of(rde, FIXTURES.input("cerner_pharmnet_o01_v23_rxe1_timing"))
    request = only(bundle, "MedicationRequest")
    assert drug_of(bundle, request)["code"]["coding"][0]["system"] == NDC
    repeat = request["dosageInstruction"][0]["timing"]["repeat"]
    assert (repeat["period"], repeat["periodUnit"], repeat["count"]) == (8, "h", 21)


def test_prn_with_a_dose_range_and_the_dispensing_pharmacy(rde: Mapping) -> None:
    bundle = bundle_of(rde, FIXTURES.input("omnicell_facing_o11_v25_prn_range"))
    request = only(bundle, "MedicationRequest")
    dosage = request["dosageInstruction"][0]
    assert dosage["asNeededBoolean"] is True
    dose_range = dosage["doseAndRate"][0]["doseRange"]
    assert (dose_range["low"]["value"], dose_range["high"]["value"]) == (1, 2)
    pharmacy = resolve(bundle, request["dispenseRequest"]["performer"])
    assert pharmacy["name"] == "Meridian Central Pharmacy"


def test_an_iv_compound_lists_its_components(rde: Mapping) -> None:
    bundle = bundle_of(rde, FIXTURES.input("iv_compound_rxc_o11_v251_vanc_nacl"))
    request = only(bundle, "MedicationRequest")
    drug = drug_of(bundle, request)
    parts = [(i["itemCodeableConcept"]["coding"][0]["code"], i["isActive"])
             for i in drug["ingredient"]]
    assert parts == [("338-0049", False), ("11124", True)]
    vanco = drug["ingredient"][1]["strength"]
    assert vanco["numerator"]["value"] == 1250 and vanco["denominator"]["value"] == 250
    assert drug["amount"]["numerator"] == {"value": 250, "unit": "milliliter",
                                           "system": UCUM, "code": "mL"}
    rate = request["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"]
    assert (rate["value"], rate["code"]) == (166.7, "mL/h")


def test_a_compound_without_a_code_is_named_by_its_components(rde: Mapping) -> None:
    raw = message(*order(rxe2=""), "RXC|B|NS^Normal saline^LOCAL|100|mL",
                  "RXC|A|KCL^Potassium chloride^LOCAL|20|meq")
    drug = only(bundle_of(rde, raw), "Medication")
    assert drug["code"] == {"text": "Normal saline + Potassium chloride"}


def test_o25_refill_request_maps(rde: Mapping) -> None:
    bundle = bundle_of(rde, FIXTURES.input("o25_refill_authorization_v251"))
    request = only(bundle, "MedicationRequest")
    assert request["dispenseRequest"]["numberOfRepeatsAllowed"] == 3
    assert request["dispenseRequest"]["initialFill"]["quantity"]["value"] == 30
    assert request["substitution"]["allowedCodeableConcept"]["coding"][0]["code"] == "G"


def test_hold_cancel_and_discontinue(rde: Mapping) -> None:
    for case, status in (("meditech_pha_o11_v24_heparin_newlines", "on-hold"),
                         ("allscripts_o11_v23_cancel", "cancelled"),
                         ("pyxis_facing_o11_v251_discontinue", "stopped")):
        request = only(bundle_of(rde, FIXTURES.input(case)), "MedicationRequest")
        assert request["status"] == status, case


def test_order_obx_are_observations_based_on_the_request(rde: Mapping) -> None:
    bundle = bundle_of(rde, FIXTURES.input("multiple_orders_o11_v28"))
    weight = only(bundle, "Observation")
    second = of_type(bundle, "MedicationRequest")[1]
    assert weight["basedOn"] == [{"reference": f"urn:uuid:{second['id']}"}]
    assert only(bundle, "Coverage")
    assert of_type(bundle, "MedicationRequest")[0]["priority"] == "stat"


# ---- leniency ---------------------------------------------------------------------------


def test_an_unknown_order_control_is_status_unknown_with_a_warning(rde: Mapping) -> None:
    raw = message(*order(orc="ORC|ZZ|ORD-1^EHR"))
    assert only(bundle_of(rde, raw), "MedicationRequest")["status"] == "unknown"
    assert warnings_of(rde, raw) == [
        "ORC-1: is not an order control code this mapping maps to a status "
        "(NW, XO, RP, RL, SC, CA, DC, HD and their replies)"]


def test_a_dose_that_is_not_a_number_costs_only_the_dose(rde: Mapping) -> None:
    raw = message(*order(rxe3="five"))
    request = only(bundle_of(rde, raw), "MedicationRequest")
    assert "doseAndRate" not in request.get("dosageInstruction", [{}])[0]
    assert request["dispenseRequest"]["quantity"]["value"] == 30
    assert warnings_of(rde, raw) == ["RXE-3: is not a number"]


def test_a_duration_unit_that_is_not_time_is_left_out_with_a_warning(rde: Mapping) -> None:
    raw = message(*order(), "TQ1|1||QD|||10^FN|20240601")
    request = only(bundle_of(rde, raw), "MedicationRequest")
    assert "boundsDuration" not in request["dosageInstruction"][0]["timing"]["repeat"]
    assert warnings_of(rde, raw) == [
        "TQ1-6: has a duration unit that is not a unit of time; the duration is left out"]


def test_a_bad_time_zone_keeps_the_date(rde: Mapping) -> None:
    raw = message(*order(orc=segment("ORC", {1: "NW", 2: "ORD-1^EHR", 9: "20240601115500+9900"})))
    request = only(bundle_of(rde, raw), "MedicationRequest")
    assert request["authoredOn"].startswith("2024-06-01")
    assert warnings_of(rde, raw) == [
        "ORC-9: holds a time zone offset that does not exist; read without it"]


def test_a_code_without_a_system_is_the_senders_own(rde: Mapping) -> None:
    raw = message(*order(rxe2="AMOX500^Amoxicillin 500 mg"))
    coding = only(bundle_of(rde, raw), "Medication")["code"]["coding"][0]
    assert coding["code"] == "AMOX500"
    assert coding["system"].startswith("urn:conduit:code:MERCY_GEN:")


def test_an_order_without_numbers_is_keyed_stably_with_a_warning(rde: Mapping) -> None:
    raw = message(*order(orc=segment("ORC", {1: "NW", 9: "20240601115500-0500"})))
    first = only(bundle_of(rde, raw), "MedicationRequest")
    assert first["id"] == only(bundle_of(rde, raw), "MedicationRequest")["id"]
    assert warnings_of(rde, raw) == [
        "ORC-2: is empty and so is ORC-3: the order is keyed on its patient, drug and time"]


def test_an_order_without_a_drug_is_dropped_and_the_patient_still_maps(rde: Mapping) -> None:
    raw = message(*order(rxe2=""), *order(orc="ORC|NW|ORD-2^EHR"))
    bundle = bundle_of(rde, raw)
    assert len(of_type(bundle, "MedicationRequest")) == 1
    assert warnings_of(rde, raw) == ["RXE-2: is empty: the order names no medication"]


def test_later_orders_are_named_by_occurrence(rde: Mapping) -> None:
    raw = message(*order(), *order(orc="ORC|NW|ORD-2^EHR", rxe12="2.5"))
    assert warnings_of(rde, raw) == ["RXE[2]-12: is not a whole number of zero or more"]


def test_warnings_hold_no_values_from_the_message(rde: Mapping) -> None:
    warnings = " ".join(warnings_of(rde, FIXTURES.input(
        "messy_unknown_control_bad_dose_and_time")))
    for value in ("ZZ", "five", "25:99", "FORTNIGHT", "FN", "two dozen", "2.5", "FAIRWEATHER"):
        assert value not in warnings, value


def test_only_a_message_without_a_pid_fails(rde: Mapping) -> None:
    with pytest.raises(MappingError) as caught:
        checks.run(rde, message(*order(), pid=None))
    assert caught.value.field == "PID-3"


def test_other_events_are_skipped_and_other_types_fail(rde: Mapping) -> None:
    assert not isinstance(checks.run(rde, message(message_type="RDE^O99")), bytes)
    with pytest.raises(MappingError) as caught:
        checks.run(rde, message(message_type="ORM^O01"))
    assert caught.value.field == "MSH-9"


def test_the_order_as_placed_is_an_original_order_the_encoded_one_is_based_on(
        rde: Mapping) -> None:
    bundle = bundle_of(rde, FIXTURES.input("athena_o11_v251_rxo_and_rxe_ordering_facility"))
    encoded, placed = of_type(bundle, "MedicationRequest")
    assert (encoded["intent"], placed["intent"]) == ("order", "original-order")
    assert encoded["basedOn"] == [{"reference": f"urn:uuid:{placed['id']}"}]
    assert placed["dispenseRequest"]["dispenseInterval"]["value"] == 90
    codes = {c["code"] for c in drug_of(bundle, encoded)["code"]["coding"]}
    assert codes == {"314076", "68180-0514-09"}  # RXE-31 supplementary NDC beside RxNorm
    role = only(bundle, "PractitionerRole")
    assert encoded["requester"] == placed["requester"] == {"reference": f"urn:uuid:{role['id']}"}
    assert role["code"][0]["coding"][0]["code"] == "OP"  # v2-0443 ordering provider
    assert resolve(bundle, role["organization"])["name"] == "Hillside Family Medicine"


def test_every_resource_type_written_is_declared_for_the_coverage_table() -> None:
    from engine.maplib.v2_to_fhir import rde as builder

    written = FIXTURES.written_types()
    assert written <= set(builder.RESOURCES), written - set(builder.RESOURCES)


def test_cumulative_dosage_limits_from_cdo(rde: Mapping) -> None:
    bundle = bundle_of(rde, FIXTURES.input("multiple_orders_o11_v28"))
    dosage = of_type(bundle, "MedicationRequest")[1]["dosageInstruction"][0]
    assert dosage["maxDosePerLifetime"] == {"value": 100000, "unit": "milligram",
                                            "system": UCUM, "code": "mg"}
    raw = message(*order(), "CDO|1||40^mg|2^FN")
    assert warnings_of(rde, raw) == [
        "CDO-4: has an interval unit this mapping does not read (D, WK, M, A, PL)"]


@pytest.mark.parametrize(("tq1", "where"), [
    ("TQ1|1||0ID", "TQ1-3"), ("TQ1|1||99999999999ID", "TQ1-3"),
    ("TQ1|1||QD|||||||||||0", "TQ1-14"), ("TQ1|1||QD|||||||||||99999999999", "TQ1-14"),
])
def test_counts_fhir_cannot_hold_are_left_out_and_the_output_stays_valid(
        rde: Mapping, tq1: str, where: str) -> None:
    raw = message(*order(), tq1)
    checks.check_transaction(bundle_of(rde, raw))
    assert [w.split(":")[0] for w in warnings_of(rde, raw)] == [where]


def test_a_note_carries_its_author_and_time(rde: Mapping) -> None:
    bundle = bundle_of(rde, FIXTURES.input("o25_refill_authorization_v251"))
    note, = only(bundle, "MedicationRequest")["note"]
    assert note["time"] == "2024-08-15T08:50:00-05:00"
    assert resolve(bundle, note["authorReference"])["name"][0]["family"] == "NAVARRO"


def test_an_empty_order_control_reads_order_status_else_warns(rde: Mapping) -> None:
    completed = message(*order(orc="ORC||ORD-1^EHR|||CM"))
    assert only(bundle_of(rde, completed), "MedicationRequest")["status"] == "completed"
    assert warnings_of(rde, completed) == []
    bare = message(*order(orc="ORC||ORD-1^EHR"))
    assert only(bundle_of(rde, bare), "MedicationRequest")["status"] == "unknown"
    assert warnings_of(rde, bare) == ["ORC-1: is empty and so is ORC-5; the status is unknown"]


def test_the_ordering_facility_is_an_organization_not_a_person(rde: Mapping) -> None:
    bundle = bundle_of(rde, FIXTURES.input("athena_o11_v251_rxo_and_rxe_ordering_facility"))
    people = of_type(bundle, "Practitioner")
    assert all("name" in p for p in people)  # ORC-21 read as an XCN made a nameless one
    assert not [p for p in people if p["identifier"][0]["value"] == "Hillside Family Medicine"]
    assert "Hillside Family Medicine" in {o.get("name") for o in of_type(bundle, "Organization")}
