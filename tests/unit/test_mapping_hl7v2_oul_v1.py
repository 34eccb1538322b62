"""hl7v2-oul-to-fhir@1: every fixture as a valid R4 transaction; R22, R23 and R24 each put
their results on the right Specimen (with its containers) and report; a report is the
one the ORU feed makes for the same order; the ADT feed's Patient; odd fields as located
warnings without values."""

from __future__ import annotations

import pytest

from engine import testbench
from engine.errors import MappingError
from engine.maplib.v2_to_fhir import oul
from engine.mapping import Mapping, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, of_type, run, segment

FIXTURES = checks.Fixtures("hl7v2-oul-to-fhir@1")
to_fhir = checks.mapping_fixture(FIXTURES.ref)
oru = checks.mapping_fixture("hl7v2-oru-to-fhir@2")

PID = "PID|1||ML4471203^^^MERCY^MR||HALVORSEN^INGA^K||19710412|F"
SPM = segment("SPM", {1: "1", 2: "^T-100&LIS", 4: "119364003^Serum specimen^SCT",
                      17: "20250212064500-0600"})
SAC = segment("SAC", {3: "T-100-01^LIS"})
OBR = segment("OBR", {1: "1", 2: "P-1^EHR", 3: "F-1^LIS", 4: "2345-7^Glucose^LN",
                      7: "20250212064500-0600", 25: "F"})
OBX = segment("OBX", {1: "1", 2: "NM", 3: "2345-7^Glucose^LN", 5: "88", 6: "mg/dL", 11: "F"})


def message(event: str, *body: str, msh_type: str = "OUL", pid: str | None = PID) -> bytes:
    head = (f"MSH|^~\\&|COBAS|MERCY_CORE|LIS|MERCY_LAB|20250212083015-0600||"
            f"{msh_type}^{event}|C1|P|2.5.1")
    lines = [head, *([pid] if pid else []), *body]
    return ("\r".join(lines) + "\r").encode()


def by_id(bundle: dict) -> dict[str, dict]:
    return {f"urn:uuid:{e['resource']['id']}": e["resource"] for e in bundle["entry"]}


# ---- fixtures ---------------------------------------------------------------------------


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=8, min_outputs=6,
                                    output=checks.check_transaction)


def test_declares_its_events_and_every_resource_its_bundles_hold(to_fhir: Mapping) -> None:
    assert oul.EVENTS == ("R22", "R23", "R24")
    made = {e["resource"]["resourceType"] for case in FIXTURES.output_cases
            for e in bundle_of(to_fhir, FIXTURES.input(case))["entry"]}
    assert {"Patient", "Specimen", "DiagnosticReport", "Observation", "ServiceRequest",
            "Device", "Encounter"} <= made
    assert made <= set(oul.RESOURCES)


# ---- structures -----------------------------------------------------------------------------


@pytest.mark.parametrize(("event", "body"), [
    ("R22", (SPM, SAC, OBR, OBX)),
    ("R23", (SPM, SAC, "ORC|SC|P-1^EHR|F-1^LIS||CM", OBR, OBX)),
    ("R24", (OBR, "ORC|SC|P-1^EHR|F-1^LIS||CM", SPM, SAC, OBX)),
])
def test_each_structure_puts_the_result_on_its_specimen_and_report(
        to_fhir: Mapping, event: str, body: tuple[str, ...]) -> None:
    bundle = bundle_of(to_fhir, message(event, *body))
    specimen = of_type(bundle, "Specimen")[0]
    [observation] = of_type(bundle, "Observation")
    [report] = of_type(bundle, "DiagnosticReport")
    assert specimen["identifier"][0]["value"] == "T-100"
    assert specimen["container"][-1]["identifier"][0]["value"] == "T-100-01"
    assert observation["specimen"] == {"reference": f"urn:uuid:{specimen['id']}"}
    assert report["specimen"] == [{"reference": f"urn:uuid:{specimen['id']}"}]
    assert report["result"] == [{"reference": f"urn:uuid:{observation['id']}"}]
    assert len(of_type(bundle, "ServiceRequest")) == 1


def test_the_report_is_the_one_the_oru_feed_makes(to_fhir: Mapping, oru: Mapping) -> None:
    from_oul = bundle_of(to_fhir, message("R22", SPM, OBR, OBX))
    from_oru = bundle_of(oru, message("R01", OBR, OBX, msh_type="ORU"))
    for kind in ("Patient", "DiagnosticReport", "Observation", "ServiceRequest"):
        assert [r["id"] for r in of_type(from_oul, kind)] == [
            r["id"] for r in of_type(from_oru, kind)], kind


def test_observations_right_after_a_specimen_are_about_it(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, FIXTURES.input("beckman_r22_specimen_indices"))
    specimen = of_type(bundle, "Specimen")[0]
    [report] = of_type(bundle, "DiagnosticReport")
    loose = [o for o in of_type(bundle, "Observation")
             if {"reference": f"urn:uuid:{o['id']}"} not in report["result"]]
    assert [o["code"]["coding"][0]["code"] for o in loose] == ["HEMI", "LIPI"]
    assert all(o["specimen"] == {"reference": f"urn:uuid:{specimen['id']}"} for o in loose)


def test_two_specimens_keep_their_own_results(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, FIXTURES.input("r22_two_specimens_v26"))
    refs = by_id(bundle)
    kinds = {refs[o["specimen"]["reference"]]["type"]["coding"][0]["code"]:
             o["code"]["coding"][0]["code"] for o in of_type(bundle, "Observation")}
    assert kinds == {"119364003": "3016-3", "122575003": "2161-8"}


def test_patient_is_the_one_the_adt_feed_makes(to_fhir: Mapping) -> None:
    adt = ("MSH|^~\\&|ADT|MERCY_CORE|EHR|MERCY|20250212080000-0600||ADT^A01|A1|P|2.5.1\r"
           "EVN|A01|20250212080000-0600\r" + PID + "\rPV1|1|I\r").encode()
    patient = of_type(bundle_of(to_fhir, message("R22", SPM, OBR, OBX)), "Patient")[0]
    checks.check_same_patient(patient, adt)


# ---- leniency -----------------------------------------------------------------------------


def test_odd_values_are_located_warnings(to_fhir: Mapping) -> None:
    raw = message("R22", SPM.replace("20250212064500-0600", "20250212250000-0600"), OBR,
                  OBX.replace("|88|", "|HEMOLYZED|"))
    found = [str(w) for w in testbench.run_mapping(to_fhir, raw).warnings]
    assert found == ["SPM-17: holds a date/time that does not exist",
                     "OBX-5: is not a number; kept as text"]
    assert of_type(bundle_of(to_fhir, raw), "Observation")[0]["valueString"] == "HEMOLYZED"


def test_nothing_to_map_fails_and_another_event_is_skipped(to_fhir: Mapping) -> None:
    with pytest.raises(MappingError) as no_patient:
        run(to_fhir, message("R22", SPM, OBR, OBX, pid=None))
    assert no_patient.value.field == "PID-3"
    no_result = bundle_of(to_fhir, message("R22", "PV1|1|O"))  # patient and visit still map
    assert of_type(no_result, "Patient") and not of_type(no_result, "DiagnosticReport")
    assert isinstance(run(to_fhir, message("R21", SPM, OBR, OBX)), Skip)


def test_r23_containers_after_the_first_orders_belong_to_the_specimen(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, FIXTURES.input("r23_two_containers_aliquots"))
    [specimen] = of_type(bundle, "Specimen")
    assert [c["identifier"][0]["value"] for c in specimen["container"]] == [
        "2502170200-A1", "2502170200-A2"]
    assert len(of_type(bundle, "DiagnosticReport")) == 2


def test_an_orc_after_its_obr_keeps_the_results_on_the_obrs_report(to_fhir: Mapping) -> None:
    """R22 as the standard orders it (SPM, OBR, ORC, OBX): the ORC is the OBR's, not an
    order of its own without a report."""
    orc = "ORC|SC|P-1^EHR|F-1^LIS||CM"
    bundle = bundle_of(to_fhir, message("R22", SPM, OBR, orc, OBX))
    report = of_type(bundle, "DiagnosticReport")[0]
    observation = of_type(bundle, "Observation")[0]
    assert report["result"] == [{"reference": f"urn:uuid:{observation['id']}"}]
    assert len(of_type(bundle, "ServiceRequest")) == 1
    assert of_type(bundle, "ServiceRequest")[0]["code"]["coding"][0]["code"] == "2345-7"
