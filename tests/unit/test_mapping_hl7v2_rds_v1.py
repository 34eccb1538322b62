"""hl7v2-rds-to-fhir@1: every fixture a valid R4 transaction, the facts of a dispense where
the reference converter puts them, the RDE feed's order ids, and leniency."""

from __future__ import annotations

import re

import pytest

from engine.errors import MappingError
from engine.mapping import Mapping
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, of_type, only, resolve, segment, warnings_of

FIXTURES = checks.Fixtures("hl7v2-rds-to-fhir@1")
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC = "http://hl7.org/fhir/sid/ndc"

rds = checks.mapping_fixture(FIXTURES.ref)

PID = "PID|1||MG001234^^^MERCY^MR||ROWE^TAMSIN^^^^^L||19900101|F|||12 ELM ST^^SALEM^MA^01970"
ORC = "ORC|RE|ORD-1^EHR|RX-1^PHARM||CM"
RXE = segment("RXE", {2: "197361^amLODIPine 5 MG Oral Tablet^RXNORM", 3: "5",
                      5: "mg^milligram^UCUM", 10: "30", 11: "TAB", 15: "RX-1"})
BASE_RXD = {1: "1", 2: "197361^amLODIPine 5 MG Oral Tablet^RXNORM", 3: "20240601113000",
            4: "30", 5: "TAB^Tablet", 7: "RX-1", 10: "RPH1^ABARA^NKEM^^^^PHARMD"}


def message(*segments: str, message_type: str = "RDS^O13^RDS_O13",
            pid: str | None = PID) -> bytes:
    msh = ("MSH|^~\\&|RX|MERCY_GEN|EHR|MERCY_GEN|20240601120000-0500||"
           f"{message_type}|CTRL0001|P|2.5.1")
    return ("\r".join([msh, *([pid] if pid else []), *segments]) + "\r").encode()


def rxd(**fields: str) -> str:
    values = dict(BASE_RXD)
    values.update({int(k.removeprefix("rxd")): v for k, v in fields.items()})
    return segment("RXD", values)


# ---- fixtures ---------------------------------------------------------------------------


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=11, min_outputs=8,
                                    output=checks.transaction_holding("Patient"))


def test_fixtures_cover_versions_and_messy_styles() -> None:
    raw = {case: FIXTURES.input(case) for case in FIXTURES.cases}
    for version in (b"2.3", b"2.5", b"2.5.1", b"2.8"):
        assert any(re.search(rb"\|" + re.escape(version) + rb"[|\r\n]", r)
                   for r in raw.values()), version
    assert any(b"\n" in r and b"\r" not in r for r in raw.values()), "a \\n-only fixture"
    assert any(b"\rRXC|" in r for r in raw.values()), "a compound"


# ---- identity ---------------------------------------------------------------------------


def test_patient_id_is_the_one_the_adt_feed_makes(rds: Mapping) -> None:
    patient = only(bundle_of(rds, message(ORC, RXE, rxd())), "Patient")
    msh = "MSH|^~\\&|ADT|MERCY_GEN|HIE|HIE|20240601120000-0500||ADT^A08|A1|P|2.5.1"
    adt = "\r".join([msh, "EVN|A08", PID, "PV1|1|O"]).encode() + b"\r"
    checks.check_same_patient(patient, adt)


def test_the_authorizing_request_is_the_rde_feeds(rds: Mapping) -> None:
    dispensed = bundle_of(rds, message(ORC, RXE, rxd()))
    ordered = bundle_of(checks.mapping("hl7v2-rde-to-fhir@2"), message(
        "ORC|NW|ORD-1^EHR|RX-1^PHARM", RXE, message_type="RDE^O11^RDE_O11"))
    request = only(ordered, "MedicationRequest")
    dispense = only(dispensed, "MedicationDispense")
    assert dispense["authorizingPrescription"] == [{"reference": f"urn:uuid:{request['id']}"}]
    assert only(dispensed, "MedicationRequest")["id"] == request["id"]


def test_a_resend_updates_and_a_later_fill_is_a_new_dispense(rds: Mapping) -> None:
    first = only(bundle_of(rds, message(ORC, RXE, rxd())), "MedicationDispense")
    again = only(bundle_of(rds, message(ORC, RXE, rxd())), "MedicationDispense")
    refill = only(bundle_of(rds, message(ORC, RXE, rxd(rxd1="2", rxd3="20240701113000"))),
                  "MedicationDispense")
    assert first["id"] == again["id"] != refill["id"]


# ---- the facts of a dispense ------------------------------------------------------------


def test_cerner_fixture_facts_land_where_the_reference_puts_them(rds: Mapping) -> None:
    bundle = bundle_of(rds, FIXTURES.input("cerner_pharmnet_v251_o13_rxe_rxd"))
    dispense = only(bundle, "MedicationDispense")
    drug = resolve(bundle, dispense["medicationReference"])
    assert drug["code"]["coding"][0]["system"] == RXNORM
    assert drug["code"]["coding"][0]["code"] == "310965"
    assert drug["batch"] == {"lotNumber": "LT20931", "expirationDate": "2026-01-31"}
    assert resolve(bundle, drug["manufacturer"])["name"] == "Pfizer Laboratories"
    assert dispense["whenHandedOver"] == "2024-05-21T14:25:00-04:00"
    assert dispense["quantity"] == {"value": 20, "unit": "Tablet"}
    assert dispense["status"] == "completed"
    pharmacist = resolve(bundle, dispense["performer"][0]["actor"])
    assert pharmacist["name"][0]["family"] == "LINDQVIST"
    assert resolve(bundle, dispense["destination"])["name"] == "5W / 512 / A"
    assert resolve(bundle, dispense["location"])["name"] == "Baystate Main Pharmacy"
    assert dispense["substitution"]["wasSubstituted"] is False
    assert dispense["type"]["coding"][0]["code"] == "N"
    assert dispense["context"]["reference"] == f"urn:uuid:{only(bundle, 'Encounter')['id']}"
    texts = [n["text"] for n in dispense["note"]]
    assert texts == ["Dispensed in unit dose packaging", "Count verified by second pharmacist."]
    dosage = dispense["dosageInstruction"][0]
    assert dosage["route"]["coding"][0]["code"] == "PO"
    assert dosage["timing"]["repeat"]["period"] == 6


def test_a_generic_substitute_dispensed_under_a_brand_order(rds: Mapping) -> None:
    bundle = bundle_of(rds, FIXTURES.input("generic_substitution_v28"))
    dispense = only(bundle, "MedicationDispense")
    assert dispense["substitution"]["wasSubstituted"] is True
    assert dispense["substitution"]["type"]["coding"][0]["code"] == "G"
    dispensed = resolve(bundle, dispense["medicationReference"])["code"]["coding"][0]["code"]
    request = only(bundle, "MedicationRequest")
    ordered = resolve(bundle, request["medicationReference"])["code"]["coding"][0]["code"]
    assert (ordered, dispensed) == ("617314", "617310")
    assert dispense["dosageInstruction"][0]["maxDosePerPeriod"]["numerator"]["value"] == 10
    assert only(bundle, "Observation")["partOf"] == [
        {"reference": f"urn:uuid:{dispense['id']}"}]


def test_two_fills_of_one_order_are_two_dispenses(rds: Mapping) -> None:
    bundle = bundle_of(rds, FIXTURES.input("omnicell_o13_v25_two_part_fills"))
    fills = of_type(bundle, "MedicationDispense")
    assert [f["type"].get("coding", [{}])[0].get("code") for f in fills] == ["P", "Q"]
    assert len({f["id"] for f in fills}) == 2
    request = only(bundle, "MedicationRequest")
    assert all(f["authorizingPrescription"] == [{"reference": f"urn:uuid:{request['id']}"}]
               for f in fills), "both fills belong to the one ORC's order"


def test_a_cabinet_dispense_without_an_order_names_the_prescription(rds: Mapping) -> None:
    bundle = bundle_of(rds, FIXTURES.input("pyxis_cabinet_rxd_only_lf"))
    dispense = only(bundle, "MedicationDispense")
    assert not of_type(bundle, "MedicationRequest")
    assert dispense["authorizingPrescription"][0]["identifier"]["value"] == "RX2201443"


def test_a_compound_dispense_lists_its_components(rds: Mapping) -> None:
    bundle = bundle_of(rds, FIXTURES.input("iv_compound_rds_rxc_v251"))
    drug = resolve(bundle, only(bundle, "MedicationDispense")["medicationReference"])
    assert [i["itemCodeableConcept"]["coding"][0]["system"] for i in drug["ingredient"]] == [
        NDC, RXNORM]


# ---- leniency ---------------------------------------------------------------------------


def test_a_bad_amount_costs_only_the_quantity(rds: Mapping) -> None:
    raw = message(ORC, RXE, rxd(rxd4="thirty"))
    dispense = only(bundle_of(rds, raw), "MedicationDispense")
    assert "quantity" not in dispense and dispense["whenHandedOver"].startswith("2024-06-01")
    assert warnings_of(rds, raw) == ["RXD-4: is not a number"]


def test_an_unknown_substitution_code_warns(rds: Mapping) -> None:
    raw = message(ORC, RXE, rxd(rxd11="X"))
    assert "substitution" not in only(bundle_of(rds, raw), "MedicationDispense")
    assert warnings_of(rds, raw) == [
        "RXD-11: is not a substitution status this mapping reads (table 0167: N, G, T, 0, 1)"]


def test_a_second_rxd_without_a_drug_is_named_and_the_first_maps(rds: Mapping) -> None:
    raw = message(ORC, RXE, rxd(), rxd(rxd1="2", rxd2=""))
    assert len(of_type(bundle_of(rds, raw), "MedicationDispense")) == 1
    assert warnings_of(rds, raw) == ["RXD[2]-2: is empty: the dispense names no medication"]


def test_warnings_hold_no_values_from_the_message(rds: Mapping) -> None:
    warnings = " ".join(warnings_of(rds, FIXTURES.input("messy_bad_amount_bad_dates")))
    for value in ("twenty", "+9900", "20261399", "FAIRWEATHER", "CEPH500"):
        assert value not in warnings, value


def test_only_a_message_without_a_pid_fails(rds: Mapping) -> None:
    with pytest.raises(MappingError) as caught:
        checks.run(rds, message(ORC, rxd(), pid=None))
    assert caught.value.field == "PID-3"


def test_other_events_are_skipped_and_other_types_fail(rds: Mapping) -> None:
    assert not isinstance(checks.run(rds, message(message_type="RDS^O99")), bytes)
    with pytest.raises(MappingError) as caught:
        checks.run(rds, message(message_type="RDE^O11"))
    assert caught.value.field == "MSH-9"


def test_every_resource_type_written_is_declared_for_the_coverage_table() -> None:
    from engine.maplib.v2_to_fhir import rds as builder

    written = FIXTURES.written_types()
    assert written <= set(builder.RESOURCES), written - set(builder.RESOURCES)
