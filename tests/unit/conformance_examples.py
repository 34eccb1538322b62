"""Valid FHIR R4 resources, one per US Core profile the gate knows, for the conformance
tests to break one rule at a time. Fictional patient PLUMTREEWICK: her name, MRN and
birth date must never appear in a reason."""

from __future__ import annotations

import copy
from typing import Any

NAME, MRN, BIRTH = "PLUMTREEWICK", "MRN55501234", "1970-04-12"
LOINC = "http://loinc.org"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
COND_CAT = "http://terminology.hl7.org/CodeSystem/condition-category"
PATIENT_REF = {"reference": "urn:uuid:pat-1"}


def cc(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def clinical(system_tail: str, code: str) -> dict[str, Any]:
    return cc(f"http://terminology.hl7.org/CodeSystem/{system_tail}", code)


EXAMPLES: dict[str, dict[str, Any]] = {
    "us-core-patient": {
        "resourceType": "Patient", "id": "pat-1",
        "identifier": [{"system": "urn:conduit:id:NORTHWING", "value": MRN}],
        "name": [{"family": NAME, "given": ["ALEX"]}], "gender": "female",
        "birthDate": BIRTH, "telecom": [{"system": "phone", "value": "217-555-0134"}]},
    "us-core-encounter": {
        "resourceType": "Encounter", "id": "enc-1", "status": "finished",
        "identifier": [{"system": "urn:conduit:visit", "value": "V77"}],
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                  "code": "IMP"},
        "type": [{"text": "Inpatient admission"}], "subject": PATIENT_REF},
    "us-core-observation-lab": {
        "resourceType": "Observation", "id": "obs-lab", "status": "final",
        "category": [cc(OBS_CAT, "laboratory")], "code": cc(LOINC, "2823-3"),
        "subject": PATIENT_REF, "effectiveDateTime": "2024-03-01T10:15:00-05:00",
        "valueQuantity": {"value": 4.1, "unit": "mmol/L",
                          "system": "http://unitsofmeasure.org", "code": "mmol/L"}},
    "us-core-vital-signs": {
        "resourceType": "Observation", "id": "obs-bp", "status": "final",
        "category": [cc(OBS_CAT, "vital-signs")], "code": cc(LOINC, "85354-9"),
        "subject": PATIENT_REF, "effectiveDateTime": "2024-03-01T10:15:00-05:00",
        "component": [
            {"code": cc(LOINC, "8480-6"), "valueQuantity": {
                "value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]"}},
            {"code": cc(LOINC, "8462-4"), "valueQuantity": {
                "value": 80, "unit": "mmHg", "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]"}}]},
    "us-core-simple-observation": {
        "resourceType": "Observation", "id": "obs-smoking", "status": "final",
        "category": [cc(OBS_CAT, "social-history")], "code": cc(LOINC, "72166-2"),
        "subject": PATIENT_REF, "effectiveDateTime": "2024-03-01",
        "valueCodeableConcept": cc("http://snomed.info/sct", "266919005")},
    "us-core-condition-encounter-diagnosis": {
        "resourceType": "Condition", "id": "cond-ed",
        "category": [cc(COND_CAT, "encounter-diagnosis")],
        "clinicalStatus": clinical("condition-clinical", "active"),
        "verificationStatus": clinical("condition-ver-status", "confirmed"),
        "code": cc("http://hl7.org/fhir/sid/icd-10-cm", "J18.9"), "subject": PATIENT_REF},
    "us-core-condition-problems-health-concerns": {
        "resourceType": "Condition", "id": "cond-pl",
        "category": [cc(COND_CAT, "problem-list-item")],
        "clinicalStatus": clinical("condition-clinical", "active"),
        "code": cc("http://snomed.info/sct", "38341003"), "subject": PATIENT_REF},
    "us-core-allergyintolerance": {
        "resourceType": "AllergyIntolerance", "id": "alg-1",
        "clinicalStatus": clinical("allergyintolerance-clinical", "active"),
        "verificationStatus": clinical("allergyintolerance-verification", "confirmed"),
        "code": {"text": "Penicillin"}, "patient": PATIENT_REF},
    "us-core-immunization": {
        "resourceType": "Immunization", "id": "imm-1", "status": "completed",
        "vaccineCode": cc("http://hl7.org/fhir/sid/cvx", "08"), "patient": PATIENT_REF,
        "occurrenceDateTime": "2024-03-01", "primarySource": True},
    "us-core-medicationrequest": {
        "resourceType": "MedicationRequest", "id": "mr-1", "status": "active",
        "intent": "order",
        "medicationCodeableConcept": cc("http://www.nlm.nih.gov/research/umls/rxnorm",
                                        "197361"),
        "subject": PATIENT_REF, "authoredOn": "2024-03-01"},
    "us-core-medicationdispense": {
        "resourceType": "MedicationDispense", "id": "md-1", "status": "completed",
        "medicationCodeableConcept": cc("http://www.nlm.nih.gov/research/umls/rxnorm",
                                        "197361"),
        "subject": PATIENT_REF},
    "us-core-diagnosticreport-lab": {
        "resourceType": "DiagnosticReport", "id": "dr-lab", "status": "final",
        "category": [cc("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB")],
        "code": cc(LOINC, "24323-8"), "subject": PATIENT_REF,
        "effectiveDateTime": "2024-03-01T10:15:00-05:00",
        "issued": "2024-03-01T11:02:00-05:00"},
    "us-core-diagnosticreport-note": {
        "resourceType": "DiagnosticReport", "id": "dr-note", "status": "final",
        "category": [cc(LOINC, "LP29684-5")], "code": cc(LOINC, "18748-4"),
        "subject": PATIENT_REF, "effectiveDateTime": "2024-03-01T10:15:00-05:00"},
    "us-core-documentreference": {
        "resourceType": "DocumentReference", "id": "doc-1", "status": "current",
        "type": cc(LOINC, "18842-5"),
        "category": [cc("http://hl7.org/fhir/us/core/CodeSystem/"
                        "us-core-documentreference-category", "clinical-note")],
        "subject": PATIENT_REF,
        "content": [{"attachment": {"contentType": "text/plain", "data": "aGVsbG8="}}]},
    "us-core-procedure": {
        "resourceType": "Procedure", "id": "proc-1", "status": "completed",
        "code": cc("http://www.ama-assn.org/go/cpt", "44950"), "subject": PATIENT_REF,
        "performedDateTime": "2024-03-01"},
    "us-core-practitioner": {
        "resourceType": "Practitioner", "id": "prac-1",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
        "name": [{"family": "WELBY", "given": ["MARCUS"]}]},
    "us-core-organization": {
        "resourceType": "Organization", "id": "org-1", "active": True,
        "name": "Northwing Hospital"},
    "us-core-location": {"resourceType": "Location", "id": "loc-1", "name": "4W 401"},
    "us-core-coverage": {
        "resourceType": "Coverage", "id": "cov-1", "status": "active",
        "beneficiary": PATIENT_REF,
        "relationship": clinical("subscriber-relationship", "self"),
        "payor": [{"reference": "urn:uuid:org-1"}]},
    "us-core-servicerequest": {
        "resourceType": "ServiceRequest", "id": "sr-1", "status": "active",
        "intent": "order", "code": cc(LOINC, "24323-8"), "subject": PATIENT_REF},
    "us-core-specimen": {
        "resourceType": "Specimen", "id": "spm-1",
        "type": cc("http://terminology.hl7.org/CodeSystem/v2-0487", "BLD"),
        "subject": PATIENT_REF},
    "us-core-relatedperson": {
        "resourceType": "RelatedPerson", "id": "rp-1", "active": True,
        "patient": PATIENT_REF,
        "relationship": [clinical("v3-RoleCode", "MTH")]},
    "us-core-provenance": {
        "resourceType": "Provenance", "id": "prov-1",
        "target": [{"reference": "urn:uuid:pat-1"}], "recorded": "2024-03-01T10:15:00-05:00",
        "agent": [{"who": {"reference": "urn:uuid:org-1"}}]},
}


def example(profile: str) -> dict[str, Any]:
    """A fresh copy, for a test to break."""
    return copy.deepcopy(EXAMPLES[profile])


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    """A transaction Bundle PUTting each resource under urn:uuid:<id>."""
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:{r['id']}", "resource": r,
         "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for r in resources]}
