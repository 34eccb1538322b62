"""hl7v2-adt-to-fhir@2: every fixture, valid FHIR, v1's Patient and Encounter kept, stable
ids for the new resources, the code tables, and errors that name fields without values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.errors import MappingError
from engine.mapping import Mapping, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, of_type, only, run

FIXTURES = checks.Fixtures("hl7v2-adt-to-fhir@2")
V1_FIXTURES = checks.Fixtures("hl7v2-adt-to-fhir@1")
CDC = "urn:oid:2.16.840.1.113883.6.238"
RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
ETHNICITY = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"

adt = checks.mapping_fixture(FIXTURES.ref)
adt_v1 = checks.mapping_fixture(V1_FIXTURES.ref)


def fixture(case: str) -> bytes:
    return FIXTURES.input(case)


def message(*segments: str, event: str = "A08", pid: str | None = None) -> bytes:
    """An ADT from MERCY_GEN with a PID, a PV1 with a visit number, and `segments`."""
    head = [
        f"MSH|^~\\&|ADT|MERCY_GEN|CONDUIT|HIE|20240601120000-0500||ADT^{event}|C1|P|2.5",
        f"EVN|{event}",
        pid or "PID|1||MG001234^^^MERCY^MR||ROWE^TAMSIN^^^^^L||19900101|F",
        "PV1|1|I|3E^301^A" + "|" * 16 + "MGV5550001^^^MERCY^VN",
    ]
    return ("\r".join([*head, *segments]) + "\r").encode()


def one(mapping: Mapping, kind: str, *segments: str, **kw: Any) -> dict:
    return only(bundle_of(mapping, message(*segments, **kw)), kind)


# ---- fixtures ---------------------------------------------------------------------------


TestFixtures = checks.fixture_tests(
    FIXTURES, min_cases=len(V1_FIXTURES.cases) + 5, output=checks.check_transaction
)


def test_every_v1_input_is_a_v2_fixture_byte_for_byte() -> None:
    for case in V1_FIXTURES.cases:
        assert FIXTURES.input(case) == V1_FIXTURES.input(case)


@pytest.mark.parametrize("case", V1_FIXTURES.cases)
def test_v2_keeps_v1s_patient_encounter_skips_and_errors(
    adt: Mapping, adt_v1: Mapping, case: str
) -> None:
    raw = fixture(case)
    try:
        old = run(adt_v1, raw)
    except MappingError as exc:
        with pytest.raises(MappingError) as caught:
            run(adt, raw)
        assert str(caught.value) == str(exc)
        return
    new = run(adt, raw)
    if isinstance(old, Skip):
        assert new == old
        return
    old_bundle, new_bundle = json.loads(old), bundle_of(adt, raw)
    kept = [e for e in new_bundle["entry"]
            if e["resource"]["resourceType"] in ("Patient", "Encounter")]
    for entry in kept:
        entry["resource"].pop("extension", None)
    assert kept == old_bundle["entry"]


# ---- ids of the new resources -----------------------------------------------------------


def test_discharge_updates_the_admits_allergy_diagnosis_and_coverage(adt: Mapping) -> None:
    admit = bundle_of(adt, fixture("epic_a01_clinical"))
    discharge = bundle_of(adt, fixture("epic_a03_final_diagnosis"))
    for kind in ("Patient", "Encounter", "RelatedPerson", "Coverage"):
        ids = [[r["id"] for r in of_type(b, kind)] for b in (admit, discharge)]
        assert ids[0] == ids[1], kind
    assert of_type(discharge, "AllergyIntolerance")[0]["id"] == (
        of_type(admit, "AllergyIntolerance")[0]["id"]
    )
    pneumonia = [of_type(b, "Condition")[0] for b in (admit, discharge)]
    assert pneumonia[0]["id"] == pneumonia[1]["id"]
    assert [c["verificationStatus"]["coding"][0]["code"] for c in pneumonia] == [
        "provisional", "confirmed",
    ]


def test_another_facility_gets_other_ids(adt: Mapping) -> None:
    segments = ("NK1|1|ROWE^ALAN|SPO", "AL1|1|DA|7980^Penicillin G^RXNORM",
                "DG1|1||J18.9^Pneumonia^I10", "IN1|1|P1|C1|ACME HEALTH")
    here = bundle_of(adt, message(*segments))
    there = bundle_of(adt, message(*segments).replace(b"MERCY_GEN", b"MERCY_NORTH"))
    here_ids = {e["resource"]["id"] for e in here["entry"]}
    assert here_ids.isdisjoint({e["resource"]["id"] for e in there["entry"]})


def test_same_allergen_twice_makes_one_resource_with_the_later_content(adt: Mapping) -> None:
    bundle = bundle_of(adt, fixture("a28_person_unknown_race_repeated_allergy"))
    allergies = of_type(bundle, "AllergyIntolerance")
    assert len(allergies) == 1
    assert allergies[0]["criticality"] == "high"


def test_diagnosis_without_a_visit_is_keyed_on_the_patient(adt: Mapping) -> None:
    dg1 = "DG1|1||I48.91^Unspecified atrial fibrillation^I10|||F"
    visit = one(adt, "Condition", dg1)
    person = one(adt, "Condition", dg1, event="A28")
    assert visit["id"] != person["id"]
    assert "encounter" in visit and "encounter" not in person


def test_related_person_id_follows_the_set_id(adt: Mapping) -> None:
    first = one(adt, "RelatedPerson", "NK1|1|ROWE^ALAN|SPO")
    renamed = one(adt, "RelatedPerson", "NK1|1|ROWE-HALL^ALAN|SPO")
    second = one(adt, "RelatedPerson", "NK1|2|ROWE^ALAN|SPO")
    assert first["id"] == renamed["id"] != second["id"]


# ---- PID-10 / PID-22: race and ethnicity ------------------------------------------------


def _pid(race: str = "", ethnicity: str = "") -> str:
    fields = ["1", "", "MG001234^^^MERCY^MR", "", "ROWE^TAMSIN", "", "19900101", "F", "",
              race] + [""] * 11 + [ethnicity]
    return "PID|" + "|".join(fields)


def _extension(adt: Mapping, url: str, **kw: str) -> dict | None:
    patient = one(adt, "Patient", pid=_pid(**kw))
    return next((e for e in patient.get("extension", []) if e["url"] == url), None)


def _parts(extension: dict) -> list[tuple[str, str]]:
    return [(p["url"], p.get("valueCoding", {}).get("code") or p.get("valueString"))
            for p in extension["extension"]]


@pytest.mark.parametrize(
    ("race", "parts"),
    [
        ("2106-3^White^CDCREC", [("ombCategory", "2106-3"), ("text", "White")]),
        ("2054-5^Black^HL70005~2039-6^Japanese^CDCREC",
         [("ombCategory", "2054-5"), ("detailed", "2039-6"), ("text", "Black, Japanese")]),
        ("2028-9", [("ombCategory", "2028-9"), ("text", "Asian")]),
        ("W^White^L", [("text", "White")]),
        ("ASKU^Asked but unknown^NULLFL", [("ombCategory", "ASKU"),
                                           ("text", "Asked but unknown")]),
        ("UNK~2106-3^White^CDCREC", [("ombCategory", "2106-3"), ("text", "unknown, White")]),
    ],
)
def test_race_follows_us_core(adt: Mapping, race: str, parts: list) -> None:
    extension = _extension(adt, RACE, race=race)
    assert extension is not None
    assert _parts(extension) == parts
    for coding in (p["valueCoding"] for p in extension["extension"] if "valueCoding" in p):
        assert coding["system"] in (CDC, "http://terminology.hl7.org/CodeSystem/v3-NullFlavor")


@pytest.mark.parametrize(
    ("ethnicity", "code"),
    [("H^Hispanic or Latino^HL70189", "2135-2"), ("N", "2186-5"),
     ("2186-5^Not Hispanic or Latino^CDCREC", "2186-5"), ("U^Unknown^HL70189", "UNK")],
)
def test_ethnicity_reads_table_0189_and_cdc_codes(adt: Mapping, ethnicity: str, code: str) -> None:
    extension = _extension(adt, ETHNICITY, ethnicity=ethnicity)
    assert extension is not None
    assert _parts(extension)[0] == ("ombCategory", code)
    assert _parts(extension)[-1][0] == "text"


def test_no_race_or_ethnicity_writes_no_extension(adt: Mapping) -> None:
    assert "extension" not in one(adt, "Patient", pid=_pid())


# ---- NK1 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relationship", "codings"),
    [
        ("SPO^Spouse^HL70063", [("v2-0063", "SPO"), ("v3-RoleCode", "SPS")]),
        ("MTH", [("v2-0063", "MTH"), ("v3-RoleCode", "MTH")]),
        ("EMC^Emergency contact", [("v2-0063", "EMC"), ("v2-0131", "C")]),
        ("GRD", [("v2-0063", "GRD")]),
        ("SON^Son", [("local", "SON")]),  # urn:conduit:code:MERCY_GEN:local
    ],
)
def test_nk1_relationship_through_table_0063(
    adt: Mapping, relationship: str, codings: list[tuple[str, str]]
) -> None:
    person = one(adt, "RelatedPerson", f"NK1|1|ROWE^ALAN|{relationship}")
    found = [(c["system"].rsplit("/", 1)[-1].rsplit(":", 1)[-1], c["code"])
             for c in person["relationship"][0]["coding"]]
    assert found == codings


def test_nk1_contact_role_numbers_and_address(adt: Mapping) -> None:
    nk1 = "NK1|1|ROWE^ALAN^^^^^L|FTH|9 ELM ST^^SALEM^MA|(978)555-0101|^WPN^PH^^^978^5550102|C"
    person = one(adt, "RelatedPerson", nk1)
    assert person["relationship"][1]["coding"][0]["code"] == "C"
    assert [(t["value"], t["use"]) for t in person["telecom"]] == [
        ("(978)555-0101", "home"), ("(978) 555-0102", "work"),
    ]
    assert person["address"][0]["city"] == "SALEM"
    assert person["patient"]["reference"].startswith("urn:uuid:")


def test_placeholder_nk1_writes_nothing(adt: Mapping) -> None:
    assert of_type(bundle_of(adt, message("NK1|1", "NK1|2||")), "RelatedPerson") == []


# ---- AL1 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "category"),
    [("DA", ["medication"]), ("FA", ["food"]), ("EA", ["environment"]),
     ("AA", ["biologic"]), ("LA", ["environment"]), ("MA", None), ("MC", None)],
)
def test_allergen_type_is_the_category(adt: Mapping, kind: str, category: list | None) -> None:
    allergy = one(adt, "AllergyIntolerance", f"AL1|1|{kind}|^Something")
    assert allergy.get("category") == category


@pytest.mark.parametrize(
    ("severity", "criticality"),
    [("SV", "high"), ("MO", "low"), ("MI^Mild^HL70128", "low"), ("U", "unable-to-assess"),
     ("", None), ("XX", None)],
)
def test_severity_is_the_criticality(adt: Mapping, severity: str, criticality: str | None) -> None:
    allergy = one(adt, "AllergyIntolerance", f"AL1|1|DA|7980^Penicillin G^RXNORM|{severity}")
    assert allergy.get("criticality") == criticality
    assert allergy["clinicalStatus"]["coding"][0]["code"] == "active"
    assert allergy["verificationStatus"]["coding"][0]["code"] == "unconfirmed"


def test_allergy_reactions_and_onset(adt: Mapping) -> None:
    allergy = one(adt, "AllergyIntolerance", "AL1|1|DA|PENICILLIN|SV|Hives~Wheezing|20110315")
    assert allergy["code"] == {"text": "PENICILLIN"}
    assert allergy["reaction"] == [{"manifestation": [{"text": "Hives"}, {"text": "Wheezing"}]}]
    assert allergy["onsetDateTime"] == "2011-03-15"


@pytest.mark.parametrize(
    ("allergen", "snomed"),
    [("NKA", "716186003"), ("NKDA^No Known Drug Allergies", "409137002"),
     ("^No known food allergies", "429625007")],
)
def test_no_known_allergy_is_not_an_allergy_to_nka(
    adt: Mapping, allergen: str, snomed: str
) -> None:
    allergy = one(adt, "AllergyIntolerance", f"AL1|1|DA|{allergen}|SV|Hives")
    assert allergy["code"]["coding"][0] == {
        "system": "http://snomed.info/sct", "code": snomed,
        "display": allergy["code"]["coding"][0]["display"],
    }
    assert "criticality" not in allergy and "reaction" not in allergy


# ---- DG1 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dg1", "system", "code"),
    [
        ("DG1|1||J18.9^Pneumonia^I10", "http://hl7.org/fhir/sid/icd-10-cm", "J18.9"),
        ("DG1|1||J18.9^Pneumonia^I10C", "http://hl7.org/fhir/sid/icd-10-cm", "J18.9"),
        ("DG1|1|I9|486^PNEUMONIA", "http://hl7.org/fhir/sid/icd-9-cm", "486"),
        ("DG1|1||233604007^Pneumonia^SCT", "http://snomed.info/sct", "233604007"),
    ],
)
def test_diagnosis_code_systems(adt: Mapping, dg1: str, system: str, code: str) -> None:
    condition = one(adt, "Condition", dg1)
    assert condition["code"]["coding"][0]["system"] == system
    assert condition["code"]["coding"][0]["code"] == code
    assert condition["category"][0]["coding"][0]["code"] == "encounter-diagnosis"


@pytest.mark.parametrize(
    ("kind", "status"), [("A", "provisional"), ("W", "provisional"), ("F", "confirmed"), ("", None)]
)
def test_diagnosis_type_sets_verification(adt: Mapping, kind: str, status: str | None) -> None:
    condition = one(adt, "Condition", f"DG1|1||J18.9^Pneumonia^I10||20240601|{kind}")
    found = condition.get("verificationStatus", {}).get("coding", [{}])[0].get("code")
    assert found == status
    assert condition["recordedDate"] == "2024-06-01"
    if kind:
        assert condition["category"][1]["coding"][0]["code"] == kind


def test_description_alone_is_the_code_text(adt: Mapping) -> None:
    condition = one(adt, "Condition", "DG1|1|||CHEST PAIN||A")
    assert condition["code"] == {"text": "CHEST PAIN"}


# ---- IN1 --------------------------------------------------------------------------------


def _in1(fields: dict[int, str]) -> str:
    base = {1: "1", 2: "PPO1^Acme PPO", 3: "A100^^^ACME", 4: "ACME HEALTH", **fields}
    return "IN1|" + "|".join(base.get(i, "") for i in range(1, max(base) + 1))


@pytest.mark.parametrize(
    ("code", "expected"),
    [("SEL", "self"), ("SPO^Spouse^HL70063", "spouse"), ("DOM", "common"), ("CHD", "child"),
     ("MTH", "parent"), ("EME", "other")],
)
def test_insured_relationship_through_table_0063(adt: Mapping, code: str, expected: str) -> None:
    coverage = one(adt, "Coverage", _in1({16: "ROWE^ALAN", 17: code}))
    assert coverage["relationship"]["coding"][0]["code"] == expected
    subscriber = coverage["subscriber"]
    if expected == "self":
        assert subscriber["reference"].startswith("urn:uuid:")
    else:
        assert subscriber == {"display": "ALAN ROWE"}


def test_relationship_outside_table_0063_keeps_only_text(adt: Mapping) -> None:
    coverage = one(adt, "Coverage", _in1({17: "01"}))
    assert coverage["relationship"] == {"text": "01"}


def test_coverage_fields(adt: Mapping) -> None:
    coverage = one(adt, "Coverage", _in1({8: "G7", 12: "20240101", 13: "20241231", 22: "2",
                                          36: "POL-9", 49: "M-9^^^ACME^MB"}))
    assert coverage["status"] == "active"
    assert coverage["subscriberId"] == "POL-9"
    assert [i["value"] for i in coverage["identifier"]] == ["POL-9", "M-9"]
    assert coverage["payor"] == [{"identifier": {"system": "urn:conduit:id:ACME", "value": "A100"},
                                  "display": "ACME HEALTH"}]
    assert coverage["period"] == {"start": "2024-01-01", "end": "2024-12-31"}
    assert coverage["order"] == 2
    assert [c["value"] for c in coverage["class"]] == ["PPO1", "G7"]


def test_coverage_id_follows_plan_and_policy(adt: Mapping) -> None:
    first = one(adt, "Coverage", _in1({36: "POL-9"}))
    moved = one(adt, "Coverage", _in1({1: "2", 36: "POL-9", 12: "20250101"}))
    other = one(adt, "Coverage", _in1({36: "POL-10"}))
    assert first["id"] == moved["id"] != other["id"]


# ---- errors name fields, never values ---------------------------------------------------


@pytest.mark.parametrize(
    ("segment", "field", "value"),
    [
        ("AL1|1|DA||SV|ANAPHYLAXIS", "AL1-3", "ANAPHYLAXIS"),
        ("AL1|1|DA|^Penicillin|SV|Hives|20110231", "AL1-6", "20110231"),
        ("DG1|1||||20240601", "DG1-3", "20240601"),
        ("DG1|1||J18.9^Pneumonia^I10||2024-06-01", "DG1-5", "2024-06-01"),
        ("IN1|1|SELFPAY^Self pay||||||||||||||ROWE^TAMSIN|SEL", "IN1-3", "ROWE"),
        ("IN1|1|P1|C1|ACME||||||||2024-01-01", "IN1-12", "2024-01-01"),
        ("NK1|1|ROWE^ALAN|SPO" + "|" * 12 + "Q", "NK1-15", "ROWE"),
    ],
)
def test_bad_segments_fail_naming_the_field(
    adt: Mapping, segment: str, field: str, value: str
) -> None:
    checks.check_error(adt, message(segment), field, phi=("TAMSIN", "MG001234"), values=[value])
