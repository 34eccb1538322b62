"""hl7v2-dft-to-fhir@1: every fixture as valid R4; each FT1's facts on its ChargeItem
where the reference puts them (date, code, quantity, price, diagnoses, performer,
procedure, NDC); the charges on the patient's Account; odd fields as located warnings
that hold no values; ids stable across resends."""

from __future__ import annotations

from engine.maplib.v2_to_fhir import dft
from engine.mapping import Mapping, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, of_type, only, resolve, run, warnings_of

FIXTURES = checks.Fixtures("hl7v2-dft-to-fhir@1")
to_fhir = checks.mapping_fixture(FIXTURES.ref)
CPT = "http://www.ama-assn.org/go/cpt"

HEAD = ("MSH|^~\\&|PB|ORCHARD|CONDUIT|HUB|20240501120000-0400||DFT^{event}^DFT_P03|"
        "D{event}|P|2.5.1")
PID = checks.segment("PID", {1: "1", 3: "OR-77^^^ORCHARD^MR", 5: "FINCH^ADA^^^^^L",
                             7: "19810909", 8: "F", 18: "OA-77^^^ORCHARD^AN"})
PV1 = checks.segment("PV1", {1: "1", 2: "O", 19: "OV-77^^^ORCHARD^VN"})
FT1 = checks.segment("FT1", {
    1: "1", 2: "T-1", 4: "20240430101500", 5: "20240501", 6: "CG",
    7: "99213^Office visit^C4", 10: "1", 11: "120.00&USD",
    19: "J45.909^Asthma, uncomplicated^I10", 20: "3301^VOSS^KARL^^^DR",
    21: "3302^IYER^MAYA^^^DR", 24: "c12^CLERK^PAT", 25: "99213^^C4",
    29: "0173-0682-20^Albuterol inhaler^NDC"})


def message(*segments: str, event: str = "P03", pid: str | None = PID) -> bytes:
    lines = [HEAD.format(event=event), f"EVN|{event}|20240501120000",
             *([pid] if pid else []), *segments]
    return ("\r".join(lines) + "\r").encode()


def charge(bundle: dict) -> dict:
    return only(bundle, "ChargeItem")


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=10, min_outputs=8,
                                    output=checks.check_transaction)


def test_declares_its_events_and_every_resource_its_bundles_hold(to_fhir: Mapping) -> None:
    assert dft.EVENTS == ("P03", "P11")
    made = {e["resource"]["resourceType"]
            for case in FIXTURES.output_cases
            for e in bundle_of(to_fhir, FIXTURES.input(case))["entry"]}
    assert {"ChargeItem", "Account", "Procedure", "Condition", "Coverage",
            "ServiceRequest", "Observation"} <= made
    assert made <= set(dft.RESOURCES)


def test_ft1_facts_land_on_the_charge_item(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, message(PV1, FT1))
    item = charge(bundle)
    assert item["status"] == "billable"
    assert item["identifier"][0]["value"] == "T-1"
    assert item["code"]["coding"][0] == {"system": CPT, "code": "99213",
                                         "display": "Office visit"}
    assert item["occurrenceDateTime"] == "2024-04-30T10:15:00-04:00"
    assert item["enteredDate"] == "2024-05-01"
    assert item["quantity"] == {"value": 1}
    assert item["priceOverride"] == {"value": 120.0, "currency": "USD"}
    assert item["reason"][0]["coding"][0]["code"] == "J45.909"
    assert item["productCodeableConcept"]["coding"][0]["code"] == "0173-0682-20"
    roles = {p["function"]["coding"][0]["code"]: resolve(bundle, p["actor"])["name"][0]["family"]
             for p in item["performer"]}
    assert roles == {"PRF": "VOSS", "OP": "IYER"}
    assert resolve(bundle, item["enterer"])["name"][0]["family"] == "CLERK"
    procedure = resolve(bundle, item["service"][0])
    assert procedure["resourceType"] == "Procedure" and procedure["status"] == "completed"
    assert item["context"] == {"reference": f"urn:uuid:{of_type(bundle, 'Encounter')[0]['id']}"}


def test_charges_are_on_the_pid18_account(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, message(PV1, FT1, FT1.replace("T-1", "T-2")))
    account = of_type(bundle, "Account")
    assert len(account) == 1 and account[0]["identifier"][0]["value"] == "OA-77"
    ref = {"reference": f"urn:uuid:{account[0]['id']}"}
    assert [c["account"] for c in of_type(bundle, "ChargeItem")] == [[ref], [ref]]


def test_a_credit_is_kept_with_its_type_but_not_billable(to_fhir: Mapping) -> None:
    credit = checks.segment("FT1", {1: "1", 2: "T-9", 4: "20240430", 6: "CD",
                                    7: "99213^Office visit^C4", 11: "-120.00&USD"})
    item = charge(bundle_of(to_fhir, message(PV1, credit)))
    assert item["status"] == "unknown"
    assert item["priceOverride"]["value"] == -120.0
    assert item["note"] == [{"text": "Transaction type: Credit"}]


def test_p11_charge_names_the_procedure_of_its_group(to_fhir: Mapping) -> None:
    ft1 = checks.segment("FT1", {1: "1", 2: "T-5", 4: "20240430", 6: "CG",
                                 7: "ANES-01^Anesthesia time^CDM"})
    pr1 = checks.segment("PR1", {1: "1", 3: "01400^Anesthesia knee^C4", 5: "20240430",
                                 6: "A", 8: "5501^LUND^ERIK^^^DR"})
    bundle = bundle_of(to_fhir, message(PV1, ft1, pr1, event="P11"))
    item = charge(bundle)
    procedure = resolve(bundle, item["service"][0])
    assert procedure["code"]["coding"][0]["code"] == "01400"
    assert procedure["performer"][0]["function"]["text"] == "Anesthesiologist"


def test_ft1_procedure_and_pr1_of_the_same_code_and_day_are_one(to_fhir: Mapping) -> None:
    pr1 = checks.segment("PR1", {1: "1", 3: "99213^Office visit^C4", 5: "20240430101500"})
    bundle = bundle_of(to_fhir, message(PV1, FT1, pr1))
    assert len(of_type(bundle, "Procedure")) == 1


def test_a_resend_updates_the_same_resources(to_fhir: Mapping) -> None:
    first = bundle_of(to_fhir, message(PV1, FT1))
    again = bundle_of(to_fhir, message(PV1, FT1).replace(b"|DP03|", b"|DP03-RESEND|"))
    ids = lambda b: {e["resource"]["id"] for e in b["entry"]  # noqa: E731
                     if e["resource"]["resourceType"] not in ("Provenance", "MessageHeader")}
    assert ids(first) == ids(again)


def test_odd_fields_are_located_warnings_without_values(to_fhir: Mapping) -> None:
    odd = checks.segment("FT1", {1: "1", 2: "T-1", 4: "20240431", 6: "CG",
                                 7: "99213^Office visit^C4", 10: "one and a half",
                                 11: "12O.00&USD"})
    nothing = checks.segment("FT1", {1: "2", 2: "T-2", 6: "CG", 11: "9.99&USD"})
    raw = message(PV1, odd, nothing)
    item = charge(bundle_of(to_fhir, raw))
    assert item["code"]["coding"][0]["code"] == "99213"
    assert "quantity" not in item and "occurrenceDateTime" not in item
    said = warnings_of(to_fhir, raw)
    assert [w.split(":")[0] for w in said] == ["FT1-4", "FT1-10", "FT1-11", "FT1[2]-7"]
    for value in ("20240431", "one and a half", "12O.00", "9.99", "FINCH"):
        assert not any(value in w.split(":", 1)[1] for w in said), value


def test_only_a_message_without_a_patient_fails(to_fhir: Mapping) -> None:
    checks.check_error(to_fhir, message(PV1, FT1, pid=None), "PID-3", phi=["VOSS"])
    assert isinstance(run(to_fhir, message(PV1, FT1, event="P10")), Skip)


def test_an_ft1_note_keeps_its_author_and_time(to_fhir: Mapping) -> None:
    nte = "NTE|1||Given in left deltoid||3301^VOSS^KARL^^^DR|20240430102000"
    bundle = bundle_of(to_fhir, message(PV1, FT1, nte))
    note = charge(bundle)["note"]
    assert note[0]["text"] == "Given in left deltoid"
    assert note[0]["time"] == "2024-04-30T10:20:00-04:00"
    assert resolve(bundle, note[0]["authorReference"])["name"][0]["family"] == "VOSS"


def test_same_patient_and_visit_as_the_adt_feed(to_fhir: Mapping) -> None:
    raw = message(PV1, FT1)
    bundle = bundle_of(to_fhir, raw)
    adt_raw = raw.replace(b"DFT^P03^DFT_P03", b"ADT^A08^ADT_A01").replace(b"EVN|P03", b"EVN|A08")
    checks.check_same_patient(of_type(bundle, "Patient")[0], adt_raw)
    admitted = checks.by_type(bundle_of(checks.mapping("hl7v2-adt-to-fhir@2"), adt_raw))
    assert of_type(bundle, "Encounter")[0]["id"] == admitted["Encounter"]["id"]
