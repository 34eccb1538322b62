"""hl7v2-orm-to-fhir@2: every kind of order an ORM carries (service, pharmacy, diet,
supply) lands where a receiver looks for it; the same order keeps v1's ServiceRequest id
and the ADT feed's Patient; one odd field costs that field, with a located warning."""

from __future__ import annotations

import json

import pytest

from engine import testbench
from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_to_fhir import orders, people, specimens
from engine.maplib.v2_to_fhir.frame import Build
from engine.mapping import Mapping
from engine.mapping_base import Mapped, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import (
    bundle_of,
    check_transaction,
    mapped,
    of_type,
    only,
    resolve,
    segment,
    warnings_of,
)

FIXTURES = checks.Fixtures("hl7v2-orm-to-fhir@2")
V1_FIXTURES = checks.Fixtures("hl7v2-orm-to-fhir@1")

orm = checks.mapping_fixture(FIXTURES.ref)
orm_v1 = checks.mapping_fixture(V1_FIXTURES.ref)

PID = "PID|1||RB7781204^^^RIVERBEND^MR||HOLLOWAY^PRUDENCE^M^^^^L||19660214|F"
PV1 = "PV1|1|O|RBCLIN^^^RIVERBEND||||||||||||||||RBV0101200^^^RIVERBEND^VN"


def orc(**fields: str) -> str:
    base = {1: "NW", 2: "ORD-1^EHR", 9: "20240520081400", 12: "77^OKAFOR^CHIDI^^^DR^MD"}
    base.update({int(k[1:]): v for k, v in fields.items()})
    return segment("ORC", {k: v for k, v in base.items() if v})


def obr(**fields: str) -> str:
    base = {1: "1", 2: "ORD-1^EHR", 4: "2160-0^Creatinine^LN"}
    base.update({int(k[1:]): v for k, v in fields.items()})
    return segment("OBR", {k: v for k, v in base.items() if v})


def message(*body: str, msh9: str = "ORM^O01", control: str = "CTRL1",
            msh7: str = "20240520081502-0500", pid: str = PID) -> bytes:
    segments = [f"MSH|^~\\&|EHR|RIVERBEND_HOSP|LIS|RIVERBEND_LAB|{msh7}||{msh9}|{control}|P|"
                "2.5.1", pid, PV1, *(body or (orc(), obr()))]
    return ("\r".join(segments) + "\r").encode()


def output(mapping: Mapping, raw: bytes) -> dict:
    return json.loads(mapped(mapping, raw).output)


# ---- fixtures ------------------------------------------------------------------------------


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=14, min_outputs=14,
                                    output=check_transaction)


def test_fixtures_cover_every_kind_of_order(orm: Mapping) -> None:
    kinds = set()
    for case in FIXTURES.output_cases:
        kinds |= {e["resource"]["resourceType"] for e in bundle_of(orm, FIXTURES.input(case))[
            "entry"]}
    assert {"ServiceRequest", "MedicationRequest", "NutritionOrder", "SupplyRequest",
            "Specimen", "Observation", "Condition"} <= kinds


# ---- ids: the same order and patient as the other feeds -------------------------------------


@pytest.mark.parametrize("case", ["epic_new_orders", "cerner_cancel_order",
                                  "meditech_hold_order", "custom_delimiters_discontinue",
                                  "status_changed_completed_escapes"])
def test_service_request_and_specimen_ids_are_v1s(orm: Mapping, orm_v1: Mapping,
                                                  case: str) -> None:
    raw = V1_FIXTURES.input(case)
    before, after = bundle_of(orm_v1, raw), bundle_of(orm, raw)
    for kind in ("ServiceRequest", "Specimen", "Patient"):
        assert [r["id"] for r in of_type(after, kind)] == [r["id"] for r in of_type(before, kind)]


def test_patient_is_the_adt_feeds(orm: Mapping) -> None:
    adt = ("MSH|^~\\&|EHR|RIVERBEND_HOSP|ADT|RIVERBEND_HOSP|20240520080000-0500||ADT^A04|A1|P|"
           f"2.5.1\rEVN|A04|20240520080000-0500\r{PID}\r{PV1}\r").encode()
    checks.check_same_patient(only(bundle_of(orm, message()), "Patient"), adt)


def test_patient_account_is_the_adt_feeds(orm: Mapping) -> None:
    pid = PID + "||||||||||RBA-5512^^^RIVERBEND^AN"  # PID-18
    adt = ("MSH|^~\\&|EHR|RIVERBEND_HOSP|ADT|RIVERBEND_HOSP|20240520080000-0500||ADT^A04|A1|"
           f"P|2.5.1\rEVN|A04|20240520080000-0500\r{pid}\r{PV1}\r").encode()
    adt_v3 = checks.mapping("hl7v2-adt-to-fhir@3")
    (expected,) = of_type(bundle_of(adt_v3, adt), "Account")
    bundle = bundle_of(orm, message(pid=pid))
    assert only(bundle, "Account")["id"] == expected["id"]
    assert only(bundle, "Encounter")["account"] == [{"reference": f"urn:uuid:{expected['id']}"}]


def test_new_change_and_cancel_update_one_service_request(orm: Mapping) -> None:
    ids = {only(bundle_of(orm, message(orc(f1=control), obr(), control=control)),
                "ServiceRequest")["id"] for control in ("NW", "XO", "HD", "CA", "DC")}
    assert len(ids) == 1


def test_a_results_feed_finds_the_order_it_answers(orm: Mapping) -> None:
    """The ORU comes from the lab to the hospital: the placer is its receiver."""
    placed = only(bundle_of(orm, message()), "ServiceRequest")
    oru = Hl7Message.parse("MSH|^~\\&|LIS|RIVERBEND_LAB|EHR|RIVERBEND_HOSP|20240520120000-0500"
                           "||ORU^R01|R1|P|2.5.1\r" + PID + "\r" + orc(f1="RE") + "\r"
                           + obr(f3="L-9^LIS", f25="F") + "\r")
    b = Build(oru, "ORU")
    assert orders.request_id(b, oru.segment("ORC"), oru.segment("OBR")) == placed["id"]


def test_contract_functions_give_nothing_for_nothing() -> None:
    """orders.service_request and specimens.specimen, which the results builders call,
    make nothing of an order or specimen segment that names nothing."""
    parsed = Hl7Message.parse(message(orc(), obr(), "SPM|1").decode())
    b = Build(parsed, "ORM")
    people.patient(b)
    assert orders.service_request(b, None, None) is None
    assert specimens.specimen(b, parsed.segment("SPM")) is None
    made = orders.service_request(b, parsed.segment("ORC"), parsed.segment("OBR"))
    assert made is not None and made["id"] == orders.request_id(
        b, parsed.segment("ORC"), parsed.segment("OBR"))


# ---- ServiceRequest ------------------------------------------------------------------------


@pytest.mark.parametrize(("control", "order_status", "expected"), [
    ("NW", "", "active"), ("CA", "", "revoked"), ("OC", "", "revoked"),
    ("DC", "", "revoked"), ("HD", "", "on-hold"), ("XO", "", "active"),
    ("SC", "CM", "completed"), ("SC", "IP", "active"), ("ZZ", "", "unknown"),
])
def test_status_from_order_control_and_order_status(orm: Mapping, control: str,
                                                    order_status: str, expected: str) -> None:
    request = only(bundle_of(orm, message(orc(f1=control, f5=order_status), obr())),
                   "ServiceRequest")
    assert request["status"] == expected


@pytest.mark.parametrize(("control", "action", "intent"), [
    ("NW", "", "order"), ("NW", "G", "reflex-order"), ("SN", "", "filler-order")])
def test_intent(orm: Mapping, control: str, action: str, intent: str) -> None:
    request = only(bundle_of(orm, message(orc(f1=control), obr(f11=action))), "ServiceRequest")
    assert request["intent"] == intent


def test_identifiers_placer_filler_and_group(orm: Mapping) -> None:
    request = only(bundle_of(orm, message(orc(f3="L-77^LIS", f4="GRP-9^EHR"),
                                          obr(f3="L-77^LIS"))), "ServiceRequest")
    kinds = {i["type"]["coding"][0]["code"]: i["value"] for i in request["identifier"]}
    assert kinds == {"PLAC": "ORD-1", "FILL": "L-77"}
    assert request["requisition"]["value"] == "GRP-9"
    assert request["requisition"]["type"]["coding"][0]["code"] == "PGN"


@pytest.mark.parametrize(("body", "expected"), [
    ((orc(), "TQ1|1||||||||S^Stat^HL70485", obr()), "stat"),
    ((orc(f7="^^^^^A"), obr()), "asap"),
    ((orc(), obr(f27="^^^^^R")), "routine"),
    ((orc(), obr(f5="S")), "stat"),
])
def test_priority_from_tq1_orc7_obr27_obr5(orm: Mapping, body: tuple, expected: str) -> None:
    assert only(bundle_of(orm, message(*body)), "ServiceRequest")["priority"] == expected


def test_code_category_reason_and_notes(orm: Mapping) -> None:
    bundle = bundle_of(orm, message(
        orc(), obr(f4="71046^XR CHEST 2 VIEWS^C4", f13="Cough 6 weeks", f24="RAD",
                   f31="R05.3^Chronic cough^I10"), "NTE|1||Portable if possible"))
    request = only(bundle, "ServiceRequest")
    assert request["code"]["coding"][0] == {"system": "http://www.ama-assn.org/go/cpt",
                                            "code": "71046", "display": "XR CHEST 2 VIEWS"}
    assert request["category"][0]["coding"][0]["code"] == "RAD"
    assert request["reasonCode"][0]["coding"][0]["code"] == "R05.3"
    assert [n["text"] for n in request["note"]] == [
        "Portable if possible", "Relevant clinical information: Cough 6 weeks"]


def test_a_lab_order_message_without_section_has_no_category(orm: Mapping) -> None:
    assert "category" not in only(bundle_of(orm, message()), "ServiceRequest")


def orderer(bundle: dict, request: dict) -> dict:
    """The Practitioner behind a requester, which is the ordering provider's role."""
    role = resolve(bundle, request["requester"])
    assert role["resourceType"] == "PractitionerRole"
    assert role["code"][0]["coding"][0]["code"] == "OP"  # v2-0443 ordering provider
    return resolve(bundle, role["practitioner"])


def test_requester_is_the_ordering_providers_role_at_the_facility_if_sent(orm: Mapping
                                                                         ) -> None:
    """As the reference converter (and the v2-to-FHIR IG's ROL) does: ORC-12 acts as
    ordering provider, a PractitionerRole, with the ORC-21 facility when one is sent."""
    bundle = bundle_of(orm, message(orc(f12="1122334455^OKAFOR^CHIDI^^^DR^MD^^^^^^NPI"),
                                    obr()))
    request = only(bundle, "ServiceRequest")
    assert "organization" not in resolve(bundle, request["requester"])
    person = orderer(bundle, request)
    assert person["identifier"][0] == {
        "system": "http://hl7.org/fhir/sid/us-npi", "value": "1122334455",
        "type": person["identifier"][0]["type"]}
    bundle = bundle_of(orm, message(orc(f21="RIVERBEND CLINIC^^^^^RB^^^^RBC1"), obr()))
    role = resolve(bundle, only(bundle, "ServiceRequest")["requester"])
    assert role["resourceType"] == "PractitionerRole"
    assert resolve(bundle, role["organization"])["name"] == "RIVERBEND CLINIC"
    assert resolve(bundle, role["practitioner"])["name"][0]["family"] == "OKAFOR"


def test_requester_falls_back_to_obr16(orm: Mapping) -> None:
    bundle = bundle_of(orm, message(orc(f12=""), obr(f16="88^PATEL^ANIKA")))
    assert orderer(bundle, only(bundle, "ServiceRequest"))["name"][0]["family"] == "PATEL"


def test_timing_from_tq1(orm: Mapping) -> None:
    tq1 = segment("TQ1", {1: "1", 2: "3", 3: "QD^Every day^HL70335",
                          7: "20240601080000-0500", 8: "20240603080000-0500", 14: "3"})
    request = only(bundle_of(orm, message(orc(), tq1, obr())), "ServiceRequest")
    assert request["occurrenceTiming"] == {
        "repeat": {"boundsPeriod": {"start": "2024-06-01T08:00:00-05:00",
                                    "end": "2024-06-03T08:00:00-05:00"}, "count": 3},
        "code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0335",
                             "code": "QD", "display": "Every day"}]}}
    assert request["quantityQuantity"] == {"value": 3}


def test_start_only_is_a_date_time_and_authored_on_only_for_new_orders(orm: Mapping) -> None:
    tq1 = "TQ1|1||||||20240601080000-0500"
    new = only(bundle_of(orm, message(orc(f9="20240520081400-0500"), tq1, obr())),
               "ServiceRequest")
    assert new["occurrenceDateTime"] == "2024-06-01T08:00:00-05:00"
    assert new["authoredOn"] == "2024-05-20T08:14:00-05:00"
    cancel = bundle_of(orm, message(orc(f1="CA", f9="20240521090000-0500"), obr()))
    cancelled = only(cancel, "ServiceRequest")
    assert "authoredOn" not in cancelled
    target = [{"reference": f"urn:uuid:{cancelled['id']}"}]
    (change,) = [p for p in of_type(cancel, "Provenance") if p["target"] == target]
    assert change["recorded"] == "2024-05-21T09:00:00-05:00"
    assert change["activity"]["coding"][0]["code"] == "CA"


def test_entered_and_verified_by_are_a_provenance_of_the_order(orm: Mapping) -> None:
    bundle = bundle_of(orm, message(orc(f9="20240520081400-0500", f10="11^TILLMAN^JUNE",
                                        f11="12^OSEI^KWAME", f17="RBIM^Riverbend IM^L"),
                                    obr()))
    (provenance,) = [p for p in of_type(bundle, "Provenance") if len(p["target"]) == 1]
    roles = {a["type"]["coding"][0]["code"]: resolve(bundle, a["who"])["name"][0]["family"]
             for a in provenance["agent"]}
    assert roles == {"enterer": "TILLMAN", "verifier": "OSEI"}
    assert {resolve(bundle, a["onBehalfOf"])["name"] for a in provenance["agent"]} == {
        "Riverbend IM"}
    assert "occurredDateTime" not in provenance
    bundle = bundle_of(orm, message(orc(f15="20240601000000-0500"), obr()))
    (provenance,) = [p for p in of_type(bundle, "Provenance") if len(p["target"]) == 1]
    assert provenance["occurredDateTime"] == "2024-06-01T00:00:00-05:00"


def test_without_an_entering_organization_the_order_is_entered_for_the_sender(
        orm: Mapping) -> None:
    bundle = bundle_of(orm, message(orc(f9="20240520081400-0500", f10="11^TILLMAN^JUNE"),
                                    obr()))
    (provenance,) = [p for p in of_type(bundle, "Provenance") if len(p["target"]) == 1]
    (agent,) = provenance["agent"]
    sender = resolve(bundle, agent["onBehalfOf"])  # MSH-4, US Core's provenance-1
    assert (sender["resourceType"], sender["name"]) == ("Organization", "RIVERBEND_HOSP")


def test_reason_and_action_by_of_a_cancel(orm: Mapping) -> None:
    bundle = bundle_of(orm, message(orc(f1="CA", f9="20240521090000-0500",
                                        f16="DUP^Duplicate order^L", f19="13^NGUYEN^MAI"),
                                    obr()))
    (change,) = [p for p in of_type(bundle, "Provenance") if len(p["target"]) == 1]
    assert change["reason"] == [{"coding": [{
        "system": "urn:conduit:code:RIVERBEND_HOSP:L", "code": "DUP",
        "display": "Duplicate order"}]}]
    (agent,) = change["agent"]
    assert agent["type"]["coding"][0]["code"] == "performer"
    assert resolve(bundle, agent["who"])["name"][0]["family"] == "NGUYEN"


def test_parent_order_and_order_details(orm: Mapping) -> None:
    request = only(bundle_of(orm, message(orc(), obr(
        f29="PARENT-7&EHR^L-70&LIS", f46="FAST^Fasting required^L"))), "ServiceRequest")
    assert request["basedOn"] == [{"type": "ServiceRequest", "identifier": {
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                             "code": "PLAC", "display": "Placer Identifier"}]},
        "system": "urn:conduit:id:EHR", "value": "PARENT-7"}}]
    assert request["orderDetail"][0]["coding"][0]["code"] == "FAST"
    by_filler = only(bundle_of(orm, message(orc(), obr(f29="^L-70&LIS"))), "ServiceRequest")
    assert by_filler["basedOn"][0]["identifier"]["value"] == "L-70"
    assert by_filler["basedOn"][0]["identifier"]["type"]["coding"][0]["code"] == "FILL"


def test_v23_quantity_timing_interval_is_a_timing(orm: Mapping) -> None:
    request = only(bundle_of(orm, message(orc(f7="1^Q4H^^20240520100000-0500^^R"), obr())),
                   "ServiceRequest")
    assert request["occurrenceTiming"] == {
        "repeat": {"boundsPeriod": {"start": "2024-05-20T10:00:00-05:00"}},
        "code": {"text": "Q4H"}}
    assert request["priority"] == "routine"


def test_ordering_provider_address_and_callback_phone(orm: Mapping) -> None:
    bundle = bundle_of(orm, message(orc(f14="^WPN^PH^^^978^5550100",
                                        f24="1 Main St^^Ashby^MA^01431"), obr()))
    person = orderer(bundle, only(bundle, "ServiceRequest"))
    assert person["address"] == [{"line": ["1 Main St"], "city": "Ashby", "state": "MA",
                                  "postalCode": "01431"}]
    assert person["telecom"] == [{"system": "phone", "value": "(978) 555-0100",
                                  "use": "work"}]


def test_dg1_is_a_condition_the_order_gives_as_reason(orm: Mapping) -> None:
    bundle = bundle_of(orm, message(orc(), obr(), "DG1|1||N18.30^CKD stage 3^I10C|||W"))
    condition = only(bundle, "Condition")
    assert only(bundle, "ServiceRequest")["reasonReference"] == [
        {"reference": f"urn:uuid:{condition['id']}"}]
    assert condition["code"]["coding"][0]["code"] == "N18.30"


def test_ask_at_order_entry_answers_are_supporting_observations(orm: Mapping) -> None:
    bundle = bundle_of(orm, message(
        orc(), obr(), "OBX|1|CWE|49541-6^Fasting status^LN||Y^Yes^HL70136||||||O"))
    request, observation = only(bundle, "ServiceRequest"), only(bundle, "Observation")
    assert request["supportingInfo"] == [{"reference": f"urn:uuid:{observation['id']}"}]
    assert observation["basedOn"] == [{"reference": f"urn:uuid:{request['id']}"}]
    assert observation["valueCodeableConcept"]["coding"][0]["code"] == "Y"


LAB = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "laboratory", "display": "Laboratory"}]}]


SURVEY = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                       "code": "survey", "display": "Survey"}]}]


@pytest.mark.parametrize("section, unit, category", [
    ("CH", "", LAB), ("MB", "", LAB), ("", "", SURVEY), ("CT", "", SURVEY), ("EC", "", SURVEY),
    ("", "mg/dL^^UCUM", LAB), ("CT", "mg/dL^^UCUM", LAB)])
def test_a_lab_orders_answers_are_laboratory_observations(orm: Mapping, section: str,
                                                          unit: str, category: list) -> None:
    """A lab order's (OBR-24 a lab section) answers are laboratory results, as the lab's
    ORU reports them; an ORM order without a section, or an imaging or procedure order,
    says nothing of what its answers are: answers given at order entry (survey, as US
    Core wants one), unless a concentration says it is a lab value (its creatinine is
    not an imaging result)."""
    bundle = bundle_of(orm, message(
        orc(), obr(f24=section), f"OBX|1|NM|2160-0^Creatinine^LN||0.9|{unit}||||||F"))
    assert only(bundle, "Observation").get("category") == category


def test_a_method_specific_vital_sign_also_has_its_generic_code(orm: Mapping) -> None:
    bundle = bundle_of(orm, message(
        orc(), obr(f24="CH"), "OBX|1|NM|3141-9^Body weight Measured^LN||82.5|kg^^UCUM||||||O"))
    observation = only(bundle, "Observation")
    assert observation["code"]["coding"] == [
        {"system": "http://loinc.org", "code": "3141-9", "display": "Body weight Measured"},
        {"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]
    assert observation["category"][0]["coding"][0]["code"] == "vital-signs"


def test_old_specimen_source_in_obr15(orm: Mapping) -> None:
    bundle = bundle_of(orm, message(orc(), obr(
        f7="20240520070000-0500", f10="31^NURSE^ANA", f14="20240520073000-0500",
        f15="BLD&Blood&HL70070^^^LA&Left arm&HL70163")))
    specimen = only(bundle, "Specimen")
    assert specimen["type"]["coding"][0]["code"] == "BLD"
    assert specimen["collection"]["collectedDateTime"] == "2024-05-20T07:00:00-05:00"
    assert specimen["collection"]["bodySite"]["coding"][0]["code"] == "LA"
    assert specimen["receivedTime"] == "2024-05-20T07:30:00-05:00"
    assert resolve(bundle, specimen["collection"]["collector"])["name"][0]["family"] == "NURSE"
    assert only(bundle, "ServiceRequest")["specimen"] == [
        {"reference": f"urn:uuid:{specimen['id']}"}]


def test_an_orc_alone_is_a_service_request_whose_code_is_absent(orm: Mapping) -> None:
    request = only(bundle_of(orm, message(orc(f1="DC", f3="L-7^LIS"))), "ServiceRequest")
    assert request["status"] == "revoked"
    assert request["code"] == {"extension": [{
        "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
        "valueCode": "unknown"}]}


# ---- pharmacy, diet and supply orders ----------------------------------------------------------


def test_pharmacy_order_is_a_medication_request(orm: Mapping) -> None:
    bundle = bundle_of(orm, message(
        orc(f2="RX-1^EHR"), "RXO|860975^metFORMIN 500 MG Oral Tablet^RXNORM|500||mg^^UCUM",
        "RXR|PO^Oral^HL70162"))
    assert not of_type(bundle, "ServiceRequest")
    request = only(bundle, "MedicationRequest")
    medication = resolve(bundle, request["medicationReference"])
    assert medication["code"]["coding"][0]["code"] == "860975"
    assert request["dosageInstruction"][0]["route"]["coding"][0]["code"] == "PO"
    assert orderer(bundle, request)["name"][0]["family"] == "OKAFOR"


def test_diet_order_is_a_nutrition_order(orm: Mapping) -> None:
    bundle = bundle_of(orm, message(
        orc(f2="DIET-1^EHR", f9="20240520081400-0500"),
        "ODS|D|B~L|CARB^Consistent carbohydrate^L~PUREE^Pureed texture^L|No added salt",
        "ODS|S|L|ENSURE^Ensure Plus^L|With lunch", "ODT|EARLY^Early tray^L|B|By 0700"))
    diet = only(bundle, "NutritionOrder")
    assert diet["status"] == "active" and diet["intent"] == "order"
    assert diet["dateTime"] == "2024-05-20T08:14:00-05:00"
    oral = diet["oralDiet"]
    assert [c["coding"][0]["code"] for c in oral["type"]] == ["CARB"]
    assert oral["texture"][0]["modifier"]["coding"][0]["code"] == "PUREE"
    assert oral["instruction"] == "No added salt"
    assert oral["schedule"] == [{"repeat": {"when": ["CM", "CD"]}}]
    assert diet["supplement"][0]["type"]["coding"][0]["code"] == "ENSURE"
    assert diet["note"] == [{"text": "Tray: Early tray (B): By 0700"}]


def test_supply_order_is_a_supply_request(orm: Mapping) -> None:
    bundle = bundle_of(orm, message(
        orc(f2="SUP-1^EHR"),
        "RQD|1|4410022^Foley kit 16 Fr^MM||||EA^each^UCUM|||4E^4 East^DEPT|20240521",
        "RQ1||BARD^C.R. Bard^MFR||MCK^McKesson^VENDOR|||N"))
    supply = only(bundle, "SupplyRequest")
    assert supply["itemCodeableConcept"]["coding"][0]["code"] == "4410022"
    assert supply["quantity"] == {"value": 1, "unit": "each"}
    assert supply["occurrenceDateTime"] == "2024-05-21"
    assert resolve(bundle, supply["supplier"][0])["name"] == "McKesson"
    assert resolve(bundle, supply["deliverFrom"])["name"] == "C.R. Bard"
    assert resolve(bundle, supply["deliverTo"])["name"] == "4 East"
    assert supply["parameter"] == [{"code": {"text": "substitute allowed"},
                                    "valueBoolean": False}]


def test_one_message_of_several_kinds_keeps_them_apart(orm: Mapping) -> None:
    bundle = bundle_of(orm, message(orc(), obr(), orc(f2="RX-2^EHR"),
                                    "RXO|197361^Amlodipine 5 MG^RXNORM|5||mg^^UCUM"))
    assert len(of_type(bundle, "ServiceRequest")) == 1
    assert len(of_type(bundle, "MedicationRequest")) == 1


# ---- leniency ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "warning"), [
    ((orc(), obr(f5="Z")), "OBR-5: is not a priority code (S, A, R) this mapping knows"),
    ((orc(f9="20240230081400"), obr()), "ORC-9: holds a date/time that does not exist"),
    ((orc(), "TQ1|1||||||20240601080000+2500", obr()),
     "TQ1-7: holds a time zone offset that does not exist; read without it"),
    ((orc(), "TQ1|1|||||6^fortnights", obr()),
     "TQ1-6: has no unit of time this mapping knows (s, min, h, d, wk, mo, a)"),
    ((orc(f2=""), obr(f2="")),
     "ORC-2: has no placer or filler order number (nor ORC-3, OBR-2, OBR-3), so the order "
     "is identified by the message control id"),
])
def test_one_odd_field_is_a_located_warning(orm: Mapping, body: tuple, warning: str) -> None:
    raw = message(*body)
    assert warning in warnings_of(orm, raw)
    check_transaction(bundle_of(orm, raw))
    assert only(bundle_of(orm, raw), "ServiceRequest")["code"]["coding"][0]["code"] == "2160-0"


def test_an_order_that_cannot_be_mapped_costs_only_that_order(orm: Mapping) -> None:
    raw = message(orc(), obr(), orc(f2="SUP-9^EHR"), "RQD|1")
    assert "RQD-2: names no item (RQD-2, RQD-3 and RQD-4 are empty)" in warnings_of(orm, raw)
    bundle = bundle_of(orm, raw)
    assert len(of_type(bundle, "ServiceRequest")) == 1 and not of_type(bundle, "SupplyRequest")


def test_a_second_patients_orders_are_left_out_not_misfiled(orm: Mapping) -> None:
    other = "PID|1||RB0000999^^^RIVERBEND^MR||OTHER^PERSON||19700101|M"
    raw = message(orc(), obr(), other, orc(f2="ORD-2^EHR"), obr(f2="ORD-2^EHR"),
                  "DG1|1||E11.9^Diabetes^I10C")
    result = mapped(orm, raw)
    assert [str(w) for w in result.warnings] == [
        "PID[2]: is a second patient in an order message: its orders are left out; split "
        "the batch upstream"]
    bundle = json.loads(result.output)
    assert [r["identifier"][0]["value"] for r in of_type(bundle, "ServiceRequest")] == [
        "ORD-1"]
    assert not of_type(bundle, "Condition")
    assert "PID[2]-3" in result.left_behind and "ORC[2]-2" in result.left_behind


def test_order_without_number_is_keyed_on_the_message(orm: Mapping) -> None:
    first = only(bundle_of(orm, message(orc(f2=""), obr(f2=""))), "ServiceRequest")
    again = only(bundle_of(orm, message(orc(f2=""), obr(f2=""))), "ServiceRequest")
    other = only(bundle_of(orm, message(orc(f2=""), obr(f2=""), control="CTRL2")),
                 "ServiceRequest")
    assert first["id"] == again["id"] != other["id"]


def test_warnings_show_no_values_from_the_message() -> None:
    raw = FIXTURES.input("messy_bad_values_warnings")
    values = {v for seg in raw.decode().split("\r") for f in seg.split("|")[1:]
              for v in f.replace("^", "&").split("&") if len(v) > 2}
    texts = (FIXTURES.folder / "messy_bad_values_warnings.warnings").read_text()
    assert texts.strip()
    for line in texts.splitlines():
        reason = line.split(": ", 1)[1]
        assert not [v for v in values if v in reason], line


def test_a_message_without_orders_still_maps_its_patient(orm: Mapping) -> None:
    result = testbench.run_mapping(checks.mapping(FIXTURES.ref), message("NTE|1||nothing"))
    assert isinstance(result, Mapped)
    (warning,) = [str(w) for w in result.warnings if str(w).startswith("ORC:")]
    assert "only its patient is mapped" in warning
    bundle = json.loads(result.output)
    assert len(of_type(bundle, "Patient")) == 1 and not of_type(bundle, "ServiceRequest")


def test_only_a_message_with_nothing_to_map_fails(orm: Mapping) -> None:
    no_pid = ("MSH|^~\\&|EHR|RIVERBEND_HOSP|LIS|RIVERBEND_LAB|20240520081502-0500||ORM^O01|"
              f"C9|P|2.5.1\r{orc()}\r{obr()}\r").encode()
    checks.check_error(orm, no_pid, "PID-3")
    checks.check_error(orm, message(msh9="ORU^R01"), "MSH-9")
    assert isinstance(testbench.run_mapping(
        checks.mapping(FIXTURES.ref), message(msh9="ORM^O02")), Skip)


def test_same_message_same_bytes(orm: Mapping) -> None:
    raw = message(orc(f10="11^TILLMAN^JUNE"), obr(), "DG1|1||N18.30^CKD^I10C",
                  "OBX|1|NM|3141-9^Weight^LN||82|kg^^UCUM||||||O")
    checks.check_deterministic(orm, raw)
