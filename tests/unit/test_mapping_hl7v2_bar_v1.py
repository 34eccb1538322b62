"""hl7v2-bar-to-fhir@1: every fixture as valid R4; the account, guarantor, coverage,
diagnosis and procedure facts where the reference puts them; the ADT feed's ids kept;
odd fields as located warnings that hold no values; a purge ends every account."""

from __future__ import annotations

from engine.maplib.v2_to_fhir import bar
from engine.mapping import Mapping, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, of_type, only, resolve, run, warnings_of

FIXTURES = checks.Fixtures("hl7v2-bar-to-fhir@1")
to_fhir = checks.mapping_fixture(FIXTURES.ref)
CPT = "http://www.ama-assn.org/go/cpt"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"

HEAD = ("MSH|^~\\&|RESOLUTE|GOODSAM|CONDUIT|HUB|20240311093015-0500||BAR^{event}^BAR_P01|"
        "B{event}|P|2.5.1")
PID = ("PID|1||GS-100^^^GOODSAM^MR||ORTEGA^LUCIA^^^^^L||19700101|F|||"
       "9 OAK ST^^SPRINGFIELD^IL^62701|||||||ACC-9001^^^GOODSAM^AN")
PV1 = checks.segment("PV1", {1: "1", 2: "I", 3: "3E^301^A^GOODSAM",
                             19: "V-5501^^^GOODSAM^VN"})
GT1 = checks.segment("GT1", {1: "1", 2: "G-1", 3: "ORTEGA^RAMON", 8: "19680303", 9: "M",
                             11: "SPO", 13: "20240101"})
IN1 = checks.segment("IN1", {1: "1", 2: "PPO1^Gold PPO", 3: "AET^^^NAIC", 4: "Aetna",
                             5: "PO BOX 9^^HARTFORD^CT^06101", 7: "^WPN^PH^^1^800^5551000",
                             8: "GRP-7", 12: "20240101", 15: "PPO", 16: "ORTEGA^RAMON",
                             17: "SPO", 18: "19680303", 36: "POL-77"})
DG1 = checks.segment("DG1", {1: "1", 3: "I10^Essential hypertension^I10", 5: "20240310",
                             6: "A", 15: "1", 16: "4455^REYES^ANA^^^DR"})
PR1 = checks.segment("PR1", {1: "1", 3: "93000^Electrocardiogram^C4", 5: "202403101000",
                             6: "D", 7: "15", 11: "7788^OKAFOR^CHIDI^^^DR"})


def message(*segments: str, event: str = "P01", pid: str | None = PID) -> bytes:
    lines = [HEAD.format(event=event), f"EVN|{event}|20240311093000",
             *([pid] if pid else []), *segments]
    return ("\r".join(lines) + "\r").encode()


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=10, min_outputs=8,
                                    output=checks.check_transaction)


def test_declares_its_events_and_every_resource_its_bundles_hold(to_fhir: Mapping) -> None:
    assert bar.EVENTS == ("P01", "P02", "P05", "P06", "P10", "P12")
    made = {e["resource"]["resourceType"]
            for case in FIXTURES.output_cases
            for e in bundle_of(to_fhir, FIXTURES.input(case))["entry"]}
    assert {"Account", "Coverage", "RelatedPerson", "Condition", "Procedure",
            "AllergyIntolerance", "Organization", "Practitioner"} <= made
    assert made <= set(bar.RESOURCES)


def test_account_is_pid18_with_its_guarantor_and_coverage(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, message(PV1, GT1, IN1))
    account = only(bundle, "Account")
    assert account["identifier"][0]["value"] == "ACC-9001"
    assert account["status"] == "active"
    assert account["subject"] == [{"reference": f"urn:uuid:{only(bundle, 'Patient')['id']}"}]
    guarantor = resolve(bundle, account["guarantor"][0]["party"])
    assert guarantor["resourceType"] == "RelatedPerson"
    assert guarantor["name"][0]["family"] == "ORTEGA"
    assert guarantor["birthDate"] == "1968-03-03" and guarantor["gender"] == "male"
    assert {"SPO", "SPS"} <= {c["code"] for r in guarantor["relationship"]
                              for c in r.get("coding", [])}
    coverage = only(bundle, "Coverage")
    assert account["coverage"][0]["coverage"]["reference"] == f"urn:uuid:{coverage['id']}"


def test_coverage_names_its_payor_organization_and_the_insured_spouse(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, message(PV1, GT1, IN1))
    coverage = only(bundle, "Coverage")
    payor = resolve(bundle, coverage["payor"][0])
    assert payor["resourceType"] == "Organization" and payor["name"] == "Aetna"
    assert payor["identifier"][0]["value"] == "AET"
    assert payor["address"][0]["city"] == "HARTFORD"
    assert payor["telecom"][0]["value"] == "+1 (800) 555-1000"
    subscriber = resolve(bundle, coverage["subscriber"])
    assert subscriber["resourceType"] == "RelatedPerson"
    assert subscriber["birthDate"] == "1968-03-03"
    # the insured spouse and the guarantor are one person: one resource
    assert len(of_type(bundle, "RelatedPerson")) == 1
    assert coverage["period"] == {"start": "2024-01-01"}
    assert coverage["type"]["coding"][0]["code"] == "PPO"
    assert {c["value"] for c in coverage["class"]} == {"PPO1", "GRP-7"}


def test_self_insured_coverage_has_the_patient_as_subscriber(to_fhir: Mapping) -> None:
    in1 = checks.segment("IN1", {1: "1", 2: "MCR", 4: "Medicare", 17: "SEL", 49: "1EG4"})
    in2 = checks.segment("IN2", {6: "1EG4TE5MK73"})
    bundle = bundle_of(to_fhir, message(PV1, in1, in2))
    coverage = only(bundle, "Coverage")
    assert coverage["subscriber"] == {"reference": f"urn:uuid:{only(bundle, 'Patient')['id']}"}
    medicare = [i for i in coverage["identifier"]
                if i.get("system") == "http://hl7.org/fhir/sid/us-medicare"]
    assert [i["value"] for i in medicare] == ["1EG4TE5MK73"]
    assert not of_type(bundle, "RelatedPerson")


def test_diagnosis_is_an_encounter_diagnosis_with_onset_and_clinician(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, message(PV1, DG1))
    condition = only(bundle, "Condition")
    assert condition["code"]["coding"][0] == {"system": ICD10CM, "code": "I10",
                                              "display": "Essential hypertension"}
    assert "encounter-diagnosis" in [c["code"] for cat in condition["category"]
                                     for c in cat["coding"]]
    assert condition["onsetDateTime"] == "2024-03-10"
    assert resolve(bundle, condition["asserter"])["name"][0]["family"] == "REYES"
    encounter = only(bundle, "Encounter")
    assert condition["encounter"] == {"reference": f"urn:uuid:{encounter['id']}"}
    assert encounter["diagnosis"][0]["rank"] == 1
    assert encounter["diagnosis"][0]["use"]["coding"][0]["code"] == "AD"


def test_procedure_has_code_period_category_and_surgeon(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, message(PV1, PR1))
    procedure = only(bundle, "Procedure")
    assert procedure["status"] == "completed"
    assert procedure["code"]["coding"][0]["system"] == CPT
    assert procedure["performedPeriod"] == {"start": "2024-03-10T10:00:00-05:00",
                                            "end": "2024-03-10T10:15:00-05:00"}
    assert procedure["category"]["coding"][0]["code"] == "D"
    surgeon = procedure["performer"][0]
    assert surgeon["function"]["coding"][0]["code"] == "PPRF"
    assert resolve(bundle, surgeon["actor"])["name"][0]["family"] == "OKAFOR"


def test_p12_deleted_diagnosis_is_entered_in_error_and_off_the_encounter(
        to_fhir: Mapping) -> None:
    deleted = checks.segment("DG1", {1: "2", 3: "R07.9^Chest pain^I10", 6: "A", 21: "D"})
    bundle = bundle_of(to_fhir, message(PV1, DG1, deleted, event="P12"))
    by_code = {c["code"]["coding"][0]["code"]: c for c in of_type(bundle, "Condition")}
    gone = by_code["R07.9"]
    assert gone["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    assert "clinicalStatus" not in gone
    listed = [d["condition"]["reference"] for d in only(bundle, "Encounter")["diagnosis"]]
    assert listed == [f"urn:uuid:{by_code['I10']['id']}"]


def test_p02_purges_every_patients_account(to_fhir: Mapping) -> None:
    other = PID.replace("GS-100", "GS-200").replace("ACC-9001", "ACC-9002").replace(
        "ORTEGA^LUCIA", "BRAUN^HANS")
    bundle = bundle_of(to_fhir, message(PV1, other, PV1.replace("V-5501", "V-5502"),
                                        event="P02"))
    accounts = of_type(bundle, "Account")
    assert [a["identifier"][0]["value"] for a in accounts] == ["ACC-9001", "ACC-9002"]
    assert {a["status"] for a in accounts} == {"inactive"}
    assert len(of_type(bundle, "Patient")) == 2


def test_iam_allergy_statuses_follow_us_core(to_fhir: Mapping) -> None:
    iam = checks.segment("IAM", {1: "1", 2: "DA", 3: "7980^Penicillin^RXNORM", 4: "SV",
                                 5: "Hives", 6: "A", 7: "A-1^EHR", 9: "AL", 11: "2019",
                                 13: "20240301", 17: "C"})
    inactive = checks.segment("IAM", {1: "2", 2: "DA", 3: "2670^Codeine^RXNORM", 6: "U",
                                      7: "A-2^EHR", 9: "IN", 17: "I"})
    deleted = checks.segment("IAM", {1: "3", 2: "FA", 3: "PEANUT", 6: "D", 7: "A-3^EHR"})
    bundle = bundle_of(to_fhir, message(PV1, iam, inactive, deleted))
    found = {a["identifier"][0]["value"]: a for a in of_type(bundle, "AllergyIntolerance")}
    active = found["A-1"]
    assert active["clinicalStatus"]["coding"][0]["code"] == "active"
    assert active["verificationStatus"]["coding"][0]["code"] == "confirmed"
    assert (active["type"], active["category"], active["criticality"]) == (
        "allergy", ["medication"], "high")
    assert active["reaction"][0] == {"manifestation": [{"text": "Hives"}], "severity": "severe"}
    assert (active["onsetDateTime"], active["recordedDate"]) == ("2019", "2024-03-01")
    assert found["A-2"]["clinicalStatus"]["coding"][0]["code"] == "inactive"
    assert found["A-2"]["type"] == "intolerance"
    assert found["A-3"]["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    assert "clinicalStatus" not in found["A-3"]


def test_iam_update_of_the_same_allergy_keeps_its_id(to_fhir: Mapping) -> None:
    first = checks.segment("IAM", {1: "1", 3: "70618^Penicillin^RXNORM", 6: "A", 7: "A-9^EHR"})
    fixed = checks.segment("IAM", {1: "1", 3: "7980^Penicillin G^RXNORM", 6: "U", 7: "A-9^EHR"})
    ids = [only(bundle_of(to_fhir, message(PV1, seg)), "AllergyIntolerance")["id"]
           for seg in (first, fixed)]
    assert ids[0] == ids[1]


def test_ids_are_the_adt_feeds(to_fhir: Mapping) -> None:
    raw = message(PV1, DG1, IN1)
    bundle = bundle_of(to_fhir, raw)
    adt_raw = raw.replace(b"BAR^P01^BAR_P01", b"ADT^A01^ADT_A01").replace(b"EVN|P01", b"EVN|A01")
    checks.check_same_patient(only(bundle, "Patient"), adt_raw)
    admitted = checks.by_type(bundle_of(checks.mapping("hl7v2-adt-to-fhir@2"), adt_raw))
    for kind in ("Encounter", "Coverage", "Condition"):
        assert only(bundle, kind)["id"] == admitted[kind]["id"], kind


def test_odd_fields_are_located_warnings_without_values(to_fhir: Mapping) -> None:
    bad_dg1 = DG1.replace("20240310", "20241310")
    bad_gt1 = GT1.replace("|M|", "|Q|")
    no_payor = checks.segment("IN1", {1: "2", 2: "XX", 36: "SECRET-POLICY-9"})
    raw = message(PV1, bad_dg1, bad_gt1, IN1, no_payor)
    bundle = bundle_of(to_fhir, raw)
    assert only(bundle, "Condition")["code"]["coding"][0]["code"] == "I10"
    assert len(of_type(bundle, "Coverage")) == 1
    said = warnings_of(to_fhir, raw)
    assert sorted(w.split(":")[0] for w in said) == ["DG1-5", "GT1-9", "IN1[2]-3"]
    for value in ("20241310", "Q", "SECRET-POLICY-9", "ORTEGA"):
        assert not any(value in w.split(":", 1)[1] for w in said), value


def test_only_a_message_without_a_patient_fails(to_fhir: Mapping) -> None:
    checks.check_error(to_fhir, message(PV1, GT1, pid=None), "PID-3", phi=["ORTEGA"])
    assert isinstance(run(to_fhir, message(PV1, event="P99")), Skip)
    # P10 (APC groups: GP1/GP2 are left behind) still gives the account's facts
    assert of_type(bundle_of(to_fhir, message(PV1, event="P10")), "Account")


def test_p02_warnings_name_the_segment_of_the_whole_message(to_fhir: Mapping) -> None:
    other = PID.replace("GS-100", "GS-200").replace("19700101", "19701301")
    dg1 = checks.segment("DG1", {1: "1", 3: "I10^Essential hypertension^I10", 5: "20240231"})
    raw = message(PV1, DG1, other, PV1.replace("V-5501", "V-5502"), dg1, event="P02")
    assert sorted(w.split(":")[0] for w in warnings_of(to_fhir, raw)) == ["DG1[2]-5", "PID[2]-7"]


def test_a_procedures_rol_is_one_of_its_performers(to_fhir: Mapping) -> None:
    rol = checks.segment("ROL", {1: "R1", 2: "AD", 3: "AI^Assistant^HL70443",
                                 4: "9911^LARSEN^BO^^^DR"})
    gone = checks.segment("ROL", {1: "R2", 2: "DE", 3: "AI", 4: "9912^MOE^KAI"})
    bundle = bundle_of(to_fhir, message(PV1, PR1, rol, gone))
    procedure = only(bundle, "Procedure")
    assistant = procedure["performer"][1]
    assert assistant["function"]["coding"][0]["code"] == "AI"
    assert resolve(bundle, assistant["actor"])["name"][0]["family"] == "LARSEN"
    assert len(procedure["performer"]) == 2  # the ROL that deletes names no performer


def test_the_group_employer_holds_the_policy(to_fhir: Mapping) -> None:
    group = checks.segment("IN1", {1: "1", 2: "PPO1", 3: "AET^^^NAIC", 4: "Aetna",
                                   8: "GRP-7", 10: "E-77^^^GOODSAM", 11: "Acme Tools",
                                   17: "SEL", 36: "POL-77"})
    bundle = bundle_of(to_fhir, message(PV1, group))
    holder = resolve(bundle, only(bundle, "Coverage")["policyHolder"])
    assert (holder["resourceType"], holder["name"]) == ("Organization", "Acme Tools")
    assert holder["identifier"][0]["value"] == "E-77"


def test_each_visit_group_is_its_own_encounter_on_one_account(to_fhir: Mapping) -> None:
    second = checks.segment("PV1", {1: "2", 2: "O", 19: "V-5502^^^GOODSAM^VN"})
    dg1 = checks.segment("DG1", {1: "1", 3: "R51^Headache^I10"})
    raw = message(PV1, DG1, second, dg1, GT1, IN1)
    bundle = bundle_of(to_fhir, raw)
    encounters = {e["identifier"][0]["value"]: e for e in of_type(bundle, "Encounter")}
    assert set(encounters) == {"V-5501", "V-5502"}
    by_code = {c["code"]["coding"][0]["code"]: c for c in of_type(bundle, "Condition")}
    assert by_code["I10"]["encounter"]["reference"].endswith(encounters["V-5501"]["id"])
    assert by_code["R51"]["encounter"]["reference"].endswith(encounters["V-5502"]["id"])
    account = only(bundle, "Account")
    assert len(of_type(bundle, "Patient")) == 1
    assert (len(account["coverage"]), len(account["guarantor"])) == (1, 1)
    nameless = checks.segment("DG1", {1: "1", 6: "A"})
    said = warnings_of(to_fhir, message(PV1, DG1, second, nameless))
    assert [w.split(":")[0] for w in said] == ["DG1[2]-3"]
