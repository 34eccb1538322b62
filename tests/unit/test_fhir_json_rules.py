"""engine/formats/fhir_json_rules.py: what FHIR JSON forbids and the R4 models let
through, located by FHIRPath and never quoting a value."""

from __future__ import annotations

from engine.formats import fhir_json_rules as rules
from engine.formats.fhir_validation import validate_resource


def where(resource: dict) -> list[str]:
    return [p.segment for p in rules.problems(resource, "E")]


def test_nulls_and_empty_arrays_are_located():
    assert where({"resourceType": "Patient", "birthDate": None, "name": [],
                  "address": [{"line": []}]}) == [
        "Patient.birthDate", "Patient.name", "Patient.address[0].line"]


def test_empty_objects_are_located():
    """ele-1: an element has a value or children; `{}` has neither, alone or in a list,
    and a transaction of no entries is an empty array."""
    assert where({"resourceType": "Patient", "maritalStatus": {},
                  "address": [{"city": "X"}, {}]}) == [
        "Patient.maritalStatus", "Patient.address[1]"]
    assert where({"resourceType": "Bundle", "type": "transaction", "entry": []}) == [
        "Bundle.entry"]


def test_a_null_in_a_primitive_array_is_allowed_beside_its_extension_array():
    paired = {"resourceType": "Patient", "name": [{"given": ["Jo", None],
                                                   "_given": [None, {"id": "x"}]}]}
    assert where(paired) == []
    alone = {"resourceType": "Patient", "name": [{"given": ["Jo", None]}]}
    assert where(alone) == ["Patient.name[0].given"]


def test_ids_codes_and_entries_of_a_bundle():
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": {
        "resourceType": "Patient", "id": "x" * 65, "gender": "M",
        "telecom": [{"system": "beeper", "use": "mobile"}]}}]}
    assert where(bundle) == [
        "Bundle.entry[0].resource.id", "Bundle.entry[0].resource.gender",
        "Bundle.entry[0].resource.telecom[0].system"]
    assert where({"resourceType": "Patient", "id": "x" * 64, "gender": "other"}) == []
    assert where({"resourceType": "Organization", "gender": "M"}) == []  # no such binding


def test_keys_sent_twice_are_found_outer_object_first():
    raw = (b'\xef\xbb\xbf{"resourceType": "Bundle", "entry": [{"resource": {"resourceType":'
           b' "Patient", "gender": "male", "gender": "female", "name": [{"family": "A",'
           b' "family": "B"}]}}], "type": "batch", "type": "batch"}')
    assert rules.duplicate_keys(raw) == [
        "Bundle.type", "Bundle.entry[0].resource.gender",
        "Bundle.entry[0].resource.name[0].family"]
    assert rules.duplicate_keys(b'{"resourceType": "Patient", "a": 1, "b": 2}') == []
    assert rules.duplicate_keys(b"not json") == []


def test_texts_never_carry_a_value_and_lenient_only_warns():
    resource = {"resourceType": "Patient", "gender": "SECRET-CODE",
                "telecom": [{"system": "SECRET-SYSTEM"}], "birthDate": None}
    found = validate_resource(resource, "lenient")
    assert found and all(p.severity == "W" for p in found)
    assert not any("SECRET" in p.text or "SECRET" in p.segment for p in found)
    assert {p.severity for p in validate_resource(resource, "strict")} == {"E"}
