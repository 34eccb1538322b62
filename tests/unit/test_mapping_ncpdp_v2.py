"""The version 2 NCPDP mappings (ncpdp-*-to-fhir@2 and ncpdp-to-fhir@2), as a receiving
FHIR server sees them across messages: whose patient a Patient is, which order a later
message reaches, and what a later message leaves of what an earlier one wrote."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

from engine.config.types import Duration
from engine.connectors.base import DestinationContext
from engine.connectors.fhir import FhirDestination, FhirDestinationConfig
from engine.formats.ncpdp import NcpdpCodec
from engine.mapping import Mapping
from engine.message import Outbound
from tests import mapping_checks as checks
from tests.fhir_store import FhirServer, Refused
from tests.mapping_checks import bundle_of

VERSION = 2
MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
FHIR = "application/fhir+json"
LITERAL = re.compile(r"^(MedicationRequest|Patient|Practitioner|Organization|Task)/"
                     r"[0-9a-f-]{36}\Z")
PATCHED = re.compile(r"^(MedicationRequest|Task)(/[0-9a-f-]{36}|\?identifier=.+)\Z")
MRN = "urn:conduit:id:ncpdp:MedicalRecordIdentificationNumberEHR"
# Four clinics' NewRx for four different people who all have MRN MRN448120 (their own
# EHR's number): an EHR with the SCRIPT namespace as default, a Surescripts-style 2017071
# message addressed by SPI, an EHR without any namespace, a 2023011 one with a prefix.
SAME_MRN = ("ehr_default_ns_atorvastatin", "surescripts_2017071_same_mrn_other_clinic",
            "bare_ehr_no_namespace_same_mrn_same_order_number",
            "v2023011_prefixed_same_mrn_third_clinic")


def _valid(bundle: dict) -> None:
    """A valid R4 transaction whose entries are PUTs of resources at their ids or
    PATCHes (a JSON Patch in a Binary) of a literal or conditional MedicationRequest or
    Task url; other references resolve in the Bundle or are literal."""
    Bundle.model_validate(bundle)
    puts = {"entry": [e for e in bundle["entry"] if e["request"]["method"] == "PUT"]}
    for entry in bundle["entry"]:
        if entry["request"]["method"] == "PATCH":
            assert entry["resource"]["resourceType"] == "Binary"
            assert entry["resource"]["contentType"] == "application/json-patch+json"
            assert PATCHED.match(entry["request"]["url"]), entry["request"]["url"]
            json.loads(base64.b64decode(entry["resource"]["data"]))
    if puts["entry"]:  # a response may only PATCH
        checks.check_transaction({**bundle, **puts}, LITERAL)


class TestNewRxFixtures(checks.fixture_tests(checks.Fixtures(
        "ncpdp-newrx-to-fhir@2", input_ext=".xml"), min_cases=15, output=_valid)):
    pass


class TestCancelFixtures(checks.fixture_tests(checks.Fixtures(
        "ncpdp-cancelrx-to-fhir@2", input_ext=".xml"), min_cases=6, output=_valid)):
    pass


class TestFillFixtures(checks.fixture_tests(checks.Fixtures(
        "ncpdp-rxfill-to-fhir@2", input_ext=".xml"), min_cases=4, output=_valid)):
    pass


class TestRenewalFixtures(checks.fixture_tests(checks.Fixtures(
        "ncpdp-rxrenewal-to-fhir@2", input_ext=".xml"), min_cases=5, output=_valid)):
    pass


class TestDispatchFixtures(checks.fixture_tests(checks.Fixtures(
        "ncpdp-to-fhir@2", input_ext=".xml"), min_cases=8, output=_valid)):
    pass


def ref(name: str) -> str:
    return f"{name}@{VERSION}"


def fixture(name: str, case: str) -> bytes:
    folder = MAPPINGS / name / "fixtures" / f"v{VERSION if VERSION > 1 else 2}"
    return (folder / f"{case}.xml").read_bytes()


def resources(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"]
            if e["resource"].get("resourceType") == kind]


@pytest.fixture(scope="module")
def newrx() -> Mapping:
    return checks.mapping(ref("ncpdp-newrx-to-fhir"))


@pytest.fixture(scope="module")
def dispatch() -> Mapping:
    return checks.mapping(ref("ncpdp-to-fhir"))


def patient_of(mapping: Mapping, raw: bytes) -> dict:
    (patient,) = resources(bundle_of(mapping, raw), "Patient")
    return patient


# ---- 1. whose patient ---------------------------------------------------------------


def test_four_clinics_patients_with_one_mrn_are_four_patients(newrx):
    patients = [patient_of(newrx, fixture("ncpdp-newrx-to-fhir", c)) for c in SAME_MRN]
    mrns = {i["value"] for p in patients for i in p["identifier"] if i["system"] == MRN}
    assert mrns == {"MRN448120"}
    assert len({p["id"] for p in patients}) == 4, "one MRN from four EHRs merged patients"
    assert len({p["name"][0]["family"] for p in patients}) == 4


def test_the_mrn_says_which_system_assigned_it(newrx):
    patient = patient_of(newrx, fixture("ncpdp-newrx-to-fhir", SAME_MRN[0]))
    (mrn,) = [i for i in patient["identifier"] if i["system"] == MRN]
    assert mrn["assigner"] == {"display": "HARBORSIDEEHR^C"}


@pytest.mark.parametrize(("mapping", "case"), [
    ("ncpdp-cancelrx-to-fhir", "cancelrx_default_ns"),  # From the prescriber
    ("ncpdp-rxfill-to-fhir", "rxfill_dispensed_default_ns"),  # To the prescriber
    ("ncpdp-rxrenewal-to-fhir", "renewal_request_default_ns"),
])
def test_later_messages_of_either_side_name_the_prescribers_patient(newrx, mapping, case):
    """The pharmacy echoes the EHR's MRN with the EHR as Header To: the same Patient."""
    want = patient_of(newrx, fixture("ncpdp-newrx-to-fhir", SAME_MRN[0]))["id"]
    bundle = bundle_of(checks.mapping(ref(mapping)), fixture(mapping, case))
    subjects = {r.get("subject", r.get("for", {})).get("reference", "")
                for r in (e["resource"] for e in bundle["entry"])
                if r["resourceType"] in ("MedicationDispense", "Task", "MedicationRequest")}
    assert any(s.endswith(want) for s in subjects), subjects


def test_the_dispatcher_gives_the_same_patients(newrx, dispatch):
    for case in SAME_MRN:
        raw = fixture("ncpdp-newrx-to-fhir", case)
        assert checks.run(dispatch, raw) == checks.run(newrx, raw)


def test_national_identifiers_are_not_scoped(newrx):
    """The prescriber (NPI) and the pharmacy (NCPDPID) are one resource whoever sends."""
    raw = fixture("ncpdp-newrx-to-fhir", SAME_MRN[0])
    other = raw.replace(b"HARBORSIDEEHR", b"ANOTHEREHR")
    for kind in ("Practitioner", "Organization"):
        assert [r["id"] for r in resources(bundle_of(newrx, raw), kind)] == \
            [r["id"] for r in resources(bundle_of(newrx, other), kind)]


# ---- 2. which order a later message reaches --------------------------------------------

NEWRX = ("ncpdp-newrx-to-fhir", "ehr_default_ns_atorvastatin")  # MessageID a3f1c2d4...
CANCELS = {  # CancelRx cases naming that NewRx, and how
    "by RelatesToMessageID and the order number": "cancelrx_default_ns",
    "by RelatesToMessageID alone": "cancelrx_relates_to_only_no_order_number",
    "by RelatesToMessageID, with another order number": "cancelrx_relates_to_other_order_number",
}


def server_after(*steps: tuple[str, str]) -> FhirServer:
    """A FHIR server after the Bundles of these (mapping, case) messages, in order."""
    server = FhirServer()
    for name, case in steps:
        server.transaction(bundle_of(checks.mapping(ref(name)), fixture(name, case)))
    return server


@pytest.mark.parametrize("case", CANCELS.values(), ids=CANCELS.keys())
def test_cancelrx_cancels_the_real_order_and_makes_no_other(case):
    server = server_after(NEWRX, ("ncpdp-cancelrx-to-fhir", case))
    orders = server.of_type("MedicationRequest")
    assert len(orders) == 1, "the CancelRx wrote a second MedicationRequest"
    assert orders[0]["status"] == "cancelled"
    assert orders[0]["id"] == server_after(NEWRX).of_type("MedicationRequest")[0]["id"]
    (task,) = server.of_type("Task")
    assert task["focus"]["reference"] == f"MedicationRequest/{orders[0]['id']}"


def test_cancelrx_with_only_an_order_number_makes_no_order_up():
    """Its order's id cannot be known: no MedicationRequest is written (never an active
    one at a new id); the Task names the order by its number and assigner."""
    case = "cancelrx_order_number_only_no_relates_to"
    bundle = bundle_of(checks.mapping(ref("ncpdp-cancelrx-to-fhir")),
                       fixture("ncpdp-cancelrx-to-fhir", case))
    assert not [e for e in bundle["entry"]
                if e["resource"]["resourceType"] == "MedicationRequest"
                and e["request"]["method"] == "PUT"]
    (task,) = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Task"]
    assert task["focus"]["identifier"]["value"] == "ORD-2026-55120"
    assert task["focus"]["identifier"]["assigner"] == {"display": "HARBORSIDEEHR^C"}


def test_cancelrx_by_order_number_reaches_the_order_whatever_patient_key_it_derives():
    """A CancelRx naming the order by number alone, whose patient comes without the MRN
    (pharmacies and EHRs often leave it out): its patient key is the name and birth
    date's, not the NewRx's. Narrowed to that Patient, the cancel matched nothing (404)
    and the order stayed active."""
    name = "ncpdp-cancelrx-to-fhir"
    raw = fixture(name, "cancelrx_order_number_only_no_relates_to")
    without_mrn = re.sub(rb"\s*<MedicalRecordIdentificationNumberEHR>[^<]*"
                         rb"</MedicalRecordIdentificationNumberEHR>", b"", raw, count=1)
    assert without_mrn != raw
    server = server_after(NEWRX)
    server.transaction(bundle_of(checks.mapping(ref(name)), without_mrn))
    (order,) = server.of_type("MedicationRequest")
    assert order["status"] == "cancelled"


def test_an_rxfill_without_the_mrn_names_no_patient_the_server_lacks():
    """The pharmacy's RxFill leaves the EHR's MRN out: its patient key would be one no
    NewRx wrote, which a server checking references refuses; the dispense names the
    order, which names the patient."""
    name = "ncpdp-rxfill-to-fhir"
    raw = fixture(name, "rxfill_dispensed_default_ns")
    without_mrn = re.sub(rb"\s*<MedicalRecordIdentificationNumberEHR>[^<]*"
                         rb"</MedicalRecordIdentificationNumberEHR>", b"", raw, count=1)
    assert without_mrn != raw
    server = server_after(NEWRX)
    server.transaction(bundle_of(checks.mapping(ref(name)), without_mrn))
    (dispense,) = server.of_type("MedicationDispense")
    (order,) = server.of_type("MedicationRequest")
    assert dispense["authorizingPrescription"][0]["reference"].endswith(order["id"])


def test_rxfill_names_the_real_order():
    server = server_after(NEWRX)
    (order,) = server.of_type("MedicationRequest")
    bundle = bundle_of(checks.mapping(ref("ncpdp-rxfill-to-fhir")),
                       fixture("ncpdp-rxfill-to-fhir", "rxfill_dispensed_default_ns"))
    (dispense,) = resources(bundle, "MedicationDispense")
    assert dispense["authorizingPrescription"][0]["reference"] == \
        f"MedicationRequest/{order['id']}"


# ---- 3. what a later message leaves of what the NewRx wrote --------------------------

LEAN_CANCEL = ("ncpdp-cancelrx-to-fhir", "cancelrx_lean_patient_and_drug_only")
SAME_MRN_OTHER = ("ncpdp-newrx-to-fhir", "surescripts_2017071_same_mrn_other_clinic")


def the_order(server: FhirServer) -> dict:
    (order,) = server.of_type("MedicationRequest")
    return order


def test_a_lean_cancelrx_keeps_the_orders_directions_and_the_patients_address():
    """The CancelRx repeats the patient without an address, the prescriber without a
    telephone and the drug without directions: the order is cancelled and nothing the
    NewRx said is lost."""
    before = server_after(NEWRX)
    after = server_after(NEWRX, LEAN_CANCEL)
    order = the_order(after)
    assert order["status"] == "cancelled"
    assert order["dosageInstruction"] == the_order(before)["dosageInstruction"]
    assert order["dispenseRequest"] == the_order(before)["dispenseRequest"]
    for kind in ("Patient", "Practitioner", "Organization", "Medication"):
        assert after.of_type(kind) == before.of_type(kind), f"the CancelRx rewrote {kind}"


def test_a_cancelrx_with_only_an_order_number_cancels_that_order_in_place():
    after = server_after(NEWRX, ("ncpdp-cancelrx-to-fhir",
                                 "cancelrx_order_number_only_no_relates_to"))
    order = the_order(after)
    assert order["status"] == "cancelled"
    assert order["dosageInstruction"] == the_order(server_after(NEWRX))["dosageInstruction"]


def test_a_cancelrx_for_an_order_the_server_lacks_changes_nothing():
    """A PATCH of an absent order fails the transaction: no order is made up."""
    server = FhirServer()
    server.transaction(bundle_of(checks.mapping(ref("ncpdp-newrx-to-fhir")),
                                 fixture(*SAME_MRN_OTHER)))  # another order altogether
    with pytest.raises(Refused):
        server.transaction(bundle_of(checks.mapping(ref(LEAN_CANCEL[0])),
                                     fixture(*LEAN_CANCEL)))
    assert [o["status"] for o in server.of_type("MedicationRequest")] == ["active"]


def test_the_cancel_response_decides_the_task_and_keeps_what_the_cancelrx_said():
    cancelled = server_after(NEWRX, ("ncpdp-cancelrx-to-fhir", "cancelrx_default_ns"))
    answered = server_after(NEWRX, ("ncpdp-cancelrx-to-fhir", "cancelrx_default_ns"),
                            ("ncpdp-cancelrx-to-fhir", "cancelrx_response_approved"))
    (asked,), (task,) = cancelled.of_type("Task"), answered.of_type("Task")
    assert task["status"] == "completed" and asked["status"] == "requested"
    for kept in ("identifier", "authoredOn", "focus", "for", "requester", "owner"):
        assert task[kept] == asked[kept], kept
    assert answered.of_type("Patient") == cancelled.of_type("Patient")


@pytest.mark.parametrize("steps", [
    [("ncpdp-rxfill-to-fhir", "rxfill_dispensed_default_ns")],
    [("ncpdp-rxfill-to-fhir", "rxfill_transferred_compact")],
    [("ncpdp-rxrenewal-to-fhir", "renewal_request_default_ns")],
], ids=["rxfill dispensed", "rxfill transferred", "renewal request"])
def test_pharmacy_messages_name_the_patient_and_prescriber_without_rewriting_them(steps):
    before = server_after(NEWRX)
    after = server_after(NEWRX, *steps)
    for kind in ("Patient", "Practitioner"):
        assert after.of_type(kind) == before.of_type(kind), kind
    assert the_order(before) in after.of_type("MedicationRequest")


def test_the_renewal_response_completes_the_requests_task_keeping_it():
    steps = [NEWRX, ("ncpdp-rxrenewal-to-fhir", "renewal_request_default_ns")]
    asked = server_after(*steps)
    answered = server_after(*steps, ("ncpdp-rxrenewal-to-fhir",
                                     "renewal_response_approved_default_ns"))
    (before,), (task,) = asked.of_type("Task"), answered.of_type("Task")
    assert (before["status"], task["status"]) == ("requested", "completed")
    for kept in ("identifier", "authoredOn", "basedOn", "focus", "requester", "owner"):
        assert task[kept] == before[kept], kept
    renewed = task["output"][0]["valueReference"]["reference"]
    assert answered.get(renewed)["status"] == "active"
    assert answered.of_type("Patient") == asked.of_type("Patient")


def test_the_fhir_destination_sends_the_patches_as_the_mapping_wrote_them():
    """A transaction is POSTed to the base URL with its entries as they are: the
    PATCH entries reach the server."""
    raw = checks.run(checks.mapping(ref(LEAN_CANCEL[0])), fixture(*LEAN_CANCEL))
    config = FhirDestinationConfig(name="ehr", url="https://ehr.example.org/fhir",
                                   timeout=Duration(5.0))
    destination = FhirDestination(config, DestinationContext("c"))
    outbound = Outbound(1, "M", "c", "ehr", raw, FHIR)
    method, url, _ = destination.request_for(outbound)
    assert (method, url) == ("POST", "https://ehr.example.org/fhir")
    sent = json.loads(destination.body_for(outbound))
    assert [e["request"]["method"] for e in sent["entry"]] == ["PUT", "PATCH"]


# ---- 4. which RxNorm code a pharmacy gets -------------------------------------------

BUILD = checks.Fixtures(f"fhir-to-ncpdp-newrx@{max(VERSION, 2)}", input_ext=".json",
                        output_ext=".xml")


class TestBuildFixtures(checks.fixture_tests(checks.Fixtures(
        "fhir-to-ncpdp-newrx@2", input_ext=".json", output_ext=".xml"), min_cases=10)):
    pass


def drug_codes(case: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(DrugDBCode, ProductCode) as (Code, Qualifier) in the NewRx written for a case."""
    raw = checks.run(checks.mapping(ref("fhir-to-ncpdp-newrx")), BUILD.input(case))
    message = NcpdpCodec().parse(raw).body
    pairs = [(message.value(f"{p}/Code"), message.value(f"{p}/Qualifier")) for p in (
        "NewRx/MedicationPrescribed/DrugCoded/DrugDBCode",
        "NewRx/MedicationPrescribed/DrugCoded/ProductCode")]
    return [p for p in pairs[:1] if p[0]], [p for p in pairs[1:] if p[0]]


def test_an_epic_ingredient_code_is_not_sent_as_a_clinical_drug():
    """Epic lists IN, SCD and SBD RxNorm codings without saying which is which: none is
    claimed to be SCD (@1 sent the ingredient, the first, as SCD); the NDC names it."""
    databases, products = drug_codes("epic_rxnorm_in_scd_sbd_no_term_types_ndc")
    assert databases == []
    assert products == [("00069152530", "ND")]


def test_stated_term_types_send_the_clinical_drug():
    assert drug_codes("rxnorm_term_types_stated_ingredient_first")[0] == [("197361", "SCD")]


def test_an_ingredient_is_sent_as_an_ingredient():
    assert drug_codes("rxnorm_ingredient_only_stated")[0] == [("17767", "IN")]


@pytest.mark.parametrize("case", [c for c in checks.Fixtures(
    "ncpdp-newrx-to-fhir@2", input_ext=".xml").output_cases])
def test_newrx_to_fhir_and_back_keeps_the_drug_codes(case):
    """ncpdp-newrx-to-fhir@2 states each RxNorm code's term type, so the way back
    sends the same DrugDBCode and qualifier."""
    raw = fixture("ncpdp-newrx-to-fhir", case)
    again = checks.run(checks.mapping(ref("fhir-to-ncpdp-newrx")),
                       checks.run(checks.mapping(ref("ncpdp-newrx-to-fhir")), raw))
    codec = NcpdpCodec()
    path = "NewRx/MedicationPrescribed/DrugCoded/"
    for leaf in ("DrugDBCode/Code", "DrugDBCode/Qualifier", "ProductCode/Code"):
        assert codec.parse(again).body.value(path + leaf) == \
            codec.parse(raw).body.value(path + leaf), leaf
