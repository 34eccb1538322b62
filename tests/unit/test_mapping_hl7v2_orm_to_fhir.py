"""hl7v2-orm-to-fhir@1: every fixture, valid FHIR, one ServiceRequest per order that every
order control updates in place, and errors without PHI."""

from __future__ import annotations

import pytest

from engine.mapping import Mapping, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, check_transaction, of_type, run, segment

FIXTURES = checks.Fixtures("hl7v2-orm-to-fhir@1")
ADT_FIXTURES = checks.Fixtures("hl7v2-adt-to-fhir@1")

orm = checks.mapping_fixture(FIXTURES.ref)


PID = "PID|1||RB7781204^^^RIVERBEND^MR||HOLLOWAY^PRUDENCE^M^^^^L||19660214|F"


def orc(**fields: str) -> str:
    """A new order ORD-1 (placer) unless `fields` (f<N>=...) say otherwise."""
    base = {1: "NW", 2: "ORD-1^EHR", 9: "20240520081400", 12: "77^OKAFOR^CHIDI^^^DR^MD"}
    base.update({int(k[1:]): v for k, v in fields.items()})
    return segment("ORC", base)


def obr(**fields: str) -> str:
    base = {1: "1", 2: "ORD-1^EHR", 4: "2160-0^Creatinine^LN"}
    base.update({int(k[1:]): v for k, v in fields.items()})
    return segment("OBR", base)


def order_message(
    *body: str, msh9: str = "ORM^O01", facility: str = "RIVERBEND_HOSP", pid: str = PID,
    receiver: str = "RIVERBEND_LAB", msh7: str = "20240520081502-0500",
) -> bytes:
    segments = [
        f"MSH|^~\\&|EHR|{facility}|LIS|{receiver}|{msh7}||{msh9}|CTRL1|P|2.5.1",
        pid,
        *(body or (orc(), obr())),
    ]
    return ("\r".join(segments) + "\r").encode()


def request_of(mapping: Mapping, *body: str, **kwargs: str) -> dict:
    (request,) = of_type(bundle_of(mapping, order_message(*body, **kwargs)), "ServiceRequest")
    return request


# ---- fixtures, valid FHIR, deterministic ids -------------------------------------------


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=6, output=check_transaction)


def test_every_order_control_updates_the_same_service_request(orm: Mapping) -> None:
    new = request_of(orm, orc(f1="NW"), obr())
    held = request_of(orm, orc(f1="HD"), obr())
    cancelled = request_of(orm, orc(f1="CA", f3="L-77^LIS"), obr(f3="L-77^LIS"))
    assert new["id"] == held["id"] == cancelled["id"]
    assert [r["status"] for r in (new, held, cancelled)] == ["active", "on-hold", "revoked"]


def test_fixtures_for_one_order_share_its_id(orm: Mapping) -> None:
    placed = bundle_of(orm, FIXTURES.input("epic_new_orders"))
    completed = bundle_of(orm, FIXTURES.input("status_changed_completed_escapes"))
    a1c = of_type(placed, "ServiceRequest")[1]
    assert a1c["id"] == of_type(completed, "ServiceRequest")[0]["id"]
    assert of_type(completed, "ServiceRequest")[0]["status"] == "completed"


def test_filler_number_identifies_an_order_without_a_placer_number(orm: Mapping) -> None:
    one = request_of(orm, orc(f2="", f3="L-9^LIS"), obr(f2="", f3="L-9^LIS"))
    two = request_of(orm, orc(f2="", f3="L-9^LIS", f1="DC"), obr(f2="", f3="L-9^LIS"))
    assert one["id"] == two["id"]
    assert [i["type"]["coding"][0]["code"] for i in one["identifier"]] == ["FILL"]


def test_another_facility_gets_another_order(orm: Mapping) -> None:
    here = request_of(orm, facility="RIVERBEND_HOSP")
    there = request_of(orm, facility="NORTHGATE_CLINIC")
    assert here["id"] != there["id"]


def test_patient_is_the_one_the_adt_feed_made(orm: Mapping) -> None:
    ordered = bundle_of(orm, FIXTURES.input("cerner_cancel_order"))
    checks.check_same_patient(
        of_type(ordered, "Patient")[0], ADT_FIXTURES.input("cerner_a04_register")
    )


# ---- errors name fields, never values ---------------------------------------------------

PHI = ("RB7781204", "HOLLOWAY", "PRUDENCE", "19660214", "ORD-1", "OKAFOR", "Creatinine")


@pytest.mark.parametrize("msh9", ["ORU^R01", "OML^O33", "ORM^O02", "ADT^A01", "RDE^O11"])
def test_other_message_types_fail_naming_msh9(orm: Mapping, msh9: str) -> None:
    checks.check_error(orm, order_message(msh9=msh9), "MSH-9", values=PHI)


@pytest.mark.parametrize("msh9", ["ORM", "ORM^O01^ORM_O01", "OML^O21^OML_O21"])
def test_order_message_types_are_read(orm: Mapping, msh9: str) -> None:
    assert request_of(orm, msh9=msh9)["status"] == "active"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (("NTE|1||just a note",), "ORC"),
        ((orc(f2=""), obr(f2="")), "ORC-2"),
        ((orc(), obr(), orc(f1="NW"), obr()), "ORC-2"),
        ((orc(f1="NW", f9="20240230"), obr()), "ORC-9"),
        ((orc(), segment("TQ1", {1: "1", 7: "20241301"}), obr()), "TQ1-7"),
        ((orc(), obr(), segment("SPM", {1: "1", 17: "2024x"})), "SPM-17"),
    ],
)
def test_bad_input_fails_naming_the_field_and_no_value(
    orm: Mapping, body: tuple[str, ...], field: str
) -> None:
    checks.check_error(orm, order_message(*body), field, values=PHI)


def test_a_second_patient_fails_naming_pid(orm: Mapping) -> None:
    raw = order_message(orc(), obr(), "PID|2||RB0000001^^^RIVERBEND^MR||OTHER^PERSON",
                        orc(f2="ORD-2"), obr(f2="ORD-2"))
    checks.check_error(orm, raw, "PID", values=PHI)


def test_missing_pid_fails_naming_pid3(orm: Mapping) -> None:
    checks.check_error(orm, order_message(pid="PV1|1|O"), "PID-3", values=PHI)


def test_drug_orders_alone_are_skipped(orm: Mapping) -> None:
    raw = order_message(orc(), "RXO|197361^Amlodipine 5 MG^RXNORM|5")
    assert run(orm, raw) == Skip(
        "ORM^O01 holds only pharmacy, diet or supply orders, not mapped by this version"
    )


def test_drug_orders_beside_a_lab_order_are_left_out(orm: Mapping) -> None:
    raw = order_message(orc(f2="RX-1"), "RXO|197361^Amlodipine 5 MG^RXNORM|5", orc(), obr())
    (request,) = of_type(bundle_of(orm, raw), "ServiceRequest")
    assert request["identifier"][0]["value"] == "ORD-1"


# ---- status, intent, priority, dates ------------------------------------------------------


@pytest.mark.parametrize(
    ("control", "order_status", "status"),
    [
        ("NW", "", "active"), ("XO", "", "active"), ("RL", "", "active"),
        ("CA", "", "revoked"), ("OC", "", "revoked"), ("DC", "", "revoked"),
        ("OD", "", "revoked"), ("CR", "", "revoked"),
        ("HD", "", "on-hold"), ("OH", "", "on-hold"), ("HR", "", "on-hold"),
        ("SC", "CM", "completed"), ("SC", "IP", "active"), ("SC", "CA", "revoked"),
        ("SC", "HD", "on-hold"), ("SC", "ER", "entered-in-error"), ("SC", "", "unknown"),
        ("NW", "HD", "on-hold"), ("ZZ", "", "unknown"), ("nw", "", "active"),
    ],
)
def test_status_follows_order_control_and_order_status(
    orm: Mapping, control: str, order_status: str, status: str
) -> None:
    request = request_of(orm, orc(f1=control, f5=order_status), obr())
    assert (request["status"], request["intent"]) == (status, "order")


@pytest.mark.parametrize(
    ("segments", "priority"),
    [
        ((orc(f7="^^^^^R"), segment("TQ1", {1: "1", 9: "S^Stat^HL70485"}), obr()), "stat"),
        ((orc(f7="^^^^^A"), obr()), "asap"),
        ((orc(), obr(f27="^^^^^R")), "routine"),
        ((orc(), obr(f5="STAT")), "stat"),
        ((orc(f7="^^^^^P"), obr()), None),
        ((orc(), obr()), None),
    ],
)
def test_priority_reads_tq1_then_the_timing_fields(
    orm: Mapping, segments: tuple[str, ...], priority: str | None
) -> None:
    assert request_of(orm, *segments).get("priority") == priority


def test_oml_reads_tq1_between_orc_and_obr(orm: Mapping) -> None:
    request = request_of(
        orm, orc(), segment("TQ1", {1: "1", 7: "202405201000", 9: "A"}), obr(),
        "NTE|1||after the OBR", msh9="OML^O21",
    )
    assert request["priority"] == "asap"
    assert request["occurrenceDateTime"] == "2024-05-20T10:00:00-05:00"
    assert request["note"] == [{"text": "after the OBR"}]


@pytest.mark.parametrize(("control", "authored"), [("NW", True), ("RO", True), ("CA", False),
                                                   ("XO", False), ("SC", False)])
def test_authored_on_is_the_time_a_new_order_was_placed(
    orm: Mapping, control: str, authored: bool
) -> None:
    request = request_of(orm, orc(f1=control), obr())
    assert request.get("authoredOn") == ("2024-05-20T08:14:00-05:00" if authored else None)


def test_requester_is_orc12_else_obr16(orm: Mapping) -> None:
    assert request_of(orm)["requester"] == {"display": "DR CHIDI OKAFOR, MD"}
    request = request_of(orm, orc(f12=""), obr(f16="88^RUIZ^ANA^^^^MD"))
    assert request["requester"] == {"display": "ANA RUIZ, MD"}


def test_identifiers_and_requisition(orm: Mapping) -> None:
    request = request_of(orm, orc(f3="L-5", f4="G-1^EHR"), obr(f3="L-5"))
    assert request["identifier"] == [
        {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                              "code": "PLAC", "display": "Placer Identifier"}]},
         "system": "urn:conduit:id:EHR", "value": "ORD-1"},
        {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                              "code": "FILL", "display": "Filler Identifier"}]},
         "system": "urn:conduit:id:RIVERBEND_LAB", "value": "L-5"},
    ]
    assert request["requisition"]["value"] == "G-1"
    assert request["requisition"]["type"]["coding"][0]["code"] == "PGN"


def test_reasons_come_from_obr31_and_dg1_once_each(orm: Mapping) -> None:
    request = request_of(
        orm, orc(), obr(f31="E11.9^Type 2 diabetes^I10C~R53.83^Fatigue^I10"),
        "DG1|1||E11.9^Type 2 diabetes^I10C||||W",
    )
    assert [(r["coding"][0]["system"], r["coding"][0]["code"]) for r in request["reasonCode"]] == [
        ("http://hl7.org/fhir/sid/icd-10-cm", "E11.9"),
        ("http://hl7.org/fhir/sid/icd-10", "R53.83"),
    ]


def test_notes_are_the_orders_own_comments(orm: Mapping) -> None:
    request = request_of(
        orm, orc(), "NTE|1||about the order", obr(), "NTE|2||about the test",
        "OBX|1|ST|Q^Question^L||A", "NTE|3||about the answer",
    )
    assert request["note"] == [{"text": "about the order"}, {"text": "about the test"}]


def test_specimens_from_spm_and_from_obr15(orm: Mapping) -> None:
    oml = bundle_of(orm, order_message(
        orc(), obr(), segment("SPM", {1: "1", 2: "S-1&EHR", 4: "BLD^Blood^HL70487",
                                  17: "202405200800"}), msh9="OML^O21",
    ))
    (specimen,) = of_type(oml, "Specimen")
    assert specimen["identifier"][0]["value"] == "S-1"
    assert specimen["collection"] == {"collectedDateTime": "2024-05-20T08:00:00-05:00"}
    assert of_type(oml, "ServiceRequest")[0]["specimen"] == [
        {"reference": f"urn:uuid:{specimen['id']}"}
    ]
    orm_bundle = bundle_of(orm, order_message(orc(), obr(f15="UR&Urine&HL70070")))
    assert of_type(orm_bundle, "Specimen")[0]["type"]["coding"][0]["code"] == "UR"
    check_transaction(oml)
    check_transaction(orm_bundle)


def test_a_cancel_with_only_orc_still_updates_the_order(orm: Mapping) -> None:
    request = request_of(orm, orc(f1="CA"))
    assert request["status"] == "revoked"
    assert "code" not in request
    assert request["id"] == request_of(orm)["id"]
