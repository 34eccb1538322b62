"""hl7v2-oml-to-fhir@1: lab orders with their specimens, containers and order-entry
answers; the ids hl7v2-orm-to-fhir@1 gave an OML, the ADT feed's Patient; one odd field
costs that field, with a located warning."""

from __future__ import annotations

import json

import pytest

from engine import testbench
from engine.mapping import Mapping
from engine.mapping_base import Mapped, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import (
    bundle_of,
    check_transaction,
    mapped,
    of_type,
    only,
    reference_to,
    segment,
)

FIXTURES = checks.Fixtures("hl7v2-oml-to-fhir@1")
ORM_V1 = checks.Fixtures("hl7v2-orm-to-fhir@1")

oml = checks.mapping_fixture(FIXTURES.ref)
orm_v1 = checks.mapping_fixture(ORM_V1.ref)

PID = "PID|1||LK0099120^^^LAKESHORE^MR||ASHGROVE^TOBIAS^R^^^^L||19570412|M"
ORC = "ORC|NW|EP771200^EHR||EPG5501^EHR|IP||||20240819100500-0500|||5566^NAKAGAWA^HIROKO"
TQ1 = "TQ1|1||||||||A^ASAP^HL70485"
OBR = "OBR|1|EP771200^EHR||2093-3^Cholesterol^LN"


def spm(**fields: str) -> str:
    base = {1: "1", 2: "EP-SPEC-1&EHR^L-99&LIS", 4: "SER^Serum^HL70487",
            17: "20240819101000-0500"}
    base.update({int(k[1:]): v for k, v in fields.items()})
    return segment("SPM", {k: v for k, v in base.items() if v})


def message(*body: str, msh9: str = "OML^O21^OML_O21", control: str = "C1") -> bytes:
    segments = ["MSH|^~\\&|EPIC|LAKESHORE_HOSP|LIS|LAKESHORE_LAB|20240819101500-0500||"
                f"{msh9}|{control}|P|2.5.1", PID, *(body or (ORC, TQ1, OBR, spm()))]
    return ("\r".join(segments) + "\r").encode()


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=8, min_outputs=8,
                                    output=check_transaction)


def test_ids_are_those_orm_v1_gave_an_oml(oml: Mapping, orm_v1: Mapping) -> None:
    raw = ORM_V1.input("oml_o21_with_specimen")
    before, after = bundle_of(orm_v1, raw), bundle_of(oml, raw)
    for kind in ("Patient", "ServiceRequest", "Specimen"):
        assert [r["id"] for r in of_type(after, kind)] == [r["id"] for r in of_type(before, kind)]


def test_patient_is_the_adt_feeds(oml: Mapping) -> None:
    adt = ("MSH|^~\\&|EPIC|LAKESHORE_HOSP|ADT|LAKESHORE_HOSP|20240819090000-0500||ADT^A04|A1|"
           f"P|2.5.1\rEVN|A04|20240819090000-0500\r{PID}\r").encode()
    checks.check_same_patient(only(bundle_of(oml, message()), "Patient"), adt)


def test_order_with_timing_priority_and_lab_category(oml: Mapping) -> None:
    request = only(bundle_of(oml, message()), "ServiceRequest")
    assert request["priority"] == "asap"
    assert request["status"] == "active"
    assert request["category"] == [{"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB",
        "display": "Laboratory"}]}]
    assert request["code"]["coding"][0]["code"] == "2093-3"
    assert request["requisition"]["value"] == "EPG5501"


def test_specimen_from_spm(oml: Mapping) -> None:
    bundle = bundle_of(oml, message(ORC, TQ1, OBR, spm(
        f6="SST^Serum separator^HL70371", f7="VENIP^Venipuncture^HL70488",
        f8="LA^Left arm^HL70163", f12="5^mL&milliliter&UCUM", f14="Lipemic",
        f17="20240819101000-0500^20240819101200-0500", f18="20240819103000-0500", f20="Y",
        f24="HEM^Hemolyzed^HL70493", f27="RED^Red top^HL70370",
        f30="ACC-1^^^LIS")))
    specimen = only(bundle, "Specimen")
    assert [(i["type"]["coding"][0]["code"], i["value"]) for i in specimen["identifier"]] == [
        ("FILL", "L-99"), ("PLAC", "EP-SPEC-1")]
    assert specimen["accessionIdentifier"]["value"] == "ACC-1"
    assert specimen["type"]["coding"][0]["code"] == "SER"
    assert specimen["status"] == "available"
    collection = specimen["collection"]
    assert collection["collectedPeriod"] == {"start": "2024-08-19T10:10:00-05:00",
                                             "end": "2024-08-19T10:12:00-05:00"}
    assert collection["method"]["coding"][0]["code"] == "VENIP"
    assert collection["bodySite"]["coding"][0]["code"] == "LA"
    assert collection["quantity"] == {"value": 5, "unit": "milliliter",
                                      "system": "http://unitsofmeasure.org", "code": "mL"}
    assert specimen["receivedTime"] == "2024-08-19T10:30:00-05:00"
    assert specimen["condition"][0]["coding"][0]["code"] == "HEM"
    assert specimen["container"] == [{
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0370",
                             "code": "RED", "display": "Red top"}]},
        "additiveCodeableConcept": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v2-0371", "code": "SST",
            "display": "Serum separator"}]}}]
    assert specimen["note"] == [{"text": "Lipemic"}]
    assert only(bundle, "ServiceRequest")["specimen"] == [reference_to(specimen)]


def test_obr_collector_and_time_complete_the_specimen(oml: Mapping) -> None:
    obr = OBR + "|||20240819100000-0500|||55^DRAWER^DANA"
    bundle = bundle_of(oml, message(ORC, obr, spm(f17="")))
    collection = only(bundle, "Specimen")["collection"]
    assert collection["collectedDateTime"] == "2024-08-19T10:00:00-05:00"
    (collector,) = [e["resource"] for e in bundle["entry"]
                    if f"urn:uuid:{e['resource']['id']}" == collection["collector"]["reference"]]
    assert collector["name"][0]["family"] == "DRAWER"


def test_parent_specimen_is_a_logical_reference(oml: Mapping) -> None:
    specimen = only(bundle_of(oml, message(ORC, OBR, spm(f3="P-1&EHR^LP-1&LIS"))),
                    "Specimen")
    assert specimen["parent"] == [{"type": "Specimen", "identifier": {
        "system": "urn:conduit:id:LIS", "value": "LP-1"}}]
    assert "LP-1" not in [i["value"] for i in specimen["identifier"]]


def test_sac_is_a_container(oml: Mapping) -> None:
    sac = segment("SAC", {3: "TUBE-1^LIS", 21: "10", 22: "4.5", 24: "mL",
                          27: "EDTA^EDTA^HL70371"})
    specimen = only(bundle_of(oml, message(ORC, OBR, spm(), sac)), "Specimen")
    assert specimen["container"] == [{
        "identifier": [{"system": "urn:conduit:id:LIS", "value": "TUBE-1"}],
        "capacity": {"value": 10, "unit": "mL"},
        "specimenQuantity": {"value": 4.5, "unit": "mL"},
        "additiveCodeableConcept": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v2-0371", "code": "EDTA",
            "display": "EDTA"}]}}]


def test_rejected_specimen_is_unsatisfactory(oml: Mapping) -> None:
    specimen = only(bundle_of(oml, message(ORC, OBR, spm(f20="Y", f21="RB^Broken^HL70490"))),
                    "Specimen")
    assert specimen["status"] == "unsatisfactory"


def test_specimen_without_id_hangs_off_its_order(oml: Mapping) -> None:
    first = only(bundle_of(oml, message(ORC, OBR, spm(f2=""))), "Specimen")
    resent = only(bundle_of(oml, message(ORC, OBR, spm(f2=""), control="C2")), "Specimen")
    other = only(bundle_of(oml, message(ORC.replace("EP771200", "EP771299"),
                                        OBR.replace("EP771200", "EP771299"), spm(f2=""))),
                 "Specimen")
    assert first["id"] == resent["id"] != other["id"]


def test_observations_before_and_after_the_specimen(oml: Mapping) -> None:
    bundle = bundle_of(oml, message(
        ORC, OBR, "OBX|1|CWE|49541-6^Fasting^LN||Y^Yes^HL70136||||||O", spm(),
        "OBX|2|NM|VOL^Volume drawn^L||10|mL^^UCUM|||||F"))
    request, specimen = only(bundle, "ServiceRequest"), only(bundle, "Specimen")
    asked, about_tube = of_type(bundle, "Observation")
    assert request["supportingInfo"] == [reference_to(asked), reference_to(about_tube)]
    assert "specimen" not in asked
    assert about_tube["specimen"] == reference_to(specimen)
    assert asked["id"] != about_tube["id"]


def test_a_lab_orders_observations_are_laboratory_ones(oml: Mapping) -> None:
    """OML is a laboratory order: without OBR-24 its answers are still laboratory, as
    the lab's results will report them (US Core's Laboratory Result Observation)."""
    bundle = bundle_of(oml, message(
        ORC, OBR, "OBX|1|CWE|49541-6^Fasting^LN||Y^Yes^HL70136||||||O", spm(),
        "OBX|2|NM|VOL^Volume drawn^L||10|mL^^UCUM|||||F"))
    assert [[c["code"] for c in o["category"][0]["coding"]]
            for o in of_type(bundle, "Observation")] == [["laboratory"], ["laboratory"]]
    radiology = bundle_of(oml, message(ORC, OBR + "||||||||||||||||||||RAD",
                                       "OBX|1|CWE|49541-6^Fasting^LN||Y^Yes^HL70136||||||O"))
    category = only(radiology, "Observation")["category"][0]["coding"][0]["code"]
    assert category == "survey"  # an answer given at order entry, not a lab result


def test_two_orders_each_with_their_specimen(oml: Mapping) -> None:
    second_orc = ORC.replace("EP771200", "EP771201")
    second_obr = OBR.replace("EP771200", "EP771201").replace("2093-3", "718-7")
    bundle = bundle_of(oml, message(ORC, OBR, spm(), second_orc, second_obr,
                                    spm(f2="EP-SPEC-2&EHR")))
    first, second = of_type(bundle, "ServiceRequest")
    one, two = of_type(bundle, "Specimen")
    assert (first["specimen"], second["specimen"]) == ([reference_to(one)], [reference_to(two)])


@pytest.mark.parametrize(("body", "warning"), [
    ((ORC, OBR, spm(f17="20240819101000+9900")),
     "SPM-17: holds a time zone offset that does not exist; read without it"),
    ((ORC, OBR, spm(f12="lots^mL")), "SPM-12: is not a number"),
    ((ORC, "TQ1|1||||||||9", OBR, spm()),
     "TQ1-9: is not a priority code (S, A, R) this mapping knows"),
    ((ORC, OBR, spm(f18="20241340")), "SPM-18: holds a date/time that does not exist"),
])
def test_one_odd_field_is_a_located_warning(oml: Mapping, body: tuple, warning: str) -> None:
    raw = message(*body)
    result = mapped(oml, raw)
    assert warning in [str(w) for w in result.warnings]
    bundle = json.loads(result.output)
    check_transaction(bundle)
    assert only(bundle, "Specimen")["type"]["coding"][0]["code"] == "SER"


def test_a_code_without_system_is_the_senders_local_code(oml: Mapping) -> None:
    request = only(bundle_of(oml, message(ORC, "OBR|1|EP771200^EHR||FERR^Ferritin", spm())),
                   "ServiceRequest")
    assert request["code"]["coding"] == [{"system": "urn:conduit:code:LAKESHORE_HOSP:local",
                                          "code": "FERR", "display": "Ferritin"}]


def test_a_second_patients_orders_are_left_out(oml: Mapping) -> None:
    other = "PID|1||LK0000001^^^LAKESHORE^MR||OTHER^PERSON||19700101|M"
    raw = message(ORC, OBR, spm(), other, ORC.replace("EP771200", "EP779999"))
    result = mapped(oml, raw)
    assert [str(w) for w in result.warnings] == [
        "PID[2]: is a second patient in an order message: its orders are left out; split "
        "the batch upstream"]
    bundle = json.loads(result.output)
    assert len(of_type(bundle, "ServiceRequest")) == 1
    assert len(of_type(bundle, "Patient")) == 1


def test_a_message_without_orders_still_maps_its_patient(oml: Mapping) -> None:
    result = testbench.run_mapping(checks.mapping(FIXTURES.ref), message("NTE|1||nothing"))
    assert isinstance(result, Mapped)
    (warning,) = [str(w) for w in result.warnings if str(w).startswith("ORC:")]
    assert "only its patient is mapped" in warning
    bundle = json.loads(result.output)
    assert len(of_type(bundle, "Patient")) == 1 and not of_type(bundle, "ServiceRequest")


def test_prior_results_are_left_behind_not_read_as_orders(oml: Mapping) -> None:
    prior = ["PV1|1|O|LAB^^^LAKESHORE", "ORC|RE|EP700001^EHR|L-1^LIS",
             "OBR|1|EP700001^EHR|L-1^LIS|2093-3^Cholesterol^LN|||20240101080000-0500",
             "OBX|1|NM|2093-3^Cholesterol^LN||240|mg/dL|||||F"]
    result = mapped(oml, message(ORC, TQ1, OBR, spm(), *prior))
    bundle = json.loads(result.output)
    assert [r["identifier"][0]["value"] for r in of_type(bundle, "ServiceRequest")] == [
        "EP771200"]
    assert not of_type(bundle, "Observation")
    assert {"PV1-3", "ORC[2]-2", "OBX-5"} <= set(result.left_behind)


def test_only_a_message_with_nothing_to_map_fails(oml: Mapping) -> None:
    no_pid = ("MSH|^~\\&|EPIC|LAKESHORE_HOSP|LIS|LAKESHORE_LAB|20240819101500-0500||"
              "OML^O21|C9|P|2.5.1\r" + ORC + "\r" + OBR + "\r").encode()
    checks.check_error(oml, no_pid, "PID-3")
    checks.check_error(oml, message(msh9="ORM^O01"), "MSH-9")
    assert isinstance(testbench.run_mapping(checks.mapping(FIXTURES.ref),
                                            message(msh9="OML^O39")), Skip)


def test_a_specimen_first_order_o33_puts_the_specimen_under_each_order(oml: Mapping) -> None:
    """O33/O35 send the SPM (its OBX, its SAC) before the orders done on it: each order
    names that Specimen, and the OBX about it is mapped once, with the first order."""
    spm = "SPM|1|SP-77&LIS||119364003^Serum specimen^SCT"
    about = "OBX|1|CWE|SPECQ^Specimen quality^L||HEM^Hemolyzed^L||||||F"
    second_orc = ORC.replace("EP771200", "EP771201")
    second_obr = OBR.replace("EP771200", "EP771201").replace("2093-3", "718-7")
    bundle = bundle_of(oml, message(spm, about, ORC, OBR, second_orc, second_obr,
                                    msh9="OML^O33^OML_O33"))
    specimen = only(bundle, "Specimen")
    first, second = of_type(bundle, "ServiceRequest")
    assert first["specimen"] == second["specimen"] == [reference_to(specimen)]
    quality = only(bundle, "Observation")
    assert quality["specimen"] == reference_to(specimen)
    assert first["supportingInfo"] == [reference_to(quality)] and "supportingInfo" not in second


def test_warnings_show_no_values_from_the_message() -> None:
    raw = FIXTURES.input("messy_oml_warnings")
    values = {v for seg in raw.decode().split("\r") for f in seg.split("|")[1:]
              for v in f.replace("^", "&").split("&") if len(v) > 2}
    lines = (FIXTURES.folder / "messy_oml_warnings.warnings").read_text().splitlines()
    assert lines
    for line in lines:
        assert not [v for v in values if v in line.split(": ", 1)[1]], line
