"""hl7v2-omg-to-fhir@1: referrals, consults and imaging orders as ServiceRequests with
their timing, reasons and clinical facts; the ADT feed's Patient; one odd field costs
that field, with a located warning."""

from __future__ import annotations

import json

import pytest

from engine import testbench
from engine.mapping import Mapping
from engine.mapping_base import Mapped, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, check_transaction, of_type, only, reference_to, segment

FIXTURES = checks.Fixtures("hl7v2-omg-to-fhir@1")

omg = checks.mapping_fixture(FIXTURES.ref)

PID = "PID|1||MW4410023^^^MAPLEWOOD^MR||FENWICK^ROSALIND^T^^^^L||19580923|F"
ORC = "ORC|NW|REF-1^EHR|||||||20250120100300-0500|||2233^BRIGHTWATER^SAMUEL^^^DR^MD"
OBR = ("OBR|1|REF-1^EHR||306140002^Referral to cardiology service^SCT|||||||||"
       "Chest pressure on exertion")


def message(*body: str, msh9: str = "OMG^O19^OMG_O19") -> bytes:
    segments = ["MSH|^~\\&|EPIC|MAPLEWOOD_HOSP|REFERRALS|MAPLEWOOD_HOSP|20250120100512-0500"
                f"||{msh9}|C1|P|2.5.1", PID, *(body or (ORC, OBR))]
    return ("\r".join(segments) + "\r").encode()


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=6, min_outputs=6,
                                    output=check_transaction)


def test_patient_is_the_adt_feeds(omg: Mapping) -> None:
    adt = ("MSH|^~\\&|EPIC|MAPLEWOOD_HOSP|ADT|MAPLEWOOD_HOSP|20250120090000-0500||ADT^A04|A1|"
           f"P|2.5.1\rEVN|A04|20250120090000-0500\r{PID}\r").encode()
    checks.check_same_patient(only(bundle_of(omg, message()), "Patient"), adt)


def test_referral_code_clinical_information_and_no_assumed_category(omg: Mapping) -> None:
    request = only(bundle_of(omg, message()), "ServiceRequest")
    assert request["code"]["coding"] == [{"system": "http://snomed.info/sct",
                                          "code": "306140002",
                                          "display": "Referral to cardiology service"}]
    assert request["note"] == [{"text": "Relevant clinical information: Chest pressure on "
                                        "exertion"}]
    assert "category" not in request
    assert request["intent"] == "order" and request["status"] == "active"
    assert request["authoredOn"] == "2025-01-20T10:03:00-05:00"


def test_imaging_section_is_the_category(omg: Mapping) -> None:
    obr = segment("OBR", {1: "1", 2: "REF-1^EHR", 4: "74177^CT ABD PELVIS W^C4", 24: "CT"})
    request = only(bundle_of(omg, message(ORC, obr)), "ServiceRequest")
    assert request["category"] == [{"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "CT",
        "display": "CAT Scan"}]}]


def test_therapy_course_timing(omg: Mapping) -> None:
    tq1 = segment("TQ1", {1: "1", 2: "12^visits", 3: "2XW^Twice a week^L", 6: "6^wk",
                          9: "R", 14: "12"})
    request = only(bundle_of(omg, message(ORC, tq1, OBR)), "ServiceRequest")
    assert request["occurrenceTiming"]["repeat"] == {
        "boundsDuration": {"value": 6, "unit": "wk", "system": "http://unitsofmeasure.org",
                           "code": "wk"}, "count": 12}
    assert request["occurrenceTiming"]["code"]["coding"][0]["code"] == "2XW"
    assert request["quantityQuantity"] == {"value": 12, "unit": "visits"}
    assert request["priority"] == "routine"


def test_clinical_facts_sent_with_the_order(omg: Mapping) -> None:
    bundle = bundle_of(omg, message(ORC, OBR, "OBX|1|NM|29463-7^Body weight^LN||94|kg^^UCUM"
                                              "|||||F", "DG1|1||I20.8^Other angina^I10"))
    request, weight = only(bundle, "ServiceRequest"), only(bundle, "Observation")
    assert request["supportingInfo"] == [reference_to(weight)]
    assert weight["valueQuantity"]["value"] == 94
    assert request["reasonReference"] == [reference_to(only(bundle, "Condition"))]


def test_discontinued_consult_is_revoked_with_when_and_who(omg: Mapping) -> None:
    orc = "ORC|DC|REF-1^EHR|||DC||||20250121090000-0500|44^FITZHUGH^OONA"
    bundle = bundle_of(omg, message(orc, OBR))
    request = only(bundle, "ServiceRequest")
    assert request["status"] == "revoked" and "authoredOn" not in request
    (change,) = [p for p in of_type(bundle, "Provenance") if p["target"] == [reference_to(request)]]
    assert change["recorded"] == "2025-01-21T09:00:00-05:00"
    assert change["activity"]["coding"][0]["code"] == "DC"
    assert change["agent"][0]["type"]["coding"][0]["code"] == "enterer"


def test_v27_participations(omg: Mapping) -> None:
    prts = ["PRT||AD||RT^Referred to provider^HL70912|4410^ABARA^CHIOMA^^^DR",
            "PRT||AD||PO^Performing organization^HL70912||||NORTHSHORE HEART^^^^^NS^^^^NSH1",
            "PRT||AD||EP^Entering provider^HL70912|55^TILLMAN^JUNE"]
    orc = "ORC|NW|REF-1^EHR|||||||20250120100300-0500"
    bundle = bundle_of(omg, message(orc, *prts, OBR))
    request = only(bundle, "ServiceRequest")
    by_ref = {f"urn:uuid:{e['resource']['id']}": e["resource"] for e in bundle["entry"]}
    performers = [by_ref[p["reference"]] for p in request["performer"]]
    assert [p["resourceType"] for p in performers] == ["Practitioner", "Organization"]
    assert performers[0]["name"][0]["family"] == "ABARA"
    assert performers[1]["name"] == "NORTHSHORE HEART"
    (provenance,) = [p for p in of_type(bundle, "Provenance")
                     if p["target"] == [reference_to(request)]]
    assert by_ref[provenance["agent"][0]["who"]["reference"]]["name"][0]["family"] == "TILLMAN"
    assert provenance["agent"][0]["type"]["coding"][0]["code"] == "enterer"


def test_ordering_provider_from_prt_when_orc_names_none(omg: Mapping) -> None:
    orc = "ORC|NW|REF-1^EHR|||||||20250120100300-0500"
    bundle = bundle_of(omg, message(orc, "PRT||AD||OP^Ordering provider^HL70912|77^ROWE^ANNIKA",
                                    OBR))
    request = only(bundle, "ServiceRequest")
    (person,) = [e["resource"] for e in bundle["entry"]
                 if f"urn:uuid:{e['resource']['id']}" == request["requester"]["reference"]]
    assert person["name"][0]["family"] == "ROWE"


@pytest.mark.parametrize(("tq1", "warning"), [
    ("TQ1|1|||||6^fortnights",
     "TQ1-6: has no unit of time this mapping knows (s, min, h, d, wk, mo, a)"),
    ("TQ1|1||||||20250231", "TQ1-7: holds a date/time that does not exist"),
    ("TQ1|1|||||||||||||twelve", "TQ1-14: is not a positive whole number of occurrences"),
])
def test_one_odd_field_is_a_located_warning(omg: Mapping, tq1: str, warning: str) -> None:
    result = testbench.run_mapping(checks.mapping(FIXTURES.ref), message(ORC, tq1, OBR))
    assert isinstance(result, Mapped)
    assert warning in [str(w) for w in result.warnings]
    bundle = json.loads(result.output)
    check_transaction(bundle)
    assert only(bundle, "ServiceRequest")["code"]["coding"][0]["code"] == "306140002"


def test_a_message_without_orders_still_maps_its_patient(omg: Mapping) -> None:
    result = testbench.run_mapping(checks.mapping(FIXTURES.ref), message("NTE|1||nothing"))
    assert isinstance(result, Mapped)
    (warning,) = [str(w) for w in result.warnings if str(w).startswith("ORC:")]
    assert "only its patient is mapped" in warning
    bundle = json.loads(result.output)
    assert len(of_type(bundle, "Patient")) == 1 and not of_type(bundle, "ServiceRequest")


def test_only_a_message_with_nothing_to_map_fails(omg: Mapping) -> None:
    no_pid = ("MSH|^~\\&|EPIC|MAPLEWOOD_HOSP|REFERRALS|MAPLEWOOD_HOSP|20250120100512-0500||"
              "OMG^O19|C9|P|2.5.1\r" + ORC + "\r" + OBR + "\r").encode()
    checks.check_error(omg, no_pid, "PID-3")
    checks.check_error(omg, message(msh9="ORM^O01"), "MSH-9")
    assert isinstance(testbench.run_mapping(checks.mapping(FIXTURES.ref),
                                            message(msh9="OMG^O20")), Skip)


def test_same_message_same_bytes(omg: Mapping) -> None:
    checks.check_deterministic(omg, message(ORC, OBR, "OBX|1|NM|29463-7^Weight^LN||94|kg"))


def test_an_imaging_orders_answers_are_surveys_and_its_lab_values_laboratory(omg: Mapping
                                                                             ) -> None:
    """US Core wants every Observation categorised: a question answered at order entry is
    a survey; a value sent with its reference range is a lab result."""
    obr = ("OBR|1|REF-1^EHR||74177^CT abdomen^C4|||||||||||||||||||||CT")
    allergy = segment("OBX", {1: "1", 2: "CWE", 3: "CONTRAST^Contrast allergy^L",
                              5: "N^No^HL70136", 11: "F"})
    creatinine = segment("OBX", {1: "2", 2: "NM", 3: "2160-0^Creatinine^LN", 5: "0.9",
                                 6: "mg/dL", 7: "0.7-1.3", 11: "F"})
    bundle = bundle_of(omg, message(ORC, obr, allergy, creatinine))
    codes = {o["code"]["coding"][0]["code"]: o["category"][0]["coding"][0]["code"]
             for o in of_type(bundle, "Observation")}
    assert codes == {"CONTRAST": "survey", "2160-0": "laboratory"}
