"""engine.maplib.v2_to_fhir.clinical and .financial, the entry points every message
builder calls: each returns what it added; AL1, DG1 and IN1 keep the resources and ids
of the released v2_clinical converters; a segment that cannot be mapped is a located
warning under a lenient conversion and still an error under a strict one."""

from __future__ import annotations

import pytest

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message
from engine.leniency import lenient
from engine.maplib import v2_clinical
from engine.maplib.v2_to_fhir import clinical, financial, people, visit
from engine.maplib.v2_to_fhir.frame import Build
from tests.mapping_checks import check_resource, segment

MSH = "MSH|^~\\&|APP|NORTHFAC|RCV|RCVFAC|20240102030405-0600||ADT^A08^ADT_A01|C1|P|2.5.1"
PID = segment("PID", {1: "1", 3: "N-1^^^NORTHFAC^MR", 5: "WREN^OLIVE", 7: "19900101",
                      8: "F", 18: "NA-1^^^NORTHFAC^AN"})
PV1 = segment("PV1", {1: "1", 2: "I", 19: "NV-1^^^NORTHFAC^VN"})
AL1 = segment("AL1", {1: "1", 2: "DA", 3: "7980^Penicillin^RXNORM", 4: "SV", 5: "Hives",
                      6: "20100101"})
DG1 = segment("DG1", {1: "1", 3: "J18.9^Pneumonia^I10", 5: "20240101", 6: "F",
                      16: "77^MOSS^ELI", 19: "20240103", 20: "D-1^APP"})
IN1 = segment("IN1", {1: "1", 2: "PLAN1", 3: "PAY1^^^NAIC", 4: "Payer One", 17: "SEL",
                      36: "POL1"})


def build(*segments: str) -> Build:
    message = Hl7Message.parse("\r".join([MSH, PID, PV1, *segments]) + "\r")
    b = Build(message)
    people.patient(b)
    visit.encounter(b)
    return b


def test_al1_is_the_released_allergy_resource() -> None:
    with lenient():
        b = build(AL1)
        made = clinical.allergies(b)
    al1 = b.message.segment("AL1")
    assert made == [v2_clinical.allergy(al1, b.facility, b.patient["id"], b.offset)]
    assert b.resources("AllergyIntolerance") == made
    check_resource(made[0])


def test_an_iam_about_an_al1_allergen_is_the_same_allergy() -> None:
    iam = segment("IAM", {1: "1", 2: "DA", 3: "7980^Penicillin^RXNORM", 6: "U", 17: "C"})
    with lenient():
        b = build(AL1, iam)
        clinical.allergies(b)
    kept = b.resources("AllergyIntolerance")
    assert len(kept) == 1
    assert kept[0]["verificationStatus"]["coding"][0]["code"] == "confirmed"
    check_resource(kept[0])


def test_dg1_keeps_the_released_id_and_adds_onset_recorded_and_clinician() -> None:
    with lenient():
        b = build(DG1)
        made = clinical.conditions(b)
    released = v2_clinical.condition(b.message.segment("DG1"), b.facility, b.patient["id"],
                                     b.encounter["id"], b.offset)
    assert [c["id"] for c in made] == [released["id"]]
    condition = made[0]
    assert (condition["onsetDateTime"], condition["recordedDate"]) == ("2024-01-01",
                                                                       "2024-01-03")
    assert condition["identifier"][0]["value"] == "D-1"
    asserter = next(p for p in b.resources("Practitioner")
                    if condition["asserter"] == b.ref(p))
    assert asserter["name"][0]["family"] == "MOSS"
    check_resource(condition)


def test_in1_keeps_the_released_id_with_a_payor_organization() -> None:
    with lenient():
        b = build(IN1)
        made = financial.coverages(b)
    released = v2_clinical.coverage(b.message.segment("IN1"), b.facility, b.patient["id"])
    assert [c["id"] for c in made] == [released["id"]]
    payor = b.resources("Organization")
    assert [b.ref(o) for o in payor if o.get("name") == "Payer One"] == made[0]["payor"]
    check_resource(made[0])


def test_a_segment_that_cannot_be_mapped_is_a_located_warning() -> None:
    empty_pr1 = segment("PR1", {1: "1", 5: "20240101"})
    good_pr1 = segment("PR1", {1: "2", 3: "44950^Appendectomy^C4", 5: "20240101"})
    with lenient() as notes:
        b = build(empty_pr1, good_pr1)
        made = clinical.procedures(b)
    assert [p["code"]["coding"][0]["code"] for p in made] == ["44950"]
    assert [str(w) for w in notes.warnings] == [
        "PR1-3: has no procedure code, nor a description in PR1-4"]


def test_strict_conversions_still_fail_on_the_field() -> None:
    bad = DG1.replace("20240101", "20241301")
    b = build(bad)
    with pytest.raises(MappingError) as caught:
        clinical.conditions(b)
    assert caught.value.field == "DG1-5"


def test_problems_read_onset_text_and_default_to_active() -> None:
    prb = segment("PRB", {1: "AD", 3: "13645005^COPD^SCT", 4: "PR-1^APP",
                          17: "Since 2010"})
    with lenient():
        b = build(prb)
        made = clinical.problems(b)
    problem = made[0]
    assert problem["onsetString"] == "Since 2010"
    assert problem["clinicalStatus"]["coding"][0]["code"] == "active"
    check_resource(problem)


def test_guarantors_return_the_party_and_the_account() -> None:
    gt1 = segment("GT1", {1: "1", 3: "WREN^PAUL", 11: "FTH", 8: "19600101"})
    nothing = segment("GT1", {1: "2", 10: "P"})
    with lenient() as notes:
        b = build(gt1, nothing)
        made = financial.guarantors(b)
    assert [r["resourceType"] for r in made] == ["RelatedPerson", "Account"]
    account = made[1]
    assert account["guarantor"] == [{"party": b.ref(made[0])}]
    assert account["identifier"][0]["value"] == "NA-1"
    assert [w.at for w in notes.warnings] == ["GT1[2]-3"]
    for resource in made:
        check_resource(resource)


def test_one_person_named_as_next_of_kin_and_guarantor_is_one_resource() -> None:
    nk1 = segment("NK1", {1: "1", 2: "WREN^PAUL", 3: "FTH"})
    gt1 = segment("GT1", {1: "1", 3: "WREN^PAUL", 11: "FTH", 12: "123-45-6789"})
    with lenient():
        b = build(nk1, gt1)
        people.related_persons(b)
        financial.guarantors(b)
    persons = b.resources("RelatedPerson")
    assert len(persons) == 1
    assert persons[0]["identifier"][0]["value"] == "123-45-6789"
    assert "Guarantor" in [r.get("text") for r in persons[0]["relationship"]]


def test_charges_return_charge_items_on_the_account() -> None:
    ft1 = segment("FT1", {1: "1", 2: "T1", 4: "20240102", 6: "CG", 7: "99221^^C4",
                          10: "1", 11: "300.00&USD"})
    with lenient():
        b = build(IN1, ft1)
        financial.coverages(b)
        made = financial.charges(b)
    assert [c["resourceType"] for c in made] == ["ChargeItem"]
    account = b.resources("Account")[0]
    assert made[0]["account"] == [b.ref(account)]
    assert account["coverage"][0]["coverage"] == b.ref(b.resources("Coverage")[0])
    check_resource(made[0])
    check_resource(account)
