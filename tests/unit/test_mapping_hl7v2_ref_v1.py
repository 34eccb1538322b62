"""hl7v2-ref-to-fhir@1: every fixture as valid R4; RF1 as the referral ServiceRequest
with its status, priority, type, period and ids; PRD providers as its requester and
performers; the patient's diagnoses, coverages and results linked to it; I13/I14 update
the I12's request; odd fields as located warnings that hold no values."""

from __future__ import annotations

from engine.maplib.v2_to_fhir import ref
from engine.mapping import Mapping, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, of_type, resolve, run, warnings_of

FIXTURES = checks.Fixtures("hl7v2-ref-to-fhir@1")
to_fhir = checks.mapping_fixture(FIXTURES.ref)
NPI = "http://hl7.org/fhir/sid/us-npi"

HEAD = ("MSH|^~\\&|EHR|WESTCLINIC|CONDUIT|HUB|20240701090000-0500||REF^{event}^REF_I12|"
        "R{event}|P|2.5.1")
RF1 = checks.segment("RF1", {1: "P", 2: "S", 3: "Lab", 4: "WR", 5: "O", 6: "REF-1^EHR",
                             7: "20240701", 8: "20240801", 9: "20240701085500", 10: "O"})
RP = checks.segment("PRD", {1: "RP", 2: "NGATA^TAMATI^^^DR", 7: "1234567893^NPI"})
RT = checks.segment("PRD", {1: "RT", 2: "OYELARAN^BISI^^^DR", 5: "^WPN^PH^^1^555^5550100",
                            7: "1987654321^NPI"})
PID = checks.segment("PID", {1: "1", 3: "WC-1^^^WESTCLINIC^MR", 5: "AALTO^MIKKO", 7: "19660606",
                             8: "M"})
DG1 = checks.segment("DG1", {1: "1", 3: "D64.9^Anemia, unspecified^I10"})
IN1 = checks.segment("IN1", {1: "1", 2: "P1", 3: "CIG^^^NAIC", 4: "Cigna", 17: "SEL", 36: "C-1"})
OBX = checks.segment("OBX", {1: "1", 2: "NM", 3: "718-7^Hemoglobin^LN", 5: "9.1",
                             6: "g/dL^g/dL^UCUM", 11: "F"})


def message(*segments: str, event: str = "I12", pid: str | None = PID) -> bytes:
    head, rest = [s for s in segments if not s.startswith("PID")], []
    lines = [HEAD.format(event=event), *head, *([pid] if pid else []), *rest]
    return ("\r".join(lines) + "\r").encode()


def referral(bundle: dict) -> dict:
    found = [r for r in of_type(bundle, "ServiceRequest")
             if r.get("category", [{}])[0].get("coding", [{}])[0].get("code") == "3457005"]
    assert len(found) == 1
    return found[0]


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=10, min_outputs=8,
                                    output=checks.check_transaction)


def test_declares_its_events_and_every_resource_its_bundles_hold(to_fhir: Mapping) -> None:
    assert ref.EVENTS == ("I12", "I13", "I14")
    made = {e["resource"]["resourceType"]
            for case in FIXTURES.output_cases
            for e in bundle_of(to_fhir, FIXTURES.input(case))["entry"]}
    assert {"ServiceRequest", "Practitioner", "Organization", "Condition", "Coverage",
            "Observation", "AllergyIntolerance", "Procedure", "RelatedPerson",
            "ClaimResponse"} <= made
    assert made <= set(ref.RESOURCES)


def test_rf1_facts_land_on_the_referral(to_fhir: Mapping) -> None:
    request = referral(bundle_of(to_fhir, message(RF1, RP, RT)))
    assert (request["status"], request["intent"], request["priority"]) == (
        "active", "order", "stat")
    assert request["identifier"][0]["value"] == "REF-1"
    assert request["code"]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v2-0281", "code": "Lab",
        "display": "Laboratory"}
    assert request["occurrencePeriod"] == {"start": "2024-07-01", "end": "2024-08-01"}
    assert request["authoredOn"] == "2024-07-01T08:55:00-05:00"
    assert request["orderDetail"][0]["coding"][0]["code"] == "WR"
    assert request["reasonCode"][0]["coding"][0]["display"] == "Provider Ordered"
    assert [c["coding"][0]["code"] for c in request["category"]] == ["3457005", "O"]


def test_prd_providers_are_requester_and_performer(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, message(RF1, RP, RT))
    request = referral(bundle)
    requester = resolve(bundle, request["requester"])
    performer = resolve(bundle, request["performer"][0])
    assert requester["identifier"][0] == {
        "system": NPI, "value": "1234567893",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                             "code": "NPI", "display": "National provider identifier"}]}}
    assert performer["name"][0]["family"] == "OYELARAN"
    assert performer["telecom"][0]["value"] == "+1 (555) 555-0100"


def test_an_xcn_and_a_prd_naming_one_npi_are_one_practitioner(to_fhir: Mapping) -> None:
    pv1 = checks.segment("PV1", {1: "1", 2: "O", 7: "1234567893^NGATA^TAMATI^^^^^^^^^^NPI",
                                 19: "V1^^^WESTCLINIC^VN"})
    bundle = bundle_of(to_fhir, message(RF1, RP, pv1))
    assert len(of_type(bundle, "Practitioner")) == 1


def test_diagnoses_coverage_and_results_are_linked(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, message(RF1, RP, PID, IN1, DG1, OBX))
    request = referral(bundle)
    assert resolve(bundle, request["reasonReference"][0])["code"]["coding"][0]["code"] == "D64.9"
    assert resolve(bundle, request["insurance"][0])["resourceType"] == "Coverage"
    assert resolve(bundle, request["supportingInfo"][0])["code"]["coding"][0]["code"] == "718-7"


def test_i13_and_i14_update_the_i12_request(to_fhir: Mapping) -> None:
    made = referral(bundle_of(to_fhir, message(RF1, RP)))
    accepted = referral(bundle_of(to_fhir, message(RF1.replace("RF1|P|", "RF1|A|"), RP,
                                                   event="I13")))
    cancelled = referral(bundle_of(to_fhir, message(RF1, RP, event="I14")))
    assert made["id"] == accepted["id"] == cancelled["id"]
    assert (accepted["status"], cancelled["status"]) == ("active", "revoked")
    rejected = referral(bundle_of(to_fhir, message(RF1.replace("RF1|P|", "RF1|R|"), RP)))
    assert rejected["status"] == "revoked"


def test_same_patient_as_the_adt_feed(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, message(RF1, RP))
    adt = (HEAD.format(event="A08").replace("REF^A08^REF_I12", "ADT^A08^ADT_A01")
           + "\rEVN|A08|20240701090000\r" + PID + "\r")
    checks.check_same_patient(of_type(bundle, "Patient")[0], adt.encode())


def test_odd_fields_are_located_warnings_without_values(to_fhir: Mapping) -> None:
    odd = checks.segment("RF1", {1: "ZZ", 3: "Lab", 6: "REF-2^EHR", 7: "20241399"})
    raw = message(odd, RP)
    request = referral(bundle_of(to_fhir, raw))
    assert request["status"] == "active" and "occurrencePeriod" not in request
    said = warnings_of(to_fhir, raw)
    assert sorted(w.split(":")[0] for w in said) == ["RF1-1", "RF1-7"]
    for value in ("ZZ", "20241399", "AALTO"):
        assert not any(value in w.split(":", 1)[1] for w in said), value


def test_without_rf1_the_patient_still_maps_with_a_warning(to_fhir: Mapping) -> None:
    raw = message(RP)
    bundle = bundle_of(to_fhir, raw)
    assert of_type(bundle, "Patient") and not of_type(bundle, "ServiceRequest")
    assert [w.split(":")[0] for w in warnings_of(to_fhir, raw)] == ["RF1"]


def test_only_a_message_without_a_patient_fails(to_fhir: Mapping) -> None:
    checks.check_error(to_fhir, message(RF1, RP, pid=None), "PID-3", phi=["NGATA"])
    assert isinstance(run(to_fhir, message(RF1, RP, event="I15")), Skip)


def test_aut_is_a_preauthorization_of_the_referrals_insurance(to_fhir: Mapping) -> None:
    aut = checks.segment("AUT", {1: "P1", 2: "CIG", 3: "Cigna", 4: "20240701",
                                 5: "20240930", 6: "PA-55^CIGNA", 7: "800.00&USD",
                                 9: "4", 10: "20240630120000"})
    bundle = bundle_of(to_fhir, message(RF1, aut, RP, PID, IN1))
    claim = of_type(bundle, "ClaimResponse")[0]
    assert (claim["use"], claim["status"], claim["outcome"]) == (
        "preauthorization", "active", "complete")
    assert claim["preAuthRef"] == "PA-55"
    assert claim["preAuthPeriod"] == {"start": "2024-07-01", "end": "2024-09-30"}
    assert claim["created"] == "2024-06-30T12:00:00-05:00"
    assert claim["total"][0]["amount"] == {"value": 800.0, "currency": "USD"}
    assert resolve(bundle, claim["insurer"])["name"] == "Cigna"
    coverage = of_type(bundle, "Coverage")[0]
    assert claim["insurance"][0]["coverage"] == {"reference": f"urn:uuid:{coverage['id']}"}
    assert {"reference": f"urn:uuid:{claim['id']}"} in referral(bundle)["insurance"]


def test_an_aut_naming_no_insurer_is_a_warning(to_fhir: Mapping) -> None:
    aut = checks.segment("AUT", {4: "20240701", 6: "PA-56^X"})
    raw = message(RF1, aut, RP)
    assert not of_type(bundle_of(to_fhir, raw), "ClaimResponse")
    assert [w.split(":")[0] for w in warnings_of(to_fhir, raw)] == ["AUT-3"]


def test_each_prd_gives_a_practitioner_role(to_fhir: Mapping) -> None:
    located = checks.segment("PRD", {1: "RT", 2: "OYELARAN^BISI^^^DR", 4: "RAD^2^^WEST",
                                     7: "1987654321^NPI"})
    bundle = bundle_of(to_fhir, message(RF1, RP, located))
    roles = {r["code"][0]["coding"][0]["code"]: r for r in of_type(bundle, "PractitionerRole")}
    assert set(roles) == {"RP", "RT"}
    referred = roles["RT"]
    assert resolve(bundle, referred["practitioner"])["name"][0]["family"] == "OYELARAN"
    assert resolve(bundle, referred["location"][0])["resourceType"] == "Location"


def test_v28_authorized_provider_reason_text_comment_and_action(to_fhir: Mapping) -> None:
    rf1 = checks.segment("RF1", {1: "A", 3: "Lab", 6: "REF-3^EHR", 14: "Low hemoglobin",
                                 19: "West Hematology^^^^^^^^^WH-1",
                                 20: "55^PIKE^ROSA^^^DR", 24: "Seen within a week"})
    bundle = bundle_of(to_fhir, message(rf1, RP))
    request = referral(bundle)
    performers = [resolve(bundle, p) for p in request["performer"]]
    assert (performers[0]["resourceType"], performers[0]["name"]) == (
        "Organization", "West Hematology")
    assert performers[1]["name"][0]["family"] == "PIKE"
    assert {"text": "Low hemoglobin"} in request["reasonCode"]
    assert {"text": "Seen within a week"} in request["note"]
    deleted = rf1 + "|D"
    assert referral(bundle_of(to_fhir, message(deleted, RP)))["status"] == "entered-in-error"


def test_pid18_is_the_account(to_fhir: Mapping) -> None:
    pid = PID + "||||||||||WA-9^^^WESTCLINIC^AN"
    account = of_type(bundle_of(to_fhir, message(RF1, RP, pid=pid)), "Account")
    assert [a["identifier"][0]["value"] for a in account] == ["WA-9"]


def test_a_procedure_not_yet_done_is_one_the_referral_asks_for(to_fhir: Mapping) -> None:
    done = checks.segment("PR1", {1: "1", 3: "85025^CBC^C4", 5: "20240620"})
    asked = checks.segment("PR1", {1: "2", 3: "38221^Bone marrow biopsy^C4"})
    bundle = bundle_of(to_fhir, message(RF1, RP, PID, done, asked))
    by_code = {p["code"]["coding"][0]["code"]: p for p in of_type(bundle, "Procedure")}
    assert by_code["85025"]["status"] == "completed" and "basedOn" not in by_code["85025"]
    assert by_code["38221"]["status"] == "preparation"
    assert by_code["38221"]["basedOn"] == [{"reference": f"urn:uuid:{referral(bundle)['id']}"}]
