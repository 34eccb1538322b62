"""hl7v2-ppr-to-fhir@1: every fixture as valid R4; each PRB a US Core problem-list
Condition with its statuses, dates and notes; its OBX as evidence, its GOL as Goals; a
PC3 or PRB-1 DE as entered-in-error without clinicalStatus; PC2/PC3 update what PC1
wrote; odd fields as located warnings that hold no values."""

from __future__ import annotations

from engine.maplib.v2_to_fhir import ppr
from engine.mapping import Mapping, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, of_type, only, run, warnings_of

FIXTURES = checks.Fixtures("hl7v2-ppr-to-fhir@1")
to_fhir = checks.mapping_fixture(FIXTURES.ref)
SNOMED = "http://snomed.info/sct"

HEAD = ("MSH|^~\\&|EHR|BROOKSIDE|CONDUIT|HUB|20240901100000-0500||PPR^{event}^PPR_PC1|"
        "P{event}|P|2.5.1")
PID = checks.segment("PID", {1: "1", 3: "BK-1^^^BROOKSIDE^MR", 5: "ISAKSEN^NORA",
                             7: "19580101", 8: "F"})
PRB = checks.segment("PRB", {1: "AD", 2: "20240901095500",
                             3: "73211009^Diabetes mellitus^SCT", 4: "P-1^EHR",
                             7: "20240901", 13: "C", 14: "A", 16: "20180601",
                             26: "24484000^Severe^SCT"})
OBX = checks.segment("OBX", {1: "1", 2: "NM", 3: "4548-4^Hemoglobin A1c^LN", 5: "8.2",
                             6: "%^percent^UCUM", 11: "F"})
GOL = checks.segment("GOL", {1: "AD", 3: "A1C^A1c under 7^L", 4: "G-1^EHR", 7: "20240901",
                             8: "20250301", 18: "A"})


def message(*segments: str, event: str = "PC1", pid: str | None = PID) -> bytes:
    lines = [HEAD.format(event=event), *([pid] if pid else []), *segments]
    return ("\r".join(lines) + "\r").encode()


def problem(bundle: dict) -> dict:
    return only(bundle, "Condition")


def code(concept: dict) -> str:
    return concept["coding"][0]["code"]


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=10, min_outputs=8,
                                    output=checks.check_transaction)


def test_declares_its_events_and_every_resource_its_bundles_hold(to_fhir: Mapping) -> None:
    assert ppr.EVENTS == ("PC1", "PC2", "PC3")
    made = {e["resource"]["resourceType"]
            for case in FIXTURES.output_cases
            for e in bundle_of(to_fhir, FIXTURES.input(case))["entry"]}
    assert {"Condition", "Goal", "Observation", "Practitioner", "ServiceRequest"} <= made
    assert made <= set(ppr.RESOURCES)


def test_every_fixture_problem_follows_us_core(to_fhir: Mapping) -> None:
    for case in FIXTURES.output_cases:
        for condition in of_type(bundle_of(to_fhir, FIXTURES.input(case)), "Condition"):
            assert "problem-list-item" in [c["code"] for cat in condition["category"]
                                           for c in cat.get("coding", [])], case
            erroneous = condition.get("verificationStatus", {}).get("coding", [{}])[0].get(
                "code") == "entered-in-error"
            assert ("clinicalStatus" in condition) != erroneous, case


def test_prb_facts_land_on_the_condition(to_fhir: Mapping) -> None:
    condition = problem(bundle_of(to_fhir, message(PRB, "NTE|1||Managed by endocrinology")))
    assert condition["code"]["coding"][0] == {"system": SNOMED, "code": "73211009",
                                              "display": "Diabetes mellitus"}
    assert condition["identifier"][0]["value"] == "P-1"
    assert code(condition["clinicalStatus"]) == "active"
    assert code(condition["verificationStatus"]) == "confirmed"
    assert condition["onsetDateTime"] == "2018-06-01"
    assert condition["recordedDate"] == "2024-09-01"
    assert code(condition["severity"]) == "24484000"
    assert condition["note"] == [{"text": "Managed by endocrinology"}]


def test_a_resolution_date_makes_a_problem_resolved(to_fhir: Mapping) -> None:
    resolved = checks.segment("PRB", {1: "UP", 3: "10509002^Acute bronchitis^SCT",
                                      4: "P-2^EHR", 9: "20240820"})
    condition = problem(bundle_of(to_fhir, message(resolved, event="PC2")))
    assert code(condition["clinicalStatus"]) == "resolved"
    assert condition["abatementDateTime"] == "2024-08-20"


def test_pc3_deletes_what_pc1_wrote(to_fhir: Mapping) -> None:
    added = problem(bundle_of(to_fhir, message(PRB)))
    deleted = problem(bundle_of(to_fhir, message(PRB, event="PC3")))
    assert deleted["id"] == added["id"]
    assert code(deleted["verificationStatus"]) == "entered-in-error"
    assert "clinicalStatus" not in deleted
    by_action = problem(bundle_of(to_fhir, message(PRB.replace("PRB|AD|", "PRB|DE|"),
                                                   event="PC2")))
    assert code(by_action["verificationStatus"]) == "entered-in-error"


def test_problem_observations_are_its_evidence_and_goals_address_it(to_fhir: Mapping) -> None:
    rol = checks.segment("ROL", {1: "1", 2: "AD", 3: "PP", 4: "5150^HALE^IDA^^^DR"})
    goal_obx = OBX.replace("OBX|1|", "OBX|2|").replace("8.2", "7.4")
    bundle = bundle_of(to_fhir, message(PRB, OBX, GOL, "NTE|1||Diet first", rol, goal_obx))
    condition = problem(bundle)
    observations = {o["valueQuantity"]["value"]: o for o in of_type(bundle, "Observation")}
    assert condition["evidence"] == [{"detail": [
        {"reference": f"urn:uuid:{observations[8.2]['id']}"}]}]
    goal = of_type(bundle, "Goal")[0]
    assert goal["addresses"] == [{"reference": f"urn:uuid:{condition['id']}"}]
    assert (goal["lifecycleStatus"], goal["startDate"]) == ("active", "2024-09-01")
    assert goal["target"] == [{"dueDate": "2025-03-01"}]
    assert goal["note"] == [{"text": "Diet first"}]
    assert goal["outcomeReference"] == [{"reference": f"urn:uuid:{observations[7.4]['id']}"}]
    assert "asserter" not in condition  # the goal's ROL is the goal's, not the problem's
    assert goal["expressedBy"]["reference"].startswith("urn:uuid:")


def test_same_patient_as_the_adt_feed(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, message(PRB))
    adt = (HEAD.format(event="A08").replace("PPR^A08^PPR_PC1", "ADT^A08^ADT_A01")
           + "\rEVN|A08|20240901100000\r" + PID + "\r")
    checks.check_same_patient(of_type(bundle, "Patient")[0], adt.encode())


def test_odd_fields_are_located_warnings_without_values(to_fhir: Mapping) -> None:
    odd = checks.segment("PRB", {1: "AD", 3: "195967001^Asthma^SCT", 4: "P-3^EHR",
                                 13: "PERHAPS", 14: "DORMANT", 16: "20241301"})
    nameless = checks.segment("PRB", {1: "AD", 4: "P-4^EHR", 17: "SECRET ONSET TEXT"})
    raw = message(odd, nameless)
    condition = problem(bundle_of(to_fhir, raw))
    assert code(condition["clinicalStatus"]) == "active"
    assert "verificationStatus" not in condition and "onsetDateTime" not in condition
    said = warnings_of(to_fhir, raw)
    assert [w.split(":")[0] for w in said] == ["PRB-13", "PRB-14", "PRB-16", "PRB[2]-3"]
    for value in ("PERHAPS", "DORMANT", "20241301", "SECRET", "ISAKSEN"):
        assert not any(value in w.split(":", 1)[1] for w in said), value


def test_only_a_message_without_a_patient_fails(to_fhir: Mapping) -> None:
    checks.check_error(to_fhir, message(PRB, pid=None), "PID-3", phi=["Diabetes"])
    assert isinstance(run(to_fhir, message(PRB, event="PC4")), Skip)
    raw = message()
    assert [w.split(":")[0] for w in warnings_of(to_fhir, raw)] == ["PRB"]


def test_a_problems_order_has_the_problem_as_its_reason(to_fhir: Mapping) -> None:
    orc = checks.segment("ORC", {1: "NW", 2: "O-1^EHR", 12: "61^BERG^ANE^^^DR"})
    obr = checks.segment("OBR", {1: "1", 2: "O-1^EHR", 4: "4548-4^Hemoglobin A1c^LN"})
    bundle = bundle_of(to_fhir, message(PRB, GOL, orc, obr))
    request = of_type(bundle, "ServiceRequest")[0]
    condition = problem(bundle)
    assert request["reasonReference"] == [{"reference": f"urn:uuid:{condition['id']}"}]
    assert request["code"]["coding"][0]["code"] == "4548-4"
    assert len(of_type(bundle, "Goal")) == 1  # the order is not the goal's
