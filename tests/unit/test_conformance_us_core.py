"""US Core profile rules (engine.conformance.us_core): every example passes R4 and its
profile; each broken rule fails with the reason a receiver's analyst reads, located at
the element, naming the profile, and quoting none of the patient's values."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from engine.conformance import r4, us_core
from engine.conformance.us_core import Context
from tests.unit.conformance_examples import BIRTH, EXAMPLES, MRN, NAME, PATIENT_REF, example

ALL = us_core.expand(["us-core"])


def reasons_of(resource: dict[str, Any], names: tuple[str, ...] = ALL,
               ctx: Context | None = None) -> list[str]:
    return us_core.reasons(resource, resource["resourceType"], names, ctx or Context())


@pytest.mark.parametrize("profile", sorted(EXAMPLES))
def test_every_example_is_valid_r4_and_passes_its_profile(profile: str) -> None:
    resource = example(profile)
    assert r4.resource_reasons(resource, resource["resourceType"]) == []
    assert reasons_of(resource, (profile,)) == []
    assert reasons_of(resource) == []  # and every profile `us-core` applies to it


def test_the_shorthand_names_every_profile_and_each_type_has_one() -> None:
    assert set(ALL) == set(EXAMPLES)
    assert us_core.expand(["us-core-patient"]) == ("us-core-patient",)
    assert {p.type for p in us_core.PROFILES} >= {
        "Patient", "Encounter", "Observation", "Condition", "AllergyIntolerance",
        "Immunization", "MedicationRequest", "MedicationDispense", "DiagnosticReport",
        "DocumentReference", "Procedure", "Practitioner", "Organization", "Location",
        "Coverage", "ServiceRequest", "Specimen", "RelatedPerson", "Provenance"}


def drop(*keys: str) -> Callable[[dict[str, Any]], None]:
    def change(r: dict[str, Any]) -> None:
        for key in keys:
            r.pop(key)
    return change


def put(**values: Any) -> Callable[[dict[str, Any]], None]:
    def change(r: dict[str, Any]) -> None:
        r.update(values)
    return change


def coded(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


CLINICAL = "http://terminology.hl7.org/CodeSystem/"

# (profile, what is broken, the one reason expected)
BROKEN: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("us-core-patient", drop("identifier"),
     "Patient.identifier: US Core Patient requires an identifier"),
    ("us-core-patient", put(identifier=[{"value": MRN}]),
     "Patient.identifier[0].system: US Core Patient requires a system on every identifier"),
    ("us-core-patient", put(identifier=[{"system": "urn:x"}]),
     "Patient.identifier[0].value: US Core Patient requires a value on every identifier"),
    ("us-core-patient", drop("name"), "Patient.name: US Core Patient requires a name"),
    ("us-core-patient", put(name=[{"text": NAME}]),
     "Patient.name[0]: US Core Patient requires a family or a given name (us-core-6)"),
    ("us-core-patient", drop("gender"), "Patient.gender: US Core Patient requires a gender"),
    ("us-core-patient", put(telecom=[{"value": "555"}]),
     "Patient.telecom[0].system: US Core Patient requires a system on every telecom"),
    ("us-core-encounter", drop("type"), "Encounter.type: US Core Encounter requires a type"),
    ("us-core-encounter", drop("subject"),
     "Encounter.subject: US Core Encounter requires a subject (the patient)"),
    ("us-core-encounter", put(subject={"reference": "Group/g1"}),
     "Encounter.subject: US Core Encounter requires a reference to Patient"),
    ("us-core-encounter", put(identifier=[{"value": "V77"}]),
     "Encounter.identifier[0].system: US Core Encounter requires a system on every "
     "identifier"),
    ("us-core-observation-lab", drop("category"),
     "Observation.category: US Core Laboratory Result Observation requires a laboratory "
     "category"),
    ("us-core-observation-lab", drop("valueQuantity"),
     "Observation.value[x]: US Core Laboratory Result Observation requires a value or a "
     "dataAbsentReason (us-core-2)"),
    ("us-core-observation-lab", drop("subject"),
     "Observation.subject: US Core Laboratory Result Observation requires a subject (the "
     "patient)"),
    ("us-core-vital-signs", drop("category"),
     "Observation.category: US Core Vital Signs requires a vital-signs category"),
    ("us-core-vital-signs", put(code=coded("http://loinc.org", "2823-3")),
     "Observation.code: US Core Vital Signs requires a vital-sign LOINC code"),
    ("us-core-vital-signs", drop("effectiveDateTime"),
     "Observation.effective[x]: US Core Vital Signs requires an effective time"),
    ("us-core-vital-signs", lambda r: r["component"].pop(),
     "Observation.component: US Core Vital Signs requires a diastolic component (LOINC "
     "8462-4)"),
    ("us-core-vital-signs", lambda r: r["component"][0]["valueQuantity"].pop("system"),
     "Observation.component[0].valueQuantity: US Core Vital Signs requires a UCUM unit "
     "(system and code)"),
    ("us-core-simple-observation", drop("code"),
     "Observation.code: US Core Simple Observation requires a code"),
    ("us-core-simple-observation", drop("subject"),
     "Observation.subject: US Core Simple Observation requires a subject (the patient)"),
    ("us-core-condition-encounter-diagnosis", drop("code"),
     "Condition.code: US Core Condition Encounter Diagnosis requires a code"),
    ("us-core-condition-encounter-diagnosis",
     put(clinicalStatus=coded(CLINICAL + "condition-clinical", "better")),
     "Condition.clinicalStatus: US Core Condition Encounter Diagnosis requires a "
     "clinicalStatus from condition-clinical (" + CLINICAL + "condition-clinical)"),
    ("us-core-condition-encounter-diagnosis",
     put(verificationStatus=coded(CLINICAL + "condition-ver-status", "entered-in-error")),
     "Condition.clinicalStatus: US Core Condition Encounter Diagnosis requires no "
     "clinicalStatus when entered in error (con-5)"),
    ("us-core-condition-encounter-diagnosis", put(abatementDateTime="2024-03-02"),
     "Condition.clinicalStatus: US Core Condition Encounter Diagnosis requires an inactive, "
     "resolved or remission clinicalStatus when abated (con-4)"),
    ("us-core-condition-problems-health-concerns", drop("clinicalStatus"),
     "Condition.clinicalStatus: US Core Condition Problems and Health Concerns requires a "
     "clinicalStatus on a problem-list item (con-3)"),
    ("us-core-allergyintolerance", drop("clinicalStatus"),
     "AllergyIntolerance.clinicalStatus: US Core AllergyIntolerance requires a "
     "clinicalStatus unless entered in error (ait-1)"),
    ("us-core-allergyintolerance", drop("code"),
     "AllergyIntolerance.code: US Core AllergyIntolerance requires a code"),
    ("us-core-allergyintolerance",
     put(verificationStatus=coded(CLINICAL + "allergyintolerance-verification", "maybe")),
     "AllergyIntolerance.verificationStatus: US Core AllergyIntolerance requires a "
     "verificationStatus from allergyintolerance-verification (" + CLINICAL
     + "allergyintolerance-verification)"),
    ("us-core-immunization", drop("primarySource"),
     "Immunization.primarySource: US Core Immunization requires primarySource"),
    ("us-core-immunization", drop("occurrenceDateTime"),
     "Immunization.occurrence[x]: US Core Immunization requires an occurrence"),
    ("us-core-medicationrequest", drop("medicationCodeableConcept"),
     "MedicationRequest.medication[x]: US Core MedicationRequest requires a medication "
     "(code or reference)"),
    ("us-core-medicationrequest", drop("intent"),
     "MedicationRequest.intent: US Core MedicationRequest requires an intent"),
    ("us-core-medicationdispense", drop("subject"),
     "MedicationDispense.subject: US Core MedicationDispense requires a subject (the "
     "patient)"),
    ("us-core-diagnosticreport-lab", drop("category"),
     "DiagnosticReport.category: US Core DiagnosticReport for Laboratory Results Reporting "
     "requires a LAB category"),
    ("us-core-diagnosticreport-lab", drop("effectiveDateTime"),
     "DiagnosticReport.effective[x]: US Core DiagnosticReport for Laboratory Results "
     "Reporting requires an effective time when partial, preliminary, final, amended, "
     "corrected or appended (us-core-8)"),
    ("us-core-diagnosticreport-lab", drop("issued"),
     "DiagnosticReport.issued: US Core DiagnosticReport for Laboratory Results Reporting "
     "requires an issued time when partial, preliminary, final, amended, corrected or "
     "appended (us-core-9)"),
    ("us-core-diagnosticreport-lab", put(status="registered", category=[]),
     "DiagnosticReport.category: US Core DiagnosticReport for Laboratory Results Reporting "
     "requires a LAB category"),
    ("us-core-diagnosticreport-note", drop("code"),
     "DiagnosticReport.code: US Core DiagnosticReport for Report and Note Exchange requires "
     "a code"),
    ("us-core-documentreference", drop("category"),
     "DocumentReference.category: US Core DocumentReference requires a category"),
    ("us-core-documentreference", lambda r: r["content"][0]["attachment"].pop("data"),
     "DocumentReference.content[0].attachment: US Core DocumentReference requires data or "
     "a url"),
    ("us-core-procedure", drop("performedDateTime"),
     "Procedure.performed[x]: US Core Procedure requires a performed time when completed "
     "or in progress (us-core-7)"),
    ("us-core-practitioner", put(name=[{"given": ["MARCUS"]}]),
     "Practitioner.name[0].family: US Core Practitioner requires a family name on every "
     "name"),
    ("us-core-practitioner", drop("identifier"),
     "Practitioner.identifier: US Core Practitioner requires an identifier"),
    ("us-core-organization", drop("active"),
     "Organization.active: US Core Organization requires active"),
    ("us-core-organization", drop("name"),
     "Organization.name: US Core Organization requires a name"),
    ("us-core-location", drop("name"), "Location.name: US Core Location requires a name"),
    ("us-core-coverage", drop("relationship"),
     "Coverage.relationship: US Core Coverage requires a relationship"),
    ("us-core-coverage", drop("beneficiary"),
     "Coverage.beneficiary: US Core Coverage requires a beneficiary"),
    ("us-core-servicerequest", drop("code"),
     "ServiceRequest.code: US Core ServiceRequest requires a code"),
    ("us-core-specimen", drop("type"), "Specimen.type: US Core Specimen requires a type"),
    ("us-core-relatedperson", drop("relationship"),
     "RelatedPerson.name: US Core RelatedPerson requires a name or a relationship "
     "(us-core-14)"),
    ("us-core-relatedperson", drop("active"),
     "RelatedPerson.active: US Core RelatedPerson requires active"),
    ("us-core-provenance", drop("recorded"),
     "Provenance.recorded: US Core Provenance requires a recorded time"),
]


@pytest.mark.parametrize(("profile", "change", "expected"), BROKEN,
                         ids=[f"{p}-{i}" for i, (p, _, _) in enumerate(BROKEN)])
def test_each_broken_rule_is_one_located_reason(profile, change, expected) -> None:
    resource = example(profile)
    change(resource)
    assert reasons_of(resource, (profile,)) == [expected]
    # the shorthand finds it too (an Observation here as a lab report's result)
    in_report = Context(results=frozenset({f"{resource['resourceType']}/{resource['id']}"}))
    assert expected in reasons_of(resource, ctx=in_report)


def test_every_profile_has_a_broken_rule_tested() -> None:
    assert {p for p, _, _ in BROKEN} == set(EXAMPLES)


def test_a_practitioner_agent_needs_on_behalf_of_when_its_type_is_known() -> None:
    prov = example("us-core-provenance")
    prov["agent"] = [{"who": {"reference": "urn:uuid:prac-1"}}]
    ctx = Context({"urn:uuid:prac-1": "Practitioner"})
    assert reasons_of(prov, ("us-core-provenance",), ctx) == [
        "Provenance.agent[0].onBehalfOf: US Core Provenance requires onBehalfOf when the "
        "agent is a Practitioner or Device (provenance-1)"]
    prov["agent"][0]["onBehalfOf"] = {"reference": "urn:uuid:org-1"}
    assert reasons_of(prov, ("us-core-provenance",), ctx) == []


def test_a_vital_sign_code_without_a_category_claims_an_observation_for_vital_signs(
        ) -> None:
    obs = example("us-core-observation-lab")
    del obs["category"]
    obs["code"] = coded("http://loinc.org", "8867-4")  # heart rate
    obs["valueQuantity"] = {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org",
                            "code": "/min"}
    assert reasons_of(obs, ("us-core-vital-signs",)) == [
        "Observation.category: US Core Vital Signs requires a vital-signs category"]
    assert reasons_of(obs) == [
        "Observation.category: US Core Vital Signs requires a vital-signs category"]


def test_a_blood_gas_saturation_under_a_laboratory_category_is_a_lab_result() -> None:
    """2708-6 is both a vital sign's code and a blood-gas test's: the category decides."""
    obs = example("us-core-observation-lab")
    obs["code"] = coded("http://loinc.org", "2708-6")
    assert reasons_of(obs) == []
    assert reasons_of(obs, ("us-core-vital-signs",)) == []


def test_a_declared_profile_is_held_to_whatever_the_category() -> None:
    obs = example("us-core-observation-lab")
    obs["meta"] = {"profile": [
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-vital-signs|6.1.0"]}
    assert reasons_of(obs) == [
        "Observation.category: US Core Vital Signs requires a vital-signs category",
        "Observation.code: US Core Vital Signs requires a vital-sign LOINC code"]
    assert reasons_of(obs, ("us-core-observation-lab",)) == []  # not one the gate names


def test_an_uncategorised_result_of_a_report_is_held_to_lab_any_other_to_simple() -> None:
    """A lab report's result lacks the laboratory category; an immunization's
    eligibility observation lacks a category of its own, not a laboratory one."""
    obs = example("us-core-observation-lab")
    del obs["category"]
    report = example("us-core-diagnosticreport-lab")
    report["result"] = [{"reference": "urn:uuid:obs-lab"}]
    ctx = Context.of([("urn:uuid:obs-lab", obs), ("urn:uuid:dr-lab", report)])
    assert reasons_of(obs, ctx=ctx) == [
        "Observation.category: US Core Laboratory Result Observation requires a laboratory "
        "category"]
    assert reasons_of(obs) == [
        "Observation.category: US Core Simple Observation requires a category"]


def test_an_uncategorised_observation_is_held_to_the_lab_profile_the_gate_names() -> None:
    obs = example("us-core-observation-lab")
    del obs["category"]
    assert reasons_of(obs, ("us-core-observation-lab", "us-core-vital-signs")) == [
        "Observation.category: US Core Laboratory Result Observation requires a laboratory "
        "category"]


def test_a_resource_another_profile_claims_is_not_checked_by_a_gate_without_it() -> None:
    lab = example("us-core-observation-lab")
    del lab["subject"]  # would fail the lab profile
    assert reasons_of(lab, ("us-core-vital-signs",)) == []
    assert reasons_of(example("us-core-patient"), ("us-core-observation-lab",)) == []


def test_an_uncategorised_condition_needs_a_category_of_the_profiles_named() -> None:
    cond = example("us-core-condition-problems-health-concerns")
    del cond["category"]
    assert reasons_of(cond, ("us-core-condition-problems-health-concerns",)) == [
        "Condition.category: US Core Condition Problems and Health Concerns requires a "
        "problem-list-item or health-concern category"]
    assert reasons_of(cond) == [
        "Condition.category: US Core Condition Encounter Diagnosis requires an "
        "encounter-diagnosis category"]


def test_a_health_concern_is_a_problems_and_health_concerns_condition() -> None:
    cond = example("us-core-condition-problems-health-concerns")
    cond["category"] = [coded("http://hl7.org/fhir/us/core/CodeSystem/condition-category",
                              "health-concern")]
    assert reasons_of(cond) == []


def test_a_reference_that_cannot_be_resolved_is_not_judged() -> None:
    enc = example("us-core-encounter")
    enc["subject"] = {"reference": "urn:uuid:elsewhere"}
    assert reasons_of(enc) == []
    assert reasons_of(enc, ctx=Context({"urn:uuid:elsewhere": "Group"})) == [
        "Encounter.subject: US Core Encounter requires a reference to Patient"]
    enc["subject"] = PATIENT_REF
    assert reasons_of(enc, ctx=Context({"urn:uuid:pat-1": "Patient"})) == []


def test_reasons_hold_none_of_the_values_that_were_there() -> None:
    everything: list[str] = []
    for profile, change, _ in BROKEN:
        resource = example(profile)
        change(resource)
        for key in ("code", "name", "identifier", "category", "type"):
            if key in resource and isinstance(resource[key], dict):
                resource[key]["text"] = f"{NAME} {MRN} {BIRTH}"
        everything += reasons_of(resource)
    text = json.dumps(everything)
    assert everything and all(v not in text for v in (NAME, MRN, BIRTH, "ALEX", "WELBY"))
