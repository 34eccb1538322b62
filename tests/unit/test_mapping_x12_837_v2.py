"""x12-837-to-fhir@2: @1's claims plus what @1 left out: each line's item control number
(REF*6R, the number an 835 line returns), the clearinghouse's claim number (REF*D9)
and an 837I's admission and discharge hours. @1 keeps its output for the same input."""

from __future__ import annotations

import json

from tests import mapping_checks as checks
from tests.mapping_checks import of_type

FIXTURES = checks.Fixtures("x12-837-to-fhir@2", input_ext=".x12")
V1 = checks.mapping("x12-837-to-fhir@1")
V2 = checks.mapping("x12-837-to-fhir@2")
TRACE = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-itemTraceNumber"
QUALIFIER = "urn:conduit:code:x12:reference-qualifier"


def _check_output(bundle: dict) -> None:
    checks.check_transaction(bundle)
    assert of_type(bundle, "Claim")


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=8, min_outputs=8,
                                    output=_check_output)


def claim(mapping, case: str) -> dict:
    out = checks.run(mapping, FIXTURES.input(case))
    assert isinstance(out, bytes), out
    found, = of_type(json.loads(out), "Claim")
    return found


def test_each_line_carries_its_item_control_number():
    lines = claim(V2, "837p_clearinghouse_d9_line_control_numbers")["item"]
    traces = [[(e["url"], e["valueIdentifier"]["value"],
                e["valueIdentifier"]["type"]["coding"][0]["code"])
               for e in line.get("extension", [])] for line in lines]
    assert traces == [[(TRACE, "WCFM8120-01", "6R")], [(TRACE, "WCFM8120-02", "6R")], []]
    # in the billing provider's scope, as the claim's own number
    found = claim(V2, "837p_clearinghouse_d9_line_control_numbers")
    assert lines[0]["extension"][0]["valueIdentifier"]["system"] == \
        found["identifier"][0]["system"]


def test_the_clearinghouse_claim_number_is_a_second_identifier():
    found = claim(V2, "837p_clearinghouse_d9_line_control_numbers")
    first, second = found["identifier"]
    assert first["value"] == "WCFM-26-008120"
    assert second == {"type": {"coding": [{
        "system": QUALIFIER, "code": "D9",
        "display": "Claim identifier for transmission intermediaries"}]},
        "system": "urn:conduit:id:x12:CBS7781", "value": "CBS2612040008120"}


def test_an_inpatient_claim_keeps_its_admission_and_discharge_hours():
    facts = claim(V2, "837i_inpatient_drg_revenue")["supportingInfo"]
    hours = {f["code"]["coding"][0]["code"]: f["valueString"] for f in facts
             if "valueString" in f and f["category"]["coding"][0]["code"] == "info"}
    assert hours == {"435": "19:40", "096": "11:30"}
    admission = next(f for f in facts if f["category"]["coding"][0]["code"] ==
                     "admissionperiod")
    assert admission["timingPeriod"] == {"start": "2026-11-25"}  # as @1 gives it
    assert [f["sequence"] for f in facts] == list(range(1, len(facts) + 1))


def test_version_1_gives_what_it_gave_for_the_same_claims():
    for case in ("837p_clearinghouse_d9_line_control_numbers", "837i_inpatient_drg_revenue"):
        old = claim(V1, case)
        assert not any("extension" in line for line in old["item"])
        assert len(old["identifier"]) == 1
        assert not [f for f in old.get("supportingInfo", []) if "valueString" in f
                    and f["code"]["coding"][0]["code"] in ("435", "096")]
