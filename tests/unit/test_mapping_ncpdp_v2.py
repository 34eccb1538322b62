"""The version 2 NCPDP mappings (ncpdp-*-to-fhir@2 and ncpdp-to-fhir@2), as a receiving
FHIR server sees them across messages: whose patient a Patient is, which order a later
message reaches, and what a later message leaves of what an earlier one wrote."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.mapping import Mapping
from tests import mapping_checks as checks
from tests.fhir_store import FhirServer
from tests.mapping_checks import bundle_of

VERSION = 2
MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
FHIR = "application/fhir+json"
LITERAL = re.compile(r"^(MedicationRequest|Patient|Practitioner|Task)/[0-9a-f-]{36}\Z")
MRN = "urn:conduit:id:ncpdp:MedicalRecordIdentificationNumberEHR"
# Four clinics' NewRx for four different people who all have MRN MRN448120 (their own
# EHR's number): an EHR with the SCRIPT namespace as default, a Surescripts-style 2017071
# message addressed by SPI, an EHR without any namespace, a 2023011 one with a prefix.
SAME_MRN = ("ehr_default_ns_atorvastatin", "surescripts_2017071_same_mrn_other_clinic",
            "bare_ehr_no_namespace_same_mrn_same_order_number",
            "v2023011_prefixed_same_mrn_third_clinic")


def _valid(bundle: dict) -> None:
    checks.check_transaction(bundle, LITERAL)


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
    ("ncpdp-cancelrx-to-fhir", "cancelrx_response_approved"),
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


def test_rxfill_names_the_real_order():
    server = server_after(NEWRX)
    (order,) = server.of_type("MedicationRequest")
    bundle = bundle_of(checks.mapping(ref("ncpdp-rxfill-to-fhir")),
                       fixture("ncpdp-rxfill-to-fhir", "rxfill_dispensed_default_ns"))
    (dispense,) = resources(bundle, "MedicationDispense")
    assert dispense["authorizingPrescription"][0]["reference"] == \
        f"MedicationRequest/{order['id']}"
