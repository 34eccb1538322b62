"""R4 validity (engine.conformance.r4): the fhir.resources R4B models' errors and the
required codes and empty elements they let through, each a located reason that says
what is wrong in words of its own, never the value that was there."""

from __future__ import annotations

import json

from engine.conformance import r4
from tests.unit.conformance_examples import BIRTH, MRN, NAME, bundle, example

WHERE = "Bundle.entry[0].resource(Patient)"


def test_a_valid_resource_has_no_reason() -> None:
    assert r4.resource_reasons(example("us-core-patient"), WHERE) == []


def test_a_malformed_date_is_located_and_not_quoted() -> None:
    patient = example("us-core-patient")
    patient["birthDate"] = "19700412"
    [reason] = r4.resource_reasons(patient, WHERE)
    assert reason == f"{WHERE}.birthDate: is not a valid FHIR date"
    assert "19700412" not in reason


def test_an_element_r4_does_not_have() -> None:
    patient = example("us-core-patient")
    patient["mrn"] = MRN
    assert r4.resource_reasons(patient, "Patient") == [
        "Patient.mrn: is not an element of FHIR R4 here"]


def test_a_missing_required_element_in_a_repetition() -> None:
    obs = example("us-core-observation-lab")
    obs["note"] = [{"authorString": NAME}]
    assert r4.resource_reasons(obs, "Observation") == [
        "Observation.note[0].text: is required"]


def test_a_list_where_r4_repeats_and_an_object_where_it_does_not() -> None:
    obs = example("us-core-observation-lab")
    obs["category"] = obs["category"][0]
    obs["subject"] = {"reference": 5}
    assert r4.resource_reasons(obs, "Observation") == [
        "Observation.category: must be a list (the element repeats)",
        "Observation.subject.reference: must be a string"]


def test_two_types_of_one_choice_element() -> None:
    obs = example("us-core-observation-lab")
    obs["valueString"] = "4.1"
    [reason] = r4.resource_reasons(obs, "Observation")
    assert reason == ("Observation: holds more than one type of a choice element ([x]); "
                      "only one is allowed")


def test_a_status_outside_its_required_binding() -> None:
    obs = example("us-core-observation-lab")
    obs["status"] = "done"
    assert r4.resource_reasons(obs, "Observation") == [
        "Observation.status: is not a code R4 allows for Observation.status"]
    patient = example("us-core-patient")
    patient["gender"] = "F"
    assert r4.resource_reasons(patient, "Patient") == [
        "Patient.gender: is not a code R4 allows for Patient.gender"]


def test_empty_elements_are_named() -> None:
    patient = example("us-core-patient")
    patient["address"] = [{}]
    patient["name"][0]["given"] = [""]
    found = r4.resource_reasons(patient, "Patient")
    assert "Patient.address[0]: is empty (FHIR forbids empty elements)" in found
    assert "Patient.name[0].given[0]: is empty (FHIR forbids empty elements)" in found


def test_an_unknown_resource_type_and_a_non_resource() -> None:
    assert r4.resource_reasons({"resourceType": "Pateint"}, "Bundle.entry[3].resource") == [
        "Bundle.entry[3].resource.resourceType: is not an R4 resource type"]
    assert r4.resource_reasons([1], "Bundle.entry[3].resource") == [
        "Bundle.entry[3].resource: must be a resource (a JSON object)"]
    assert r4.resource_reasons({"id": "x"}, "Bundle.entry[3].resource") == [
        "Bundle.entry[3].resource: has no resourceType"]


def test_the_bundle_shell_its_type_and_request_methods() -> None:
    whole = bundle(example("us-core-patient"))
    assert r4.bundle_shell_reasons(whole) == []
    whole["type"] = "transactional"
    whole["entry"][0]["request"]["method"] = "UPSERT"
    assert r4.bundle_shell_reasons(whole) == [
        "Bundle.type: is not a code R4 allows for Bundle.type",
        "Bundle.entry[0].request.method: is not an HTTP verb R4 allows"]
    whole["entry"][0]["request"] = {"method": "PUT"}
    assert r4.bundle_shell_reasons(whole) == [
        "Bundle.entry[0].request.url: is required",
        "Bundle.type: is not a code R4 allows for Bundle.type"]
    assert r4.bundle_shell_reasons({"resourceType": "Bundle", "type": "batch",
                                    "entry": {"x": 1}}) == [
        "Bundle.entry: must be a list of entries"]


def test_no_reason_quotes_a_value() -> None:
    patient = example("us-core-patient")
    patient.update(birthDate=f"{BIRTH}T", gender=NAME, multipleBirthInteger=MRN,
                   name=[{"family": NAME, "period": {"start": NAME}}])
    found = r4.resource_reasons(patient, "Patient")
    assert len(found) >= 3
    text = json.dumps(found)
    assert NAME not in text and MRN not in text and BIRTH not in text


def test_a_key_that_is_no_element_name_is_not_repeated() -> None:
    """An output passing a sender's JSON through could hold anything as a key."""
    patient = example("us-core-patient")
    patient[f"{NAME} {MRN}"] = "x"
    patient["address"] = [{f"{BIRTH}": ""}]
    found = r4.resource_reasons(patient, "Patient")
    assert "Patient.?: is not an element of FHIR R4 here" in found
    assert "Patient.address[0].?: is empty (FHIR forbids empty elements)" in found
    assert NAME not in json.dumps(found) and BIRTH not in json.dumps(found)


def test_codes_of_data_types_outside_their_required_bindings() -> None:
    """HL7v2 codes copied as they are (name type L, telecom PRN) are not R4's."""
    patient = example("us-core-patient")
    patient["name"][0]["use"] = "L"
    patient["telecom"] = [{"system": "phone", "value": "555", "use": "PRN"}]
    patient["identifier"][0]["use"] = "MR"
    patient["address"] = [{"city": "Springfield", "type": "H"}]
    patient["contact"] = [{"name": {"family": NAME, "use": "official"},
                           "telecom": [{"system": "PH", "value": "555"}]}]
    patient["text"] = {"status": "done", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">"
                       "x</div>"}
    assert r4.resource_reasons(patient, "Patient") == [
        "Patient.text.status: is not a code R4 allows for Narrative.status",
        "Patient.identifier[0].use: is not a code R4 allows for Identifier.use",
        "Patient.name[0].use: is not a code R4 allows for HumanName.use",
        "Patient.telecom[0].use: is not a code R4 allows for ContactPoint.use",
        "Patient.address[0].type: is not a code R4 allows for Address.type",
        "Patient.contact[0].telecom[0].system: is not a code R4 allows for "
        "ContactPoint.system"]
    org = {"resourceType": "Organization", "id": "o", "name": "Northwing",
           "address": [{"use": "work"}]}
    assert r4.resource_reasons(org, "Organization") == []  # a string name is no HumanName
    obs = example("us-core-observation-lab")
    obs["valueQuantity"]["comparator"] = "~"
    assert r4.resource_reasons(obs, "Observation") == [
        "Observation.valueQuantity.comparator: is not a code R4 allows for "
        "Quantity.comparator"]
