"""engine/pipeline/filters.py: FHIRPath rules on resources shaped as Epic, Cerner and HAPI send
them, decoded by the FHIR codec (so decimals arrive as Decimal, as in the channel)."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import msgspec
import pytest

from engine.config.rules import FilterRule
from engine.formats.fhir import FhirCodec
from engine.pipeline.filters import FhirPathError, Filter, FilterError, compile_fhirpath

EPIC_MRN = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"
RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
LOINC = "http://loinc.org"


def resource(body: dict) -> dict:
    """The resource as the channel's codec hands it to the filter."""
    return FhirCodec().parse(json.dumps(body).encode()).body


EPIC_PATIENT = resource({
    "resourceType": "Patient", "id": "eq081-VQEgP8drUUqCWzHfw3",
    "extension": [{"url": RACE, "extension": [
        {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238",
                                                "code": "2106-3", "display": "White"}},
        {"url": "text", "valueString": "White"}]}],
    "identifier": [
        {"use": "usual", "type": {"text": "EPI"}, "system": EPIC_MRN, "value": "E4321"},
        {"use": "usual", "system": "urn:oid:2.16.840.1.113883.4.1", "value": "000-00-0000"}],
    "name": [{"use": "official", "family": "Testpatient", "given": ["Alex"]}],
    "gender": "female", "birthDate": "1985-08-01",
})
CERNER_PATIENT = resource({
    "resourceType": "Patient", "id": "12724066",
    "meta": {"versionId": "4", "lastUpdated": "2024-03-01T15:00:00.000Z"},
    "identifier": [{"use": "usual", "type": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
        "system": "urn:oid:2.16.840.1.113883.6.1000", "value": "10002701"}],
    "name": [{"use": "official", "family": "Smart", "given": ["Nancy"]}],
    "birthDate": "2008-05",
})
HAPI_PATIENT = resource({
    "resourceType": "Patient", "id": "592911",
    "meta": {"versionId": "1", "lastUpdated": "2024-02-11T08:00:12.345+00:00",
             "source": "#UiHwmh3EMjxTS1jP"},
    "identifier": [{"system": "http://hospital.smarthealthit.org", "value": "1032702"}],
})
GLUCOSE = resource({
    "resourceType": "Observation", "id": "f001", "status": "final",
    "code": {"coding": [{"system": LOINC, "code": "15074-8", "display": "Glucose"}]},
    "subject": {"reference": "Patient/592911"},
    "effectiveDateTime": "2024-03-01T10:15:00-05:00",
    "valueQuantity": {"value": 6.30, "unit": "mmol/l", "system": "http://unitsofmeasure.org",
                      "code": "mmol/L"},
    "interpretation": [{"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
        "code": "H"}]}],
})
NOTE = resource({
    "resourceType": "Observation", "id": "n1", "status": "preliminary",
    "code": {"coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.727688",
                         "code": "9999"}], "text": "Comment"},
    "valueString": "see attached",
})


def rule_holds(expression: str, body: dict) -> bool:
    f = Filter([FilterRule(fhirpath=expression)])
    return f.first_failed(lambda path: "", body) is None


@pytest.mark.parametrize("patient, routed", [
    (EPIC_PATIENT, True), (CERNER_PATIENT, False), (HAPI_PATIENT, False)])
def test_route_on_identifier_system(patient, routed):
    assert rule_holds(f"Patient.identifier.where(system = '{EPIC_MRN}').exists()",
                      patient) is routed


def test_route_on_an_extension_value():
    white = (f"Patient.extension('{RACE}').extension('ombCategory')"
             ".value.ofType(Coding).code = '2106-3'")
    assert rule_holds(white, EPIC_PATIENT)
    assert not rule_holds(white.replace("2106-3", "2054-5"), EPIC_PATIENT)
    assert not rule_holds(white, HAPI_PATIENT)  # no race at all: empty, so filtered


def test_route_on_a_loinc_code():
    glucose = f"Observation.code.coding.where(system = '{LOINC}').code = '15074-8'"
    assert rule_holds(glucose, GLUCOSE)
    assert not rule_holds(glucose, NOTE)  # a local code system only: empty result


def test_value_choice_type_and_decimal_quantities():
    # value[x]: `value` finds valueQuantity; the codec's Decimal compares as a number
    assert isinstance(GLUCOSE["valueQuantity"]["value"], Decimal)
    assert rule_holds("Observation.value.ofType(Quantity).value > 6.2", GLUCOSE)
    assert not rule_holds("Observation.value.ofType(Quantity).value > 6.3", GLUCOSE)
    assert rule_holds("Observation.value.ofType(Quantity).value = 6.3", GLUCOSE)
    assert rule_holds("Observation.value.ofType(Quantity).code = 'mmol/L'", GLUCOSE)
    assert not rule_holds("Observation.value.ofType(Quantity).exists()", NOTE)
    assert rule_holds("Observation.value.ofType(string).exists()", NOTE)
    assert rule_holds("Observation.interpretation.coding.code contains 'H'", GLUCOSE)


def test_birth_date_comparisons():
    assert rule_holds("Patient.birthDate < @2000-01-01", EPIC_PATIENT)
    assert not rule_holds("Patient.birthDate < @2000-01-01", CERNER_PATIENT)
    # A partial date against a full one is unknown (empty), so the rule does not hold.
    assert not rule_holds("Patient.birthDate < @2008-05-15", CERNER_PATIENT)
    assert rule_holds("Patient.birthDate < @2008-06", CERNER_PATIENT)
    # No birth date at all: empty, filtered; `empty()` routes those explicitly.
    assert not rule_holds("Patient.birthDate < @2000-01-01", HAPI_PATIENT)
    assert rule_holds("Patient.birthDate.empty()", HAPI_PATIENT)


def test_datetimes_compare_across_zones():
    assert rule_holds("Observation.effective > @2024-03-01T15:00:00Z", GLUCOSE)
    assert not rule_holds("Observation.effective > @2024-03-01T15:15:00Z", GLUCOSE)


def test_resource_constant_and_meta():
    assert rule_holds("%resource.meta.versionId = '1'", HAPI_PATIENT)
    assert not rule_holds("%resource.meta.versionId = '1'", CERNER_PATIENT)
    assert rule_holds("Patient.meta.source.startsWith('#')", HAPI_PATIENT)


def test_a_rule_of_another_type_does_not_hold():
    assert not rule_holds("Observation.status = 'final'", EPIC_PATIENT)


def test_the_first_failed_rule_is_named_in_the_order_written():
    f = Filter([FilterRule(field="resourceType", equals="Patient"),
                FilterRule(fhirpath="Patient.birthDate < @2000-01-01"),
                FilterRule(fhirpath="Patient.gender = 'female'")])
    codec = FhirCodec()

    def first(body):
        parsed = codec.parse(msgspec.json.encode(body))
        return f.first_failed(lambda path: codec.field(parsed, path), parsed.body)

    assert first(EPIC_PATIENT) is None
    assert first(CERNER_PATIENT) == "fhirpath Patient.birthDate < @2000-01-01"
    assert first(GLUCOSE) == "resourceType equals 'Patient'"
    assert first({**EPIC_PATIENT, "gender": "male"}) == "fhirpath Patient.gender = 'female'"


def test_an_expression_that_cannot_be_evaluated_is_an_error_without_phi(caplog):
    # fhirpathpy cannot compare FHIR JSON quantities with a unit literal: it raises with
    # the resource's values in its message, which must not reach the log or the reason.
    f = Filter([FilterRule(fhirpath="Observation.value > 6 'mmol/L'")])
    with caplog.at_level(logging.DEBUG), pytest.raises(FilterError) as raised:
        f.first_failed(lambda path: "", GLUCOSE)
    assert str(raised.value) == ("fhirpath Observation.value > 6 'mmol/L' could not be "
                                 "evaluated on this message (Exception)")
    assert "6.3" not in caplog.text and "mmol/l" not in caplog.text


def test_a_deeply_nested_resource_is_evaluated_without_recursion_limits():
    deep: dict = {"resourceType": "Patient", "extension": []}
    node = deep
    for _ in range(5000):
        child: dict = {"url": "x", "extension": []}
        node["extension"].append(child)
        node = child
    assert rule_holds("descendants().count() = 10001", deep)
    assert rule_holds("Patient.extension.extension.extension.url = 'x'", deep)


@pytest.mark.parametrize("expression, error", [
    ("", "the expression is empty"),
    ("Patient.name)", "not valid FHIRPath at character 13: extraneous input ')'"),
    ("1 +* 2", "not valid FHIRPath at character 4: extraneous input '*'"),
    ("Patient..name", "not valid FHIRPath at character 9"),
    ("Patient.name.where(use = 'official'", "not valid FHIRPath at character 36: missing ')'"),
    ("Patient.name.where(", "not valid FHIRPath at character 20"),
    ("Patient.telecom.memberOf('http://x')", "function memberOf() is not supported"),
    ("Observation.subject.resolve().exists()", "function resolve() is not supported"),
    ("Patient.name.where(use = 'a', 'b')", "function where() takes 1 argument(s), got 2"),
    ("%patient.id", "unknown constant %patient; available: %context, %resource"),
])
def test_bad_expressions_are_refused_before_any_message(expression, error):
    with pytest.raises(FhirPathError) as raised:
        compile_fhirpath(expression)
    assert str(raised.value).startswith(error)


def test_fhirpathpy_alone_accepts_what_the_strict_check_refuses():
    """Why the grammar is run strictly: fhirpathpy recovers silently from these."""
    import fhirpathpy

    assert fhirpathpy.evaluate({}, "1 +* 2") == [3]
    assert fhirpathpy.evaluate({"resourceType": "Patient", "id": "a"}, "Patient.id)") == ["a"]


# -- the channel's step: Filtering -------------------------------------------------------

async def test_the_step_reads_fields_through_the_codec_and_offloads_big_messages(monkeypatch):
    from engine.message import Parsed
    from engine.pipeline import filters

    codec = FhirCodec()
    big = {"resourceType": "Patient", "gender": "female", "pad": "x" * (filters.THREAD_FROM)}
    parsed = Parsed("fhir", "Patient", body=big)
    threads: list[object] = []

    async def to_thread(func, *args):
        threads.append(func)
        return func(*args)

    monkeypatch.setattr(filters.asyncio, "to_thread", to_thread)
    step = filters.Filtering([FilterRule(fhirpath="Patient.gender = 'male'")], codec.field)
    assert await step.check(parsed, len(json.dumps(big))) == "fhirpath Patient.gender = 'male'"
    assert len(threads) == 1
    assert await step.check(parsed, 100) == "fhirpath Patient.gender = 'male'"
    assert len(threads) == 1  # small: evaluated on the loop
    fields = filters.Filtering([FilterRule(field="gender", equals="female")], codec.field)
    assert await fields.check(parsed, len(json.dumps(big))) is None
    assert len(threads) == 1  # field rules are never slow
    failing = filters.Filtering([FilterRule(fhirpath="Patient.gender > 5 'mg'")], codec.field)
    assert isinstance(await failing.check(parsed, 100), FilterError)
