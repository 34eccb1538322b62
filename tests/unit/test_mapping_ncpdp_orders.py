"""ncpdp-cancelrx-to-fhir@1, ncpdp-rxfill-to-fhir@1 and ncpdp-rxrenewal-to-fhir@1: every
fixture maps to a valid FHIR R4 transaction, and the messages about one order meet on
the FHIR side: a CancelRx, an RxFill and a renewal request reach the MedicationRequest
the NewRx made, and each response reaches the Task its request made."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.formats.ncpdp import NcpdpCodec
from engine.maplib import ncpdp_fhir as ncpdp
from engine.maplib.fhir import resource_id
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, of_type, only

ROOT = Path(__file__).resolve().parents[2]
NEWRX = ROOT / "tests" / "fixtures" / "ncpdp" / "newrx_default_ns.xml"
NEWRX_CONTROLLED = ROOT / "tests" / "fixtures" / "ncpdp" / "newrx_controlled_prefixed_2023011.xml"
LITERAL = re.compile(r"^MedicationRequest/[0-9a-f-]{36}\Z")
codec = NcpdpCodec()

CANCEL = checks.Fixtures("ncpdp-cancelrx-to-fhir@1", input_ext=".xml")
FILL = checks.Fixtures("ncpdp-rxfill-to-fhir@1", input_ext=".xml")
RENEWAL = checks.Fixtures("ncpdp-rxrenewal-to-fhir@1", input_ext=".xml")

cancelrx = checks.mapping_fixture(CANCEL.ref, accepts="ncpdp", emits="application/fhir+json")
rxfill = checks.mapping_fixture(FILL.ref, accepts="ncpdp", emits="application/fhir+json")
renewal = checks.mapping_fixture(RENEWAL.ref, accepts="ncpdp", emits="application/fhir+json")


def _valid(bundle: dict) -> None:
    checks.check_transaction(bundle, LITERAL)


class TestCancelFixtures(checks.fixture_tests(CANCEL, min_cases=6, min_outputs=5,
                                              output=_valid)):
    pass


class TestFillFixtures(checks.fixture_tests(FILL, min_cases=4, min_outputs=4, output=_valid)):
    pass


class TestRenewalFixtures(checks.fixture_tests(RENEWAL, min_cases=5, min_outputs=5,
                                               output=_valid)):
    pass


def order_id(newrx: Path) -> str:
    """The MedicationRequest id of a NewRx: its order number within its prescriber (the
    rule ncpdp-newrx-to-fhir@1 follows)."""
    message = codec.parse(newrx.read_bytes()).body
    prescriber = ncpdp.practitioner(message.find("NewRx/Prescriber"))
    return ncpdp.request_id(message.value("Header/PrescriberOrderNumber"), prescriber)


def test_the_newrx_mapping_gives_the_order_the_same_id():
    """When the NewRx mapping is there, its MedicationRequest is the one we aim at."""
    found = checks.catalog().get("ncpdp-newrx-to-fhir@1")
    if found is None:
        pytest.skip("ncpdp-newrx-to-fhir@1 is not in this checkout")
    for newrx in (NEWRX, NEWRX_CONTROLLED):
        assert only(bundle_of(found, newrx.read_bytes()), "MedicationRequest")["id"] \
            == order_id(newrx)


def test_cancelrx_cancels_the_newrx_order_and_asks_the_pharmacy(cancelrx):
    for case, newrx in (("cancelrx_default_ns", NEWRX),
                        ("cancelrx_no_namespace_compact", NEWRX),
                        ("cancelrx_controlled_prefixed_2023011", NEWRX_CONTROLLED)):
        bundle = bundle_of(cancelrx, CANCEL.input(case))
        request = only(bundle, "MedicationRequest")
        assert request["id"] == order_id(newrx), case
        assert (request["status"], request["intent"]) == ("cancelled", "order")
        task = only(bundle, "Task")
        assert task["status"] == "requested" and task["code"]["coding"][0]["code"] == "abort"
        assert task["focus"]["reference"] == f"urn:uuid:{request['id']}"
        pharmacy = only(bundle, "Organization")
        assert task["owner"]["reference"] == f"urn:uuid:{pharmacy['id']}"


def test_cancelrx_keeps_what_the_prescription_said(cancelrx):
    request = only(bundle_of(cancelrx, CANCEL.input("cancelrx_default_ns")),
                   "MedicationRequest")
    assert request["dispenseRequest"]["quantity"]["value"] == 90
    assert request["dispenseRequest"]["numberOfRepeatsAllowed"] == 3
    assert request["dosageInstruction"][0]["text"].startswith("Take 1 tablet")
    assert request["identifier"][0]["value"] == "ORD-2026-55120"


def test_cancelrx_without_order_number_reaches_the_newrx_by_relates_to(cancelrx):
    raw = CANCEL.input("cancelrx_without_order_number_error").replace(
        b"<SentTime>", b"<RelatesToMessageID>a3f1c2d4e5b6478899aa0011bb22cc33"
                       b"</RelatesToMessageID>\n\t\t<SentTime>")
    bundle = bundle_of(cancelrx, raw)
    prescriber = only(bundle, "Practitioner")
    assert only(bundle, "MedicationRequest")["id"] == ncpdp.request_id(
        "a3f1c2d4e5b6478899aa0011bb22cc33", prescriber)


def test_cancelrx_without_any_order_fails_naming_it_without_phi(cancelrx):
    checks.check_error(cancelrx, CANCEL.input("cancelrx_without_order_number_error"),
                       "Header/PrescriberOrderNumber", phi=("Lindqvist", "Astrid", "1962"))


def test_cancelrx_responses_decide_the_cancel_task(cancelrx):
    pairs = (("cancelrx_default_ns", "cancelrx_response_approved", "completed"),
             ("cancelrx_controlled_prefixed_2023011", "cancelrx_response_denied_prefixed",
              "rejected"))
    for request_case, response_case, status in pairs:
        asked = only(bundle_of(cancelrx, CANCEL.input(request_case)), "Task")
        answered = only(bundle_of(cancelrx, CANCEL.input(response_case)), "Task")
        assert answered["id"] == asked["id"], response_case
        assert answered["status"] == status
    denied = only(bundle_of(cancelrx, CANCEL.input("cancelrx_response_denied_prefixed")),
                  "Task")
    assert denied["statusReason"]["coding"][0]["code"] == "AA"
    assert denied["focus"] == {"type": "MedicationRequest", "identifier": {
        "system": "urn:conduit:id:ncpdp:PrescriberOrderNumber", "value": "GMC-77120431"}}
    approved = only(bundle_of(cancelrx, CANCEL.input("cancelrx_response_approved")), "Task")
    assert approved["focus"]["reference"] == f"MedicationRequest/{order_id(NEWRX)}"


def test_cancelrx_mapping_refuses_other_messages(cancelrx):
    checks.check_error(cancelrx, NEWRX.read_bytes(), "Body")
    empty = CANCEL.input("cancelrx_response_approved").replace(
        b"<Approved>\n          <Note>Prescription inactivated at pharmacy</Note>\n"
        b"        </Approved>", b"")
    checks.check_error(cancelrx, empty, "CancelRxResponse/Response")


FILLS = [("rxfill_dispensed_default_ns", "completed", NEWRX, True),
         ("rxfill_partially_dispensed_prefixed", "in-progress", NEWRX, True),
         ("rxfill_not_dispensed_no_namespace_2023011", "declined", NEWRX_CONTROLLED, False),
         ("rxfill_transferred_compact", "cancelled", NEWRX, False)]


@pytest.mark.parametrize(("case", "status", "newrx", "handed"), FILLS,
                         ids=[f[0] for f in FILLS])
def test_rxfill_is_a_dispense_of_the_newrx_order(rxfill, case, status, newrx, handed):
    bundle = bundle_of(rxfill, FILL.input(case))
    dispense = only(bundle, "MedicationDispense")
    assert dispense["status"] == status
    assert dispense["authorizingPrescription"][0]["reference"] \
        == f"MedicationRequest/{order_id(newrx)}"
    assert dispense["performer"][0]["actor"]["reference"] \
        == f"urn:uuid:{only(bundle, 'Organization')['id']}"
    assert dispense["subject"]["reference"] == f"urn:uuid:{only(bundle, 'Patient')['id']}"
    assert ("whenHandedOver" in dispense) is handed
    assert dispense["daysSupply"]["code"] == "d"


def test_rxfill_quantities_dates_and_reasons(rxfill):
    partial = only(bundle_of(rxfill, FILL.input("rxfill_partially_dispensed_prefixed")),
                   "MedicationDispense")
    full = only(bundle_of(rxfill, FILL.input("rxfill_dispensed_default_ns")),
                "MedicationDispense")
    assert (partial["quantity"]["value"], partial["daysSupply"]["value"]) == (30, 30)
    assert (full["quantity"]["value"], full["whenHandedOver"]) == (90, "2026-12-02")
    assert partial["id"] != full["id"], "a partial fill and the full one are two dispenses"
    declined = only(bundle_of(rxfill, FILL.input("rxfill_not_dispensed_no_namespace_2023011")),
                    "MedicationDispense")
    assert "returned to stock" in declined["statusReasonCodeableConcept"]["text"]
    assert full["substitution"] == {"wasSubstituted": False}


def test_rxfill_returned_to_stock_updates_the_same_dispense(rxfill):
    raw = FILL.input("rxfill_dispensed_default_ns")
    returned = raw.replace(b"<Dispensed>", b"<NotDispensed>").replace(
        b"</Dispensed>", b"</NotDispensed>").replace(b"CBP-20261202-000611",
                                                       b"CBP-20261216-000020")
    first = only(bundle_of(rxfill, raw), "MedicationDispense")
    later = only(bundle_of(rxfill, returned), "MedicationDispense")
    assert later["id"] == first["id"] and later["status"] == "declined"


def test_rxfill_errors_name_the_element(rxfill):
    broken = (ROOT / "tests" / "fixtures" / "ncpdp" / "broken_rxfill_no_fill_status.xml")
    checks.check_error(rxfill, broken.read_bytes(), "RxFill/FillStatus",
                       phi=("Lindqvist", "Astrid"))
    checks.check_error(rxfill, NEWRX.read_bytes(), "Body")


def test_renewal_request_proposes_a_renewal_of_the_newrx_order(renewal):
    bundle = bundle_of(renewal, RENEWAL.input("renewal_request_default_ns"))
    task = only(bundle, "Task")
    proposal = only(bundle, "MedicationRequest")
    assert (proposal["intent"], proposal["status"]) == ("proposal", "active")
    assert proposal["priorPrescription"]["reference"] == f"MedicationRequest/{order_id(NEWRX)}"
    assert proposal["dispenseRequest"]["numberOfRepeatsAllowed"] == 3
    assert (task["status"], task["intent"]) == ("requested", "order")
    assert task["code"]["coding"][0]["code"] == "fulfill"
    assert task["focus"]["reference"] == f"urn:uuid:{proposal['id']}"
    assert task["basedOn"][0]["reference"] == f"MedicationRequest/{order_id(NEWRX)}"
    assert task["owner"]["reference"] == f"urn:uuid:{only(bundle, 'Practitioner')['id']}"
    assert task["requester"]["reference"] == f"urn:uuid:{only(bundle, 'Organization')['id']}"
    no_order = only(bundle_of(renewal, RENEWAL.input("renewal_request_prefixed_2023011")),
                    "MedicationRequest")
    assert "priorPrescription" not in no_order
    assert no_order["dispenseRequest"]["numberOfRepeatsAllowed"] == 1


RESPONSES = [("renewal_request_default_ns", "renewal_response_approved_default_ns",
              "completed", "ORD-2026-58802"),
             ("renewal_request_default_ns", "renewal_response_replace_no_namespace",
              "completed", "ORD-2026-58810"),
             ("renewal_request_prefixed_2023011", "renewal_response_denied_prefixed_2023011",
              "rejected", None)]


@pytest.mark.parametrize(("request_case", "response_case", "status", "new_order"),
                         RESPONSES, ids=[r[1] for r in RESPONSES])
def test_renewal_response_decides_the_request_task(renewal, request_case, response_case,
                                                   status, new_order):
    asked = bundle_of(renewal, RENEWAL.input(request_case))
    answered = bundle_of(renewal, RENEWAL.input(response_case))
    task = only(answered, "Task")
    assert task["id"] == only(asked, "Task")["id"]
    assert task["status"] == status
    assert task["focus"]["reference"] == \
        f"MedicationRequest/{only(asked, 'MedicationRequest')['id']}"
    renewed = of_type(answered, "MedicationRequest")
    if new_order is None:
        assert renewed == [] and task["statusReason"]["coding"][0]["code"] == "AF"
        assert "office visit" in task["statusReason"]["text"]
        return
    prescriber = only(answered, "Practitioner")
    assert renewed[0]["id"] == ncpdp.request_id(new_order, prescriber)
    assert (renewed[0]["intent"], renewed[0]["status"]) == ("order", "active")
    assert task["output"][0]["valueReference"]["reference"] == f"urn:uuid:{renewed[0]['id']}"
    assert renewed[0]["basedOn"] == [task["focus"]]


def test_renewed_order_is_reached_by_its_later_messages(renewal, rxfill):
    """An RxFill for the renewed prescription names the order the approval made."""
    answered = bundle_of(renewal, RENEWAL.input("renewal_response_approved_default_ns"))
    renewed = only(answered, "MedicationRequest")
    raw = FILL.input("rxfill_dispensed_default_ns").replace(b"ORD-2026-55120",
                                                            b"ORD-2026-58802")
    dispense = only(bundle_of(rxfill, raw), "MedicationDispense")
    assert dispense["authorizingPrescription"][0]["reference"] \
        == f"MedicationRequest/{renewed['id']}"


def test_renewal_errors_name_the_element(renewal):
    broken = ROOT / "tests" / "fixtures" / "ncpdp" / "broken_rxrenewalresponse_no_relates.xml"
    checks.check_error(renewal, broken.read_bytes(), "Header/RelatesToMessageID",
                       phi=("Lindqvist",))
    checks.check_error(renewal, CANCEL.input("cancelrx_default_ns"), "Body")


def test_ids_do_not_depend_on_the_system_style(cancelrx):
    """The same order from a default-namespace and a one-line no-namespace sender."""
    a = only(bundle_of(cancelrx, CANCEL.input("cancelrx_default_ns")), "MedicationRequest")
    b = only(bundle_of(cancelrx, CANCEL.input("cancelrx_no_namespace_compact")),
             "MedicationRequest")
    assert a["id"] == b["id"] != resource_id("MedicationRequest", "ncpdp",
                                             {"value": "ORD-2026-55120"})


@pytest.mark.parametrize("name", ["unknown_drugadministration_default_ns.xml",
                                  "unknown_clinicalinforequest_prefixed.xml",
                                  "status_default_ns.xml"])
def test_other_message_types_are_refused_naming_body(cancelrx, rxfill, renewal, name):
    """A channel routes what no mapping reads unmapped; each mapping says so by Body,
    without the patient's name."""
    raw = (ROOT / "tests" / "fixtures" / "ncpdp" / name).read_bytes()
    for found in (cancelrx, rxfill, renewal):
        checks.check_error(found, raw, "Body", phi=("Lindqvist", "Bergström"))
