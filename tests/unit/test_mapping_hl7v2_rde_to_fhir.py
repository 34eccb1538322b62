"""hl7v2-rde-to-fhir@1: every fixture, valid FHIR, stable ids shared with the ADT feed,
statuses, doses and timing, and errors without PHI."""

from __future__ import annotations

import re

import pytest

from engine.maplib.v2_pharmacy import repeat_pattern, time_of_day
from engine.mapping import Mapping, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, run, segment

FIXTURES = checks.Fixtures("hl7v2-rde-to-fhir@1")
ADT_FIXTURES = checks.Fixtures("hl7v2-adt-to-fhir@1")
ENCOUNTER_REFERENCE = re.compile(r"Encounter/[0-9a-f-]{36}\Z")
UCUM = "http://unitsofmeasure.org"

rde = checks.mapping_fixture(FIXTURES.ref)


def requests(mapping: Mapping, raw: bytes) -> list[dict]:
    """The MedicationRequests of the bundle, in order."""
    return checks.of_type(bundle_of(mapping, raw), "MedicationRequest")


def request(mapping: Mapping, raw: bytes) -> dict:
    (only,) = requests(mapping, raw)
    return only


def fixture(case: str) -> bytes:
    return FIXTURES.input(case)


ORC = {1: "NW", 2: "ORD-1^EHR", 3: "RX-1^PHARM", 9: "20240601110000", 12: "77^ROWE^ANNIKA^^^DR"}
RXE = {
    2: "197361^amlodipine 5 MG Oral Tablet^RXNORM",
    3: "5",
    5: "mg^mg^UCUM",
    10: "30",
    11: "TAB^tablet",
    12: "1",
}
TQ1 = {1: "1", 3: "BID", 7: "20240601120000", 8: "20240608120000"}


def order(
    orc: dict[int, str] | None = None,
    rxe: dict[int, str] | None = None,
    tq1: dict[int, str] | None = TQ1,
    rxr: str | None = "RXR|PO^Oral^HL70162",
) -> list[str]:
    """The segments of one order group."""
    group = [segment("ORC", {**ORC, **(orc or {})})]
    if tq1 is not None:
        group.append(segment("TQ1", tq1))
    group.append(segment("RXE", {**RXE, **(rxe or {})}))
    if rxr is not None:
        group.append(rxr)
    return group


def rde_message(
    *groups: list[str],
    event: str = "O11",
    facility: str = "MERCY_GEN",
    msh7: str = "20240601120000-0500",
    pid: str = "PID|1||MG001234^^^MERCY^MR||ROWE^TAMSIN^^^^^L||19900101|F",
    pv1: str | None = "PV1|1|I|3E^301^A||||||||||||||||MGV5550001^^^MERCY^VN",
) -> bytes:
    segments = [
        f"MSH|^~\\&|PHARM|{facility}|CONDUIT|HIE|{msh7}||RDE^{event}|CTRL{event}|P|2.5.1",
        pid,
    ]
    if pv1 is not None:
        segments.append(pv1)
    for group in groups or (order(),):
        segments += group
    return ("\r".join(segments) + "\r").encode()


# ---- fixtures ---------------------------------------------------------------------------


def _check_output(bundle: dict) -> None:
    checks.check_transaction(bundle, literal=ENCOUNTER_REFERENCE)
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds[0] == "Patient" and set(kinds[1:]) == {"MedicationRequest"}


TestFixtures = checks.fixture_tests(FIXTURES, min_outputs=6, output=_check_output)


# ---- ids shared with the ADT feed -------------------------------------------------------


def test_patient_and_encounter_are_the_ones_the_adt_feed_made(rde: Mapping) -> None:
    admit = checks.adt_bundle(ADT_FIXTURES.input("epic_a01_admit"))
    patient, encounter = (e["resource"] for e in admit["entry"])
    bundle = bundle_of(rde, fixture("epic_o11_willow_amlodipine"))
    assert bundle["entry"][0]["resource"]["id"] == patient["id"]
    medication = bundle["entry"][1]["resource"]
    assert medication["encounter"]["reference"] == f"Encounter/{encounter['id']}"
    assert medication["subject"] == {"reference": f"urn:uuid:{patient['id']}"}


def test_patient_id_equals_adts_for_the_same_pid_and_facility(rde: Mapping) -> None:
    raw = rde_message()
    as_adt = raw.replace(b"RDE^O11", b"ADT^A01")
    as_adt = as_adt[: as_adt.index(b"ORC|")]
    bundle = bundle_of(rde, raw)
    admit = checks.check_same_patient(bundle["entry"][0]["resource"], as_adt, whole=True)
    assert request(rde, raw)["encounter"]["reference"] == f"Encounter/{admit['Encounter']['id']}"


def test_new_order_and_its_discontinue_update_one_resource(rde: Mapping) -> None:
    new = request(rde, fixture("epic_o11_willow_amlodipine"))
    stopped = request(rde, fixture("epic_o11_discontinue_dc"))
    assert new["id"] == stopped["id"]
    assert (new["status"], stopped["status"]) == ("active", "stopped")


def test_id_comes_from_the_placer_number_else_the_filler(rde: Mapping) -> None:
    placer = request(rde, rde_message())["id"]
    other_filler = request(rde, rde_message(order(orc={3: "RX-2^PHARM"})))["id"]
    assert other_filler == placer
    filler_only = request(rde, rde_message(order(orc={2: ""})))
    assert filler_only["id"] != placer
    assert [i["type"]["coding"][0]["code"] for i in filler_only["identifier"]] == ["FILL"]


def test_another_facility_gets_other_ids(rde: Mapping) -> None:
    here = request(rde, rde_message())["id"]
    assert request(rde, rde_message(facility="MERCY_NORTH"))["id"] != here


def test_one_request_per_order_group_in_message_order(rde: Mapping) -> None:
    raw = rde_message(order(), order(orc={2: "ORD-2^EHR", 3: "RX-2^PHARM"}, rxr=None))
    found = requests(rde, raw)
    assert [r["identifier"][0]["value"] for r in found] == ["ORD-1", "ORD-2"]
    assert "route" in found[0]["dosageInstruction"][0]
    assert "route" not in found[1]["dosageInstruction"][0]


# ---- events and statuses ----------------------------------------------------------------


def test_v23_rde_o01_is_mapped(rde: Mapping) -> None:
    assert request(rde, rde_message(event="O01"))["status"] == "active"


@pytest.mark.parametrize("event", ["O25", "O26", "X99"])
def test_other_rde_events_are_skipped(rde: Mapping, event: str) -> None:
    assert run(rde, rde_message(event=event)) == Skip(f"RDE^{event} is not mapped by this version")


@pytest.mark.parametrize(
    ("control", "order_status", "status"),
    [
        ("NW", "", "active"),
        ("NW", "SC", "active"),
        ("NW", "CM", "completed"),
        ("XO", "IP", "active"),
        ("RP", "", "active"),
        ("RL", "", "active"),
        ("SC", "CM", "completed"),
        ("SC", "ER", "entered-in-error"),
        ("SC", "", "unknown"),
        ("OK", "HD", "on-hold"),
        ("CA", "", "cancelled"),
        ("CA", "IP", "cancelled"),
        ("OC", "CA", "cancelled"),
        ("DC", "", "stopped"),
        ("DC", "CM", "stopped"),
        ("OD", "DC", "stopped"),
        ("HD", "", "on-hold"),
        ("HD", "IP", "on-hold"),
        ("hd", "", "on-hold"),
    ],
)
def test_status_from_order_control_and_order_status(
    rde: Mapping, control: str, order_status: str, status: str
) -> None:
    found = request(rde, rde_message(order(orc={1: control, 5: order_status})))
    assert (found["status"], found["intent"]) == (status, "order")


def test_order_control_reason_is_the_status_reason(rde: Mapping) -> None:
    found = request(rde, rde_message(order(orc={1: "DC", 16: "ADR^Adverse reaction^L"})))
    assert found["statusReason"]["coding"][0]["code"] == "ADR"
    assert "reasonCode" not in found


# ---- medication, dose, timing -----------------------------------------------------------


@pytest.mark.parametrize(
    ("give_code", "system"),
    [
        ("00093-7171-98^Amlodipine^NDC", "http://hl7.org/fhir/sid/ndc"),
        ("197361^amlodipine^RXNORM", "http://www.nlm.nih.gov/research/umls/rxnorm"),
        ("AML5^Amlodipine 5 mg^L", "urn:conduit:code:MERCY_GEN:L"),
        ("AML5^Amlodipine 5 mg", "urn:conduit:code:MERCY_GEN:local"),
    ],
)
def test_give_code_systems(rde: Mapping, give_code: str, system: str) -> None:
    found = request(rde, rde_message(order(rxe={2: give_code})))
    assert found["medicationCodeableConcept"]["coding"][0]["system"] == system


def test_give_code_text_only(rde: Mapping) -> None:
    found = request(rde, rde_message(order(rxe={2: "^Compounded cream"})))
    assert found["medicationCodeableConcept"] == {"text": "Compounded cream"}


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("mg^milligram^UCUM", {"unit": "milligram", "system": UCUM, "code": "mg"}),
        ("MG", {"unit": "MG", "system": UCUM, "code": "mg"}),
        ("MCG", {"unit": "MCG", "system": UCUM, "code": "ug"}),
        ("MEQ^milliequivalent", {"unit": "milliequivalent", "system": UCUM, "code": "meq"}),
        ("UNITS", {"unit": "UNITS", "system": UCUM, "code": "U"}),
        ("mL/h^^ANS+", {"unit": "mL/h", "system": UCUM, "code": "mL/h"}),
        ("TAB^tablet", {"unit": "tablet"}),
        ("PUFF", {"unit": "PUFF"}),
        ("", {}),
    ],
)
def test_dose_units_are_ucum_only_when_they_are(rde: Mapping, unit: str, expected: dict) -> None:
    found = request(rde, rde_message(order(rxe={5: unit})))
    dose = found["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert dose == {"value": 5, **expected}


def test_min_and_max_make_a_range_and_equal_ones_a_quantity(rde: Mapping) -> None:
    ranged = request(rde, rde_message(order(rxe={3: "2", 4: "4.5"})))
    dose = ranged["dosageInstruction"][0]["doseAndRate"][0]["doseRange"]
    assert (dose["low"]["value"], dose["high"]["value"]) == (2, 4.5)
    same = request(rde, rde_message(order(rxe={3: "0.5", 4: "0.5"})))
    assert same["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 0.5


@pytest.mark.parametrize(
    ("pattern", "repeat", "as_needed"),
    [
        ("QD", {"frequency": 1, "period": 1, "periodUnit": "d"}, False),
        ("BID", {"frequency": 2, "period": 1, "periodUnit": "d"}, False),
        ("TID", {"frequency": 3, "period": 1, "periodUnit": "d"}, False),
        ("QID", {"frequency": 4, "period": 1, "periodUnit": "d"}, False),
        ("5ID", {"frequency": 5, "period": 1, "periodUnit": "d"}, False),
        ("Q6H", {"frequency": 1, "period": 6, "periodUnit": "h"}, False),
        ("Q30M", {"frequency": 1, "period": 30, "periodUnit": "min"}, False),
        ("Q2W", {"frequency": 1, "period": 2, "periodUnit": "wk"}, False),
        ("Q1L", {"frequency": 1, "period": 1, "periodUnit": "mo"}, False),
        ("QOD", {"frequency": 1, "period": 2, "periodUnit": "d"}, False),
        ("QHS", {"frequency": 1, "period": 1, "periodUnit": "d", "when": ["HS"]}, False),
        ("QAM", {"frequency": 1, "period": 1, "periodUnit": "d", "when": ["MORN"]}, False),
        ("ONCE", {"count": 1}, False),
        ("PRN", {}, True),
        ("Q4H PRN", {"frequency": 1, "period": 4, "periodUnit": "h"}, True),
        ("PRNQ4H", {"frequency": 1, "period": 4, "periodUnit": "h"}, True),
        ("q8h", {"frequency": 1, "period": 8, "periodUnit": "h"}, False),
        ("Q1J1", {}, False),
        ("", {}, False),
    ],
)
def test_repeat_patterns(pattern: str, repeat: dict, as_needed: bool) -> None:
    assert repeat_pattern(pattern) == (repeat, as_needed)


def test_tq1_timing(rde: Mapping) -> None:
    tq1 = {
        1: "1",
        3: "Q12H&Every 12 hours&HL70335",
        4: "0900~2100",
        7: "20240601210000",
        8: "20240608210000-0500",
        9: "S",
        10: "if febrile",
        11: "Infuse over 1 hour",
        13: "60^min",
        14: "14",
    }
    found = request(rde, rde_message(order(tq1=tq1)))
    dosage = found["dosageInstruction"][0]
    assert dosage["timing"] == {
        "repeat": {
            "frequency": 1,
            "period": 12,
            "periodUnit": "h",
            "boundsPeriod": {
                "start": "2024-06-01T21:00:00-05:00",
                "end": "2024-06-08T21:00:00-05:00",
            },
            "timeOfDay": ["09:00:00", "21:00:00"],
            "count": 14,
            "duration": 60,
            "durationUnit": "min",
        },
        "code": {"text": "Every 12 hours"},
    }
    assert dosage["text"] == "Infuse over 1 hour"
    assert dosage["additionalInstruction"] == [{"text": "if febrile"}]
    assert found["priority"] == "stat"
    assert found["dispenseRequest"]["validityPeriod"] == {
        "start": "2024-06-01T21:00:00-05:00",
        "end": "2024-06-08T21:00:00-05:00",
    }


def test_service_duration_bounds_when_there_is_no_start_or_end(rde: Mapping) -> None:
    found = request(rde, rde_message(order(tq1={1: "1", 3: "QD", 6: "10^D"})))
    repeat = found["dosageInstruction"][0]["timing"]["repeat"]
    assert repeat["boundsDuration"] == {"value": 10, "unit": "d", "system": UCUM, "code": "d"}


def test_several_tq1_give_a_dosage_each(rde: Mapping) -> None:
    group = order(tq1={1: "1", 3: "QAM"})
    group.insert(2, segment("TQ1", {1: "2", 3: "QHS", 9: "PRN"}))
    dosages = request(rde, rde_message(group))["dosageInstruction"]
    assert [d["sequence"] for d in dosages] == [1, 2]
    assert [d["timing"]["repeat"]["when"] for d in dosages] == [["MORN"], ["HS"]]
    assert [d.get("asNeededBoolean") for d in dosages] == [None, True]


def test_v23_quantity_timing_in_rxe1(rde: Mapping) -> None:
    rxe1 = "1^Q6H&0600,1200,1800,2400^X20^202406010600^202406060600^A"
    found = request(rde, rde_message(order(rxe={1: rxe1}, tq1=None)))
    repeat = found["dosageInstruction"][0]["timing"]["repeat"]
    assert repeat["timeOfDay"] == ["06:00:00", "12:00:00", "18:00:00", "00:00:00"]
    assert repeat["count"] == 20
    assert repeat["boundsPeriod"] == {
        "start": "2024-06-01T06:00:00-05:00",
        "end": "2024-06-06T06:00:00-05:00",
    }
    assert found["priority"] == "asap"


def test_v23_quantity_timing_falls_back_to_orc7(rde: Mapping) -> None:
    found = request(rde, rde_message(order(orc={7: "1^BID^D5"}, tq1=None)))
    repeat = found["dosageInstruction"][0]["timing"]["repeat"]
    assert repeat["frequency"] == 2
    assert repeat["boundsDuration"] == {"value": 5, "unit": "d", "system": UCUM, "code": "d"}


def test_tq1_after_rxe_wins_over_tq1_after_orc(rde: Mapping) -> None:
    group = [*order(tq1={1: "1", 3: "QD"}), segment("TQ1", {1: "1", 3: "TID"})]
    timing = request(rde, rde_message(group))["dosageInstruction"][0]["timing"]
    assert timing["code"] == {"text": "TID"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0800", "08:00:00"),
        ("083015", "08:30:15"),
        ("08:30", "08:30:00"),
        ("2400", "00:00:00"),
        ("", None),
    ],
)
def test_time_of_day(value: str, expected: str | None) -> None:
    assert time_of_day(value, "TQ1-4") == expected


@pytest.mark.parametrize(
    ("rxr", "route", "v3", "site"),
    [
        ("RXR|PO^Oral^HL70162", "PO", "PO", None),
        ("RXR|IV", "IV", "IVINJ", None),
        ("RXR|SC^^HL70162|LD^Left Deltoid^HL70163", "SC", "SQ", "LD"),
        ("RXR|IH|RN", "IH", None, "RN"),
    ],
)
def test_route_and_site_through_tables(
    rde: Mapping, rxr: str, route: str, v3: str | None, site: str | None
) -> None:
    dosage = request(rde, rde_message(order(rxr=rxr)))["dosageInstruction"][0]
    codings = dosage["route"]["coding"]
    assert codings[0]["system"] == "http://terminology.hl7.org/CodeSystem/v2-0162"
    assert codings[0]["code"] == route
    assert [c["code"] for c in codings[1:]] == ([v3] if v3 else [])
    if site:
        assert dosage["site"]["coding"][0]["code"] == site
        assert dosage["site"]["coding"][0]["system"].endswith("v2-0163")


def test_route_from_another_system_keeps_it(rde: Mapping) -> None:
    dosage = request(rde, rde_message(order(rxr="RXR|26643006^Oral route^SCT")))[
        "dosageInstruction"
    ][0]
    assert dosage["route"]["coding"] == [
        {"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral route"}
    ]


@pytest.mark.parametrize(
    ("code", "v3"), [("N", "N"), ("G", "G"), ("T", "TE"), ("1", "N"), ("", None), ("7", None)]
)
def test_substitution_from_table_0167(rde: Mapping, code: str, v3: str | None) -> None:
    found = request(rde, rde_message(order(rxe={9: code})))
    if v3 is None:
        assert "substitution" not in found
    else:
        assert found["substitution"]["allowedCodeableConcept"]["coding"][0]["code"] == v3


def test_dispense_request_and_authoring(rde: Mapping) -> None:
    found = request(rde, rde_message(order(orc={15: "20240601080000"})))
    assert found["dispenseRequest"] == {
        "quantity": {"value": 30, "unit": "tablet"},
        "numberOfRepeatsAllowed": 1,
        "validityPeriod": {
            "start": "2024-06-01T08:00:00-05:00",
            "end": "2024-06-08T12:00:00-05:00",
        },
    }
    assert found["authoredOn"] == "2024-06-01T11:00:00-05:00"
    assert found["requester"] == {"display": "DR ANNIKA ROWE"}


def test_notes_and_indications(rde: Mapping) -> None:
    group = [
        *order(rxe={27: "I10^Hypertension^I10C~R51^Headache^I10C"}),
        "NTE|1||Crush if needed.~Give with food.",
        "NTE|2||",
        "NTE|3||Second note.",
    ]
    found = request(rde, rde_message(group))
    assert [c["coding"][0]["code"] for c in found["reasonCode"]] == ["I10", "R51"]
    assert found["note"] == [
        {"text": "Crush if needed.\nGive with food."},
        {"text": "Second note."},
    ]


# ---- errors name fields, never values ---------------------------------------------------

PHI = ("ROWE", "TAMSIN", "MG001234", "ORD-1", "197361", "amlodipine", "abc", "2024-13")


@pytest.mark.parametrize(
    ("groups", "field"),
    [
        ([order(orc={1: "ZZ"})], "ORC-1"),
        ([order(orc={1: "UA"})], "ORC-1"),
        ([order(orc={2: "", 3: ""})], "ORC-2"),
        ([order(rxe={2: ""})], "RXE-2"),
        ([order(rxe={3: "abc"})], "RXE-3"),
        ([order(rxe={4: "5 mg"})], "RXE-4"),
        ([order(rxe={10: "abc"})], "RXE-10"),
        ([order(rxe={12: "1.5"})], "RXE-12"),
        ([order(rxe={12: "-1"})], "RXE-12"),
        ([order(rxe={23: "fast"})], "RXE-23"),
        ([order(orc={9: "2024-13-01"})], "ORC-9"),
        ([order(tq1={1: "1", 3: "QD", 7: "20241301"})], "TQ1-7"),
        ([order(tq1={1: "1", 3: "QD", 4: "8am"})], "TQ1-4"),
        ([order(tq1={1: "1", 3: "QD", 14: "abc"})], "TQ1-14"),
        ([order(rxe={1: "1^Q6H&25:00"}, tq1=None)], "RXE-1.2"),
        ([order(), order(orc={2: "ORD-2"}, rxe={3: "abc"})], "RXE[2]-3"),
        ([order(), order(orc={1: "ZZ", 2: "ORD-2"})], "ORC[2]-1"),
        ([order(), order()], "ORC-2"),
    ],
)
def test_bad_input_fails_naming_the_field_and_no_value(
    rde: Mapping, groups: list[list[str]], field: str
) -> None:
    checks.check_error(rde, rde_message(*groups), field, phi=PHI)


def test_order_without_rxe_fails_naming_rxe(rde: Mapping) -> None:
    raw = rde_message(["ORC|NW|ORD-1^EHR"])
    checks.check_error(rde, raw, "RXE")


def test_rxe_without_orc_fails_naming_orc2(rde: Mapping) -> None:
    checks.check_error(rde, rde_message(order()[1:]), "ORC-2")


def test_missing_pid_fails_naming_pid3(rde: Mapping) -> None:
    checks.check_error(rde, rde_message(pid="PD1|||CLINIC", pv1=None), "PID-3")


def test_non_rde_message_fails_naming_msh9(rde: Mapping) -> None:
    checks.check_error(rde, rde_message().replace(b"RDE^O11", b"ORM^O01"), "MSH-9")


def test_words_in_a_code_field_are_text_and_versions_are_kept(rde: Mapping) -> None:
    found = request(
        rde, rde_message(order(rxe={2: "197361^amlodipine^RXNORM^^^^2024-06", 7: "Take with food"}))
    )
    assert found["medicationCodeableConcept"]["coding"][0]["version"] == "2024-06"
    assert found["dosageInstruction"][0]["additionalInstruction"] == [{"text": "Take with food"}]


def test_an_obx_note_is_not_an_order_note(rde: Mapping) -> None:
    group = [*order(), "NTE|1||Order note.", "OBX|1|NM|3141-9^Weight^LN||72|kg", "NTE|1||OBX note."]
    assert request(rde, rde_message(group))["note"] == [{"text": "Order note."}]


def test_a_second_rxe_in_one_order_fails_instead_of_being_lost(rde: Mapping) -> None:
    group = [*order(), segment("RXE", RXE)]
    checks.check_error(rde, rde_message(group), "RXE[2]")
