"""hl7v2-rgv-to-fhir@1: every fixture a valid R4 transaction; each give an instance of
the order the RDE feed made (MedicationRequest instance-order based on it), with what to
give, how and when; and leniency."""

from __future__ import annotations

import re

import pytest

from engine.errors import MappingError
from engine.mapping import Mapping
from engine.mapping_base import Skip
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, of_type, resolve, segment, warnings_of

FIXTURES = checks.Fixtures("hl7v2-rgv-to-fhir@1")

rgv = checks.mapping_fixture(FIXTURES.ref)

PID = "PID|1||MG001234^^^MERCY^MR||ROWE^TAMSIN^^^^^L||19900101|F"
ORC = "ORC|SC|ORD-1^EHR|RX-1^PHARM||IP"
RXE = segment("RXE", {2: "197361^amLODIPine 5 MG Oral Tablet^RXNORM", 3: "5",
                      5: "mg^milligram^UCUM", 15: "RX-1"})
BASE_RXG = {1: "1", 4: "197361^amLODIPine 5 MG Oral Tablet^RXNORM", 5: "5",
            7: "mg^milligram^UCUM"}


def message(*segments: str, message_type: str = "RGV^O15^RGV_O15",
            pid: str | None = PID) -> bytes:
    msh = ("MSH|^~\\&|RX|MERCY_GEN|MAR|MERCY_GEN|20240601120000-0500||"
           f"{message_type}|CTRL0001|P|2.5.1")
    return ("\r".join([msh, *([pid] if pid else []), *segments]) + "\r").encode()


def rxg(**fields: str) -> str:
    values = dict(BASE_RXG)
    values.update({int(k.removeprefix("rxg")): v for k, v in fields.items()})
    return segment("RXG", {k: v for k, v in values.items() if v})


def gives(bundle: dict) -> list[dict]:
    return [r for r in of_type(bundle, "MedicationRequest") if r["intent"] == "instance-order"]


def ordered(bundle: dict) -> dict:
    (found,) = [r for r in of_type(bundle, "MedicationRequest") if r["intent"] == "order"]
    return found


# ---- fixtures ---------------------------------------------------------------------------


def _check_output(bundle: dict) -> None:
    checks.check_transaction(bundle)
    assert of_type(bundle, "Patient"), "every RGV output has its Patient"
    assert gives(bundle), "every RGV output has a give"


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=6, min_outputs=4,
                                    output=_check_output)


def test_fixtures_cover_versions_vendors_and_messy_styles() -> None:
    raw = {case: FIXTURES.input(case) for case in FIXTURES.cases}
    for version in (b"2.3", b"2.4", b"2.5", b"2.5.1"):
        assert any(re.search(rb"\|" + re.escape(version) + rb"[|\r\n]", r)
                   for r in raw.values()), version
    assert any(b"\n" in r and b"\r" not in r for r in raw.values()), "a \\n-only fixture"
    assert any(b"RGV^O01" in r for r in raw.values()), "v2.3's event"


# ---- identity ---------------------------------------------------------------------------


def test_a_give_is_an_instance_of_the_rde_feeds_order(rgv: Mapping) -> None:
    bundle = bundle_of(rgv, message(ORC, RXE, rxg()))
    (request,) = of_type(bundle_of(checks.mapping("hl7v2-rde-to-fhir@2"), message(
        "ORC|NW|ORD-1^EHR|RX-1^PHARM", RXE, message_type="RDE^O11^RDE_O11")),
        "MedicationRequest")
    assert ordered(bundle)["id"] == request["id"]
    (give,) = gives(bundle)
    assert give["basedOn"] == [{"reference": f"urn:uuid:{request['id']}"}]
    assert give["id"] != request["id"]


def test_a_resent_give_updates_and_the_next_give_is_new(rgv: Mapping) -> None:
    (first,) = gives(bundle_of(rgv, message(ORC, RXE, rxg())))
    (again,) = gives(bundle_of(rgv, message(ORC, RXE, rxg(rxg5="2.5"))))
    (second,) = gives(bundle_of(rgv, message(ORC, RXE, rxg(rxg1="2"))))
    assert first["id"] == again["id"] != second["id"]


# ---- the facts of a give ----------------------------------------------------------------


def test_each_give_has_its_own_time_route_and_site(rgv: Mapping) -> None:
    bundle = bundle_of(rgv, FIXTURES.input("epic_willow_v251_o15_two_gives"))
    first, second = gives(bundle)
    assert [g["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]["start"]
            for g in (first, second)] == ["2025-01-14T09:00:00-05:00",
                                          "2025-01-15T09:00:00-05:00"]
    assert [g["dosageInstruction"][0]["site"]["coding"][0]["code"]
            for g in (first, second)] == ["LLQ", "RLQ"]
    assert first["dosageInstruction"][0]["additionalInstruction"][0]["coding"][0][
        "code"] == "ROT"
    assert first["reasonCode"][0]["coding"][0]["code"] == "Z79.01"
    assert first["groupIdentifier"]["value"] == "GRP55012"
    assert first["status"] == "active"


def test_an_admixture_given_at_a_rate_with_the_result_checked_before(rgv: Mapping) -> None:
    bundle = bundle_of(rgv, FIXTURES.input("cerner_v24_o15_iv_admixture_rate"))
    (give,) = gives(bundle)
    rate = give["dosageInstruction"][0]["doseAndRate"][0]
    assert rate["rateQuantity"]["code"] == "mL/h" and rate["rateQuantity"]["value"] == 100
    drug = resolve(bundle, give["medicationReference"])
    assert drug["batch"] == {"lotNumber": "K2210B", "expirationDate": "2024-11-12"}
    assert give["note"] == [{"text": "Infuse over 10 hours"}]
    (potassium,) = of_type(bundle, "Observation")
    assert potassium["basedOn"] == [{"reference": f"urn:uuid:{give['id']}"}]


def test_a_v23_give_reads_its_timing_from_rxg3(rgv: Mapping) -> None:
    bundle = bundle_of(rgv, FIXTURES.input("meditech_v23_o01_rxo_tq"))
    (give,) = gives(bundle)
    timing = give["dosageInstruction"][0]["timing"]
    assert timing["repeat"]["timeOfDay"] == ["09:00:00"]
    assert timing["code"] == {"text": "QD"}
    assert give["basedOn"] == [{"reference": f"urn:uuid:{ordered(bundle)['id']}"}]


# ---- leniency ---------------------------------------------------------------------------


def test_a_bad_amount_costs_only_the_dose(rgv: Mapping) -> None:
    raw = message(ORC, RXE, rxg(rxg5="five"))
    (give,) = gives(bundle_of(rgv, raw))
    assert "doseAndRate" not in give.get("dosageInstruction", [{}])[0]
    assert warnings_of(rgv, raw) == ["RXG-5: is not a number"]


def test_a_give_without_a_drug_is_named_and_the_others_map(rgv: Mapping) -> None:
    raw = message(ORC, RXE, rxg(), rxg(rxg1="2", rxg4=""))
    assert len(gives(bundle_of(rgv, raw))) == 1
    assert warnings_of(rgv, raw) == ["RXG[2]-4: is empty: the give names no medication"]


def test_warnings_hold_no_values_from_the_message(rgv: Mapping) -> None:
    warnings = " ".join(warnings_of(rgv, FIXTURES.input("messy_odd_fields_v25")))
    for value in ("two", "ZZ", "diphenhydrAMINE", "HOLLOWAY"):
        assert value not in warnings.split(), value


def test_only_a_message_without_a_pid_fails(rgv: Mapping) -> None:
    with pytest.raises(MappingError) as caught:
        checks.run(rgv, message(ORC, rxg(), pid=None))
    assert caught.value.field == "PID-3"


def test_other_events_are_skipped_and_other_types_fail(rgv: Mapping) -> None:
    assert isinstance(checks.run(rgv, message(message_type="RGV^O99")), Skip)
    with pytest.raises(MappingError) as caught:
        checks.run(rgv, message(message_type="RAS^O17"))
    assert caught.value.field == "MSH-9"


def test_every_resource_type_written_is_declared_for_the_coverage_table() -> None:
    from engine.maplib.v2_to_fhir import rgv as builder

    written = FIXTURES.written_types()
    assert written <= set(builder.RESOURCES), written - set(builder.RESOURCES)
