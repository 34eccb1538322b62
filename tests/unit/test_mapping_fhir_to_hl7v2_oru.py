"""fhir-to-hl7v2-oru@1: every fixture (compared parsed, field by field), determinism, valid
inputs, required MSH fields, OBX value types, status and flag tables, references, and
errors that name FHIR paths."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from engine.formats.hl7v2 import Hl7Message, Hl7v2Codec
from engine.mapping import Mapping
from tests import mapping_checks as checks
from tests.mapping_checks import message_of, run

FIXTURES = checks.Fixtures("fhir-to-hl7v2-oru@1", input_ext=".json", output_ext=".hl7")
HL7 = "x-application/hl7-v2+er7"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

to_oru = checks.mapping_fixture(FIXTURES.ref, accepts="fhir", emits=HL7)


def observation(oid: str = "o1", **fields: Any) -> dict:
    base = {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "2345-7", "display": "Glucose"}]},
            "subject": {"reference": "Patient/p1"}}
    return {**base, **fields}


def report_bundle(*observations: dict, **report_fields: Any) -> dict:
    """A collection Bundle: a final report with one result per observation, and its Patient."""
    report = {"resourceType": "DiagnosticReport", "id": "r1",
              "meta": {"lastUpdated": "2024-03-12T08:00:12-05:00"}, "status": "final",
              "code": {"coding": [{"system": LOINC, "code": "24323-8", "display": "CMP"}]},
              "subject": {"reference": "Patient/p1"},
              "result": [{"reference": f"Observation/{o['id']}"} for o in observations],
              **report_fields}
    patient = {"resourceType": "Patient", "id": "p1",
               "identifier": [{"system": "urn:conduit:id:EPI", "value": "E4410023"}],
               "name": [{"family": "HALVORSEN", "given": ["KRISTIN"]}]}
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in (report, patient, *observations)]}


def obx(mapping: Mapping, **fields: Any) -> Hl7Message:
    """The message for one result with `fields`."""
    return message_of(mapping, report_bundle(observation(**fields)))


# ---- fixtures ---------------------------------------------------------------------------


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=6, min_outputs=5)


@pytest.mark.parametrize("case", FIXTURES.output_cases)
def test_output_parses_and_carries_the_required_fields(to_oru: Mapping, case: str) -> None:
    out = run(to_oru, FIXTURES.input(case))
    assert isinstance(out, bytes)
    parsed = Hl7v2Codec().parse(out)
    message = parsed.body
    names = [s.name for s in message.segments]
    assert names[:5] == ["MSH", "PID", "ORC", "OBR", names[4]] and names[4] in ("NTE", "OBX")
    assert set(names) <= {"MSH", "PID", "ORC", "OBR", "OBX", "NTE"}
    assert parsed.message_type == "ORU^R01" and message.value("MSH-9.3") == "ORU_R01"
    assert message.value("MSH-3") == "CONDUIT" and message.value("MSH-7")
    assert message.value("MSH-11") == "P" and message.version == "2.5.1"
    assert 0 < len(message.control_id) <= 20
    obr = message.segment("OBR")
    assert message.value("ORC-1") == "RE" and obr is not None and obr.raw(4) and obr.value(25)
    for n, seg in enumerate(message.all("OBX"), start=1):
        assert seg.value(1) == str(n)
        assert seg.value(3) and seg.value(11)
        assert bool(seg.value(2)) == bool(seg.raw(5))


@pytest.mark.parametrize("case", FIXTURES.output_cases)
def test_output_passes_hl7apy_strict_structure_validation(to_oru: Mapping, case: str) -> None:
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    out = run(to_oru, FIXTURES.input(case))
    assert isinstance(out, bytes)
    parse_message(out.decode("utf-8"), validation_level=VALIDATION_LEVEL.STRICT,
                  find_groups=True).validate()


# ---- OBX values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind", "obx5", "obx6"),
    [
        ({"valueQuantity": {"value": 7.2, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"}},
         "NM", ["7.2"], ["mmol/L", "mmol/L", "UCUM"]),
        ({"valueQuantity": {"value": 98, "unit": "mg/dL"}}, "NM", ["98"], ["mg/dL"]),
        ({"valueQuantity": {"value": 0.5, "comparator": "<", "unit": "ng/mL"}},
         "SN", ["<", "0.5"], ["ng/mL"]),
        ({"valueQuantity": {"value": 1e-05}}, "NM", ["0.00001"], []),
        ({"valueString": "Negative"}, "ST", ["Negative"], []),
        ({"valueString": "line one\nline two"}, "FT", ["line one\nline two"], []),
        ({"valueString": "x" * 200}, "TX", ["x" * 200], []),
        ({"valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct",
                                               "code": "260385009", "display": "Negative"}]}},
         "CWE", ["260385009", "Negative", "SCT"], []),
        ({"valueCodeableConcept": {"text": "Trace"}}, "CWE", ["", "Trace"], []),
        ({"valueBoolean": False}, "CWE", ["N", "No", "HL70136"], []),
        ({"valueInteger": 3}, "NM", ["3"], []),
        ({"valueDateTime": "2024-03-11T20:00:00Z"}, "DTM", ["20240311200000+0000"], []),
        ({"valueTime": "07:30:00"}, "TM", ["073000"], []),
        ({"valueRange": {"low": {"value": 2}, "high": {"value": 5}}},
         "SN", ["", "2", "-", "5"], []),
        ({"valueRatio": {"numerator": {"value": 1}, "denominator": {"value": 64}}},
         "SN", ["", "1", ":", "64"], []),
    ],
)
def test_value_types(to_oru: Mapping, value: dict, kind: str, obx5: list, obx6: list) -> None:
    seg = obx(to_oru, **value).segment("OBX")
    assert seg is not None
    assert seg.value(2) == kind
    rep = seg.repetitions(5)[0]
    assert [rep.value(i) for i in range(1, len(obx5) + 1)] == obx5
    assert [seg.value(6, i) for i in range(1, len(obx6) + 1)] == obx6
    assert seg.value(6, len(obx6) + 1) == ""


def _json(resource: dict) -> bytes:
    """`resource` as JSON, each string "@<digits>" written as that JSON number verbatim."""
    return re.sub(r'"@([0-9.]+)"', r"\1", json.dumps(resource)).encode()


def test_decimals_are_sent_with_the_digits_written(to_oru: Mapping) -> None:
    """7.20 is not 7.2: the FHIR codec keeps a decimal's digits and OBX-5/OBX-7 carry them."""
    raw = _json(report_bundle(observation(
        valueQuantity={"value": "@7.20", "unit": "mmol/L"},
        referenceRange=[{"low": {"value": "@3.50"}, "high": {"value": "@5.10"}}],
    )))
    seg = message_of(to_oru, raw).segment("OBX")
    assert seg is not None
    assert (seg.value(2), seg.value(5), seg.value(7)) == ("NM", "7.20", "3.50-5.10")


def test_a_report_without_id_with_decimals_gets_a_stable_control_id(to_oru: Mapping) -> None:
    """MSH-10 hashes a report without id as canonical JSON, Decimals included."""
    bundle = report_bundle(observation(valueQuantity={"value": "@7.20"}))
    bundle["entry"][0]["resource"].pop("id")
    raw = _json(bundle)
    first, again = message_of(to_oru, raw), message_of(to_oru, raw)
    assert first.value("MSH-10") == again.value("MSH-10") != ""
    assert first.value("OBX-5") == "7.20"


def test_unsupported_value_type_fails_naming_it(to_oru: Mapping) -> None:
    result = observation(valuePeriod={"start": "2024-01-01"})
    checks.check_error(to_oru, report_bundle(result), "Bundle.entry[2].resource.valuePeriod")


@pytest.mark.parametrize(
    ("ranges", "obx7"),
    [
        ([{"low": {"value": 3.5}, "high": {"value": 5.1}}], "3.5-5.1"),
        ([{"low": {"value": 150}}], ">150"),
        ([{"high": {"value": 200}}], "<200"),
        ([{"text": "negative"}, {"low": {"value": 1}}], "negative"),
        ([], ""),
    ],
)
def test_reference_range(to_oru: Mapping, ranges: list, obx7: str) -> None:
    message = obx(to_oru, valueQuantity={"value": 4}, referenceRange=ranges)
    assert message.value("OBX-7") == obx7


@pytest.mark.parametrize("code", ["H", "L", "HH", "LL", "N", "A", "AA", "POS", "NEG", "<", ">"])
def test_interpretation_is_the_abnormal_flag(to_oru: Mapping, code: str) -> None:
    interpretation = [{"coding": [{"system": V3_INTERPRETATION, "code": code}]}]
    message = obx(to_oru, valueQuantity={"value": 4}, interpretation=interpretation)
    assert message.value("OBX-8") == code


def test_interpretation_outside_table_0078_fails(to_oru: Mapping) -> None:
    result = observation(valueQuantity={"value": 4}, interpretation=[{"text": "a bit high"}])
    checks.check_error(
        to_oru, report_bundle(result), "Bundle.entry[2].resource.interpretation[0]"
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [("registered", "I"), ("preliminary", "P"), ("final", "F"), ("amended", "C"),
     ("corrected", "C"), ("cancelled", "X"), ("entered-in-error", "W")],
)
def test_observation_status_through_table_0085(to_oru: Mapping, status: str, code: str) -> None:
    assert obx(to_oru, status=status, valueInteger=1).value("OBX-11") == code


def test_unknown_observation_status_fails(to_oru: Mapping) -> None:
    result = observation(status="unknown", valueInteger=1)
    checks.check_error(to_oru, report_bundle(result), "Bundle.entry[2].resource.status")


@pytest.mark.parametrize(
    ("status", "code"),
    [("registered", "I"), ("partial", "A"), ("preliminary", "P"), ("final", "F"),
     ("amended", "C"), ("corrected", "C"), ("appended", "C"), ("cancelled", "X")],
)
def test_report_status_through_table_0123(to_oru: Mapping, status: str, code: str) -> None:
    bundle = report_bundle(observation(valueInteger=1), status=status)
    assert message_of(to_oru, bundle).value("OBR-25") == code


def test_notes_follow_their_observation(to_oru: Mapping) -> None:
    first = observation("o1", valueInteger=1, note=[{"text": "one"}, {"text": "two | three"}])
    second = observation("o2", valueInteger=2)
    message = message_of(to_oru, report_bundle(first, second, conclusion="All done."))
    rows = [(s.name, s.value(1), s.value(3)) for s in message.segments[3:]]
    assert rows == [("OBR", "1", "r1"), ("NTE", "1", "All done."), ("OBX", "1", "2345-7"),
                    ("NTE", "1", "one"), ("NTE", "2", "two | three"), ("OBX", "2", "2345-7")]


def test_report_times_and_order_numbers(to_oru: Mapping) -> None:
    placer = {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                   "code": "PLAC"}]},
              "system": "urn:conduit:id:EPIC", "value": "ORD-1"}
    filler = {"system": "urn:oid:1.2.3.4", "value": "LAB-1"}
    bundle = report_bundle(observation(valueInteger=1), identifier=[placer, filler],
                           effectiveDateTime="2024-03-12T07:05:00-05:00",
                           issued="2024-03-12T07:58:41-05:00")
    message = message_of(to_oru, bundle)
    assert message.value("ORC-2") == message.value("OBR-2") == "ORD-1"
    assert message.value("OBR-2.2") == "EPIC"
    assert (message.value("OBR-3"), message.value("OBR-3.3"), message.value("OBR-3.4")) == (
        "LAB-1", "1.2.3.4", "ISO")
    assert message.value("OBR-7") == "20240312070500-0500"
    assert message.value("OBR-22") == "20240312075841-0500"


# ---- references -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reference",
    ["Patient/p1", "https://fhir.example.org/r4/Patient/p1",
     "https://fhir.example.org/r4/Patient/p1/_history/2",
     "urn:uuid:aa5e5a5e-0000-4000-8000-000000000001"],
)
def test_subject_resolves_by_type_id_url_or_full_url(to_oru: Mapping, reference: str) -> None:
    bundle = report_bundle(observation(valueInteger=1), subject={"reference": reference})
    bundle["entry"][1]["fullUrl"] = "urn:uuid:aa5e5a5e-0000-4000-8000-000000000001"
    assert message_of(to_oru, bundle).value("PID-3") == "E4410023"


def test_report_with_contained_resources(to_oru: Mapping) -> None:
    bundle = report_bundle(observation(valueInteger=1))
    report, patient, result = (e["resource"] for e in bundle["entry"])
    contained = {**report, "contained": [patient, result], "subject": {"reference": "#p1"},
                 "result": [{"reference": "#o1"}]}
    message = message_of(to_oru, contained)
    assert message.value("PID-3") == "E4410023" and message.value("OBX-5") == "1"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda b: b["entry"].pop(1), "Bundle.entry[0].resource.subject"),
        (lambda b: b["entry"].pop(2), "Bundle.entry[0].resource.result[0]"),
        (lambda b: b["entry"][0]["resource"].update(result=[{"reference": "Patient/p1"}]),
         "Bundle.entry[0].resource.result[0]"),
        (lambda b: b["entry"].pop(0), "Bundle.entry"),
        (lambda b: b["entry"][0]["resource"].update(status="entered-in-error"),
         "Bundle.entry[0].resource.status"),
        (lambda b: b["entry"][0]["resource"].pop("code"), "Bundle.entry[0].resource.code"),
        (lambda b: b["entry"][0]["resource"].pop("meta"),
         "Bundle.entry[0].resource.meta.lastUpdated"),
    ],
)
def test_what_cannot_be_sent_fails_naming_the_fhir_path(
    to_oru: Mapping, change: Any, path: str
) -> None:
    bundle = report_bundle(observation(valueInteger=1))
    change(bundle)
    checks.check_error(to_oru, bundle, path, phi=("E4410023", "HALVORSEN"))
