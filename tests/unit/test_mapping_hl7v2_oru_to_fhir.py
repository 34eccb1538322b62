"""hl7v2-oru-to-fhir@1: every fixture, valid FHIR, stable ids, values by type, and errors
without PHI."""

from __future__ import annotations

import pytest

from engine.maplib.v2_results import looks_like_ucum
from engine.mapping import Mapping
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, check_transaction, of_type, run, segment

FIXTURES = checks.Fixtures("hl7v2-oru-to-fhir@1")
ADT_FIXTURES = checks.Fixtures("hl7v2-adt-to-fhir@1")
UCUM = "http://unitsofmeasure.org"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

oru = checks.mapping_fixture(FIXTURES.ref)


PID = "PID|1||RB7781204^^^RIVERBEND^MR||HOLLOWAY^PRUDENCE^M^^^^L||19660214|F"


def obr(**fields: str) -> str:
    """An OBR with filler number L1 and a glucose test unless `fields` (f<N>=...) differ."""
    base = {1: "1", 3: "L1^LIS", 4: "2345-7^Glucose^LN", 7: "20240312071500", 25: "F"}
    base.update({int(k[1:]): v for k, v in fields.items()})
    return segment("OBR", base)


def obx(**fields: str) -> str:
    """A final NM OBX (glucose 98 mg/dL) unless `fields` (f<N>=...) say otherwise."""
    base = {1: "1", 2: "NM", 3: "2345-7^Glucose^LN", 5: "98", 6: "mg/dL", 11: "F"}
    base.update({int(k[1:]): v for k, v in fields.items()})
    return segment("OBX", base)


def oru_message(
    *body: str, facility: str = "RIVERBEND_LAB", msh7: str = "20240312084512-0500",
    msh9: str = "ORU^R01", pid: str = PID, receiver: str = "RIVERBEND_HOSP",
) -> bytes:
    segments = [
        f"MSH|^~\\&|LIS|{facility}|EHR|{receiver}|{msh7}||{msh9}|CTRL1|P|2.5.1",
        pid,
        *(body or (obr(), obx())),
    ]
    return ("\r".join(segments) + "\r").encode()


def one_observation(mapping: Mapping, *segments: str) -> dict:
    observations = of_type(bundle_of(mapping, oru_message(obr(), *segments)), "Observation")
    assert len(observations) == 1
    return observations[0]


# ---- fixtures, valid FHIR, deterministic ids -------------------------------------------


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=6, output=check_transaction)


@pytest.mark.parametrize("case", FIXTURES.output_cases)
def test_every_observation_is_a_result_of_its_report(oru: Mapping, case: str) -> None:
    bundle = bundle_of(oru, FIXTURES.input(case))
    results = {
        r["reference"] for report in of_type(bundle, "DiagnosticReport")
        for r in report.get("result", [])
    }
    observations = {f"urn:uuid:{o['id']}" for o in of_type(bundle, "Observation")}
    assert results == observations
    patient = of_type(bundle, "Patient")[0]
    for resource in of_type(bundle, "DiagnosticReport") + of_type(bundle, "Observation"):
        assert resource["subject"] == {"reference": f"urn:uuid:{patient['id']}"}


def test_decimals_keep_the_digits_the_lab_sent(oru: Mapping) -> None:
    raw = FIXTURES.input("epic_beaker_cbc_cmp")
    out = run(oru, raw)
    assert isinstance(out, bytes)
    assert b'"value":38.50' in out and b'"value":3.80' in out


def test_patient_is_the_one_the_adt_feed_made(oru: Mapping) -> None:
    resulted = bundle_of(oru, FIXTURES.input("cerner_pathnet_lipids_abo"))
    checks.check_same_patient(
        of_type(resulted, "Patient")[0], ADT_FIXTURES.input("cerner_a04_register")
    )


def test_patient_id_matches_adt_for_a_built_message(oru: Mapping) -> None:
    adt_raw = (
        "MSH|^~\\&|ADT|RIVERBEND_LAB|EHR|HIE|20240312084512-0500||ADT^A08|C1|P|2.5.1\r"
        f"EVN|A08\r{PID}\r"
    ).encode()
    checks.check_same_patient(of_type(bundle_of(oru, oru_message()), "Patient")[0], adt_raw)


def test_corrected_result_replaces_the_preliminary_one(oru: Mapping) -> None:
    first = bundle_of(oru, oru_message(obr(f25="P"), obx(f11="P", f5="98")))
    second = bundle_of(oru, oru_message(obr(f25="C"), obx(f11="C", f5="89")))
    for kind in ("DiagnosticReport", "Observation", "Patient"):
        assert [r["id"] for r in of_type(first, kind)] == [r["id"] for r in of_type(second, kind)]
    assert of_type(first, "Observation")[0]["status"] == "preliminary"
    assert of_type(second, "Observation")[0]["status"] == "corrected"
    assert of_type(second, "DiagnosticReport")[0]["status"] == "corrected"


def test_another_facility_gets_other_ids(oru: Mapping) -> None:
    here = bundle_of(oru, oru_message(facility="RIVERBEND_LAB"))
    there = bundle_of(oru, oru_message(facility="NORTHGATE_LAB"))
    for kind in ("DiagnosticReport", "Observation"):
        assert of_type(here, kind)[0]["id"] != of_type(there, kind)[0]["id"]


def test_one_accession_for_two_panels_makes_two_reports(oru: Mapping) -> None:
    raw = oru_message(
        obr(), obx(),
        obr(f1="2", f4="2951-2^Sodium^LN"), obx(f3="2951-2^Sodium^LN", f6="mmol/L"),
    )
    bundle = bundle_of(oru, raw)
    assert len({r["id"] for r in of_type(bundle, "DiagnosticReport")}) == 2
    assert len({o["id"] for o in of_type(bundle, "Observation")}) == 2
    check_transaction(bundle)


def test_empty_or_repeated_set_ids_still_give_distinct_observations(oru: Mapping) -> None:
    raw = oru_message(obr(), obx(f1=""), obx(f1="", f5="99"), obx(f1="1"), obx(f1="1"))
    bundle = bundle_of(oru, raw)
    assert len({o["id"] for o in of_type(bundle, "Observation")}) == 4
    check_transaction(bundle)


def test_placer_number_without_authority_reads_as_the_order_feed_wrote_it(oru: Mapping) -> None:
    orm = checks.mapping("hl7v2-orm-to-fhir@1")
    order = (
        "MSH|^~\\&|EHR|RIVERBEND_HOSP|LIS|RIVERBEND_LAB|20240312060000-0500||ORM^O01|C2|P|2.5.1\r"
        f"{PID}\rORC|NW|ORD-9\rOBR|1|ORD-9||2345-7^Glucose^LN\r"
    ).encode()
    request = of_type(bundle_of(orm, order), "ServiceRequest")[0]
    report = of_type(bundle_of(oru, oru_message(obr(f2="ORD-9"), obx())), "DiagnosticReport")[0]
    placer = next(i for i in request["identifier"] if i["type"]["coding"][0]["code"] == "PLAC")
    assert report["basedOn"] == [{"type": "ServiceRequest", "identifier": placer}]


def test_a_tube_shared_by_two_panels_is_written_once(oru: Mapping) -> None:
    spm = segment("SPM", {1: "1", 2: "^SP-1&LIS", 4: "BLD^Blood^HL70487"})
    raw = oru_message(obr(), obx(), spm, obr(f1="2", f4="2951-2^Sodium^LN"),
                      obx(f3="2951-2^Sodium^LN"), spm)
    bundle = bundle_of(oru, raw)
    specimens = of_type(bundle, "Specimen")
    assert len(specimens) == 1
    for report in of_type(bundle, "DiagnosticReport"):
        assert report["specimen"] == [{"reference": f"urn:uuid:{specimens[0]['id']}"}]
    check_transaction(bundle)


# ---- errors name fields, never values ---------------------------------------------------

PHI = ("RB7781204", "HOLLOWAY", "PRUDENCE", "19660214", "L1", "98", "Glucose")


@pytest.mark.parametrize("msh9", ["ADT^A01", "ORU^R30", "ORM^O01", "MDM^T02"])
def test_other_message_types_fail_naming_msh9(oru: Mapping, msh9: str) -> None:
    checks.check_error(oru, oru_message(msh9=msh9), "MSH-9", values=PHI)


def test_oru_without_trigger_event_is_read_as_r01(oru: Mapping) -> None:
    assert of_type(bundle_of(oru, oru_message(msh9="ORU")), "DiagnosticReport")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ((obx(),), "OBR"),
        ((obr(f3="", f2=""), obx()), "OBR-3"),
        ((obr(f4=""), obx()), "OBR-4"),
        ((obr(), obx(f3="")), "OBX-3"),
        ((obr(f7="20241332"), obx()), "OBR-7"),
        ((obr(f22="2024-03-12"), obx()), "OBR-22"),
        ((obr(), obx(f14="202403120715xx")), "OBX-14"),
        ((obr(), obx(), obx(f1="2", f14="20240231")), "OBX[2]-14"),
        ((obr(), obr(f1="2", f4="2345-7^Glucose^LN")), "OBR[2]-3"),
        ((obr(), obx(f2="ED", f5="LIS^AP^PDF^Base64^not*base64!")), "OBX-5"),
        ((obr(), segment("SPM", {1: "1", 17: "20240399"})), "SPM-17"),
    ],
)
def test_bad_input_fails_naming_the_field_and_no_value(
    oru: Mapping, body: tuple[str, ...], field: str
) -> None:
    checks.check_error(oru, oru_message(*body), field, values=PHI)


def test_a_second_patient_fails_naming_pid(oru: Mapping) -> None:
    raw = oru_message(obr(), obx(), "PID|2||RB0000001^^^RIVERBEND^MR||OTHER^PERSON", obr(f1="2"))
    checks.check_error(oru, raw, "PID", values=PHI)


def test_missing_pid_fails_naming_pid3(oru: Mapping) -> None:
    checks.check_error(oru, oru_message(pid="PD1|||CLINIC"), "PID-3", values=PHI)


# ---- values by OBX-2 --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "value"),
    [
        ({"f2": "NM", "f5": "5.10", "f6": "mmol/L"},
         {"valueQuantity": {"value": 5.1, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"}}),
        ({"f2": "NM", "f5": "+.5", "f6": "mEq/L"}, {"valueQuantity": {"value": 0.5,
                                                                      "unit": "mEq/L"}}),
        ({"f2": "NM", "f5": "TNP"}, {"valueString": "TNP"}),
        ({"f2": "SN", "f5": "<^10", "f6": "mg/L^^UCUM"}, {"valueQuantity": {
            "value": 10, "comparator": "<", "unit": "mg/L", "system": UCUM, "code": "mg/L"}}),
        ({"f2": "SN", "f5": ">=^5", "f6": ""}, {"valueQuantity": {"value": 5,
                                                                   "comparator": ">="}}),
        ({"f2": "SN", "f5": "=^7", "f6": ""}, {"valueQuantity": {"value": 7}}),
        ({"f2": "SN", "f5": "^10^-^20", "f6": "g/L"}, {"valueRange": {
            "low": {"value": 10, "unit": "g/L", "system": UCUM, "code": "g/L"},
            "high": {"value": 20, "unit": "g/L", "system": UCUM, "code": "g/L"}}}),
        ({"f2": "SN", "f5": "^1^:^128"},
         {"valueRatio": {"numerator": {"value": 1}, "denominator": {"value": 128}}}),
        ({"f2": "SN", "f5": ">^1^/^64"}, {"valueRatio": {
            "numerator": {"value": 1, "comparator": ">"}, "denominator": {"value": 64}}}),
        ({"f2": "SN", "f5": "^2^+"}, {"valueString": "2+"}),
        ({"f2": "SN", "f5": "<>^5"}, {"valueString": "<>5"}),
        ({"f2": "ST", "f5": "Hemolyzed \\T\\ icteric"}, {"valueString": "Hemolyzed & icteric"}),
        ({"f2": "TX", "f5": "line one~line two"}, {"valueString": "line one\nline two"}),
        ({"f2": "FT", "f5": "first\\.br\\second"}, {"valueString": "first\nsecond"}),
        ({"f2": "CE", "f5": "260385009^Negative^SCT"}, {"valueCodeableConcept": {"coding": [
            {"system": "http://snomed.info/sct", "code": "260385009", "display": "Negative"}]}}),
        ({"f2": "CWE", "f5": "^^^^^^^^Not detected"},
         {"valueCodeableConcept": {"text": "Not detected"}}),
        ({"f2": "DT", "f5": "20240301"}, {"valueDateTime": "2024-03-01"}),
        ({"f2": "TS", "f5": "202403011230"}, {"valueDateTime": "2024-03-01T12:30:00-05:00"}),
        ({"f2": "DTM", "f5": "20240301123015+0100"},
         {"valueDateTime": "2024-03-01T12:30:15+01:00"}),
        ({"f2": "TM", "f5": "0915"}, {"valueTime": "09:15:00"}),
        ({"f2": "CX", "f5": "A-1^^^LAB"}, {"valueString": "A-1 LAB"}),
        ({"f2": "NM", "f5": ""}, {}),
    ],
)
def test_value_follows_the_value_type(oru: Mapping, fields: dict, value: dict) -> None:
    observation = one_observation(oru, obx(f7="", **fields))
    assert {k: v for k, v in observation.items() if k.startswith("value")} == value


def test_consecutive_text_lines_of_one_test_are_one_observation(oru: Mapping) -> None:
    lines = [obx(f1=str(i), f2="TX", f3="664-3^Gram stain^LN", f4="1", f5=f"line {i}")
             for i in (1, 2, 3)]
    other_sub_id = obx(f1="4", f2="TX", f3="664-3^Gram stain^LN", f4="2", f5="other")
    bundle = bundle_of(oru, oru_message(obr(), *lines, other_sub_id))
    values = [o["valueString"] for o in of_type(bundle, "Observation")]
    assert values == ["line 1\nline 2\nline 3", "other"]


def test_a_note_between_text_lines_keeps_them_apart(oru: Mapping) -> None:
    first = obx(f1="1", f2="TX", f3="664-3^Gram stain^LN", f5="a")
    second = obx(f1="2", f2="TX", f3="664-3^Gram stain^LN", f5="b")
    bundle = bundle_of(oru, oru_message(obr(), first, "NTE|1||about a", second))
    observations = of_type(bundle, "Observation")
    assert [o["valueString"] for o in observations] == ["a", "b"]
    assert observations[0]["note"] == [{"text": "about a"}]


def test_encapsulated_pdf_becomes_the_reports_presented_form(oru: Mapping) -> None:
    ed = obx(f2="ED", f3="11526-1^Pathology study^LN", f5="LIS^AP^PDF^Base64^JVBERi0xLjQK")
    bundle = bundle_of(oru, oru_message(obr(), ed))
    assert of_type(bundle, "Observation") == []
    report = of_type(bundle, "DiagnosticReport")[0]
    assert report["presentedForm"] == [{"contentType": "application/pdf", "data": "JVBERi0xLjQK"}]


def test_hex_encoded_data_is_re_encoded_as_base64(oru: Mapping) -> None:
    ed = obx(f2="ED", f5="LIS^TEXT^PLAIN^Hex^48690a")
    report = of_type(bundle_of(oru, oru_message(obr(), ed)), "DiagnosticReport")[0]
    assert report["presentedForm"] == [{"contentType": "text/plain", "data": "SGkK"}]


# ---- units, ranges, flags, statuses -----------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("mg/dL", True), ("10*3/uL", True), ("mL/min/{1.73_m2}", True), ("%", True),
        ("mm[Hg]", True), ("mmol/L", True), ("/uL", True), ("meq/L", True), ("[IU]/L", True),
        ("mg{creat}", True), ("kg/m2", True), ("{ratio}", True),
        ("mEq/L", False), ("K/uL", False), ("IU/L", False), ("x10E3/uL", False),
        ("cells/uL", False), ("sec", False), ("mg /dL", False), ("", False), ("mg/", False),
        ("(mg", False), ("mOsm/kg", False),
    ],
)
def test_ucum_is_recognised_only_when_it_parses(unit: str, expected: bool) -> None:
    assert looks_like_ucum(unit) is expected


def test_unit_declared_ucum_by_the_sender_is_trusted(oru: Mapping) -> None:
    quantity = one_observation(oru, obx(f6="mg/dL^milligrams per deciliter^UCUM"))
    assert quantity["valueQuantity"] == {
        "value": 98, "unit": "milligrams per deciliter", "system": UCUM, "code": "mg/dL"
    }


def test_ucum_in_the_alternate_triplet_is_used(oru: Mapping) -> None:
    quantity = one_observation(oru, obx(f6="MGDL^mg per dL^L^mg/dL^^UCUM"))
    assert quantity["valueQuantity"]["code"] == "mg/dL"
    assert quantity["valueQuantity"]["unit"] == "mg per dL"


@pytest.mark.parametrize(
    ("text", "bounds"),
    [
        ("3.5-5.0", {"low": 3.5, "high": 5.0}),
        ("-2.0 - 2.0", {"low": -2.0, "high": 2.0}),
        ("<200", {"high": 200}),
        ("<=200", {"high": 200}),
        (">10", {"low": 10}),
        (">= 60", {"low": 60}),
        ("Negative", {}),
        ("see note", {}),
    ],
)
def test_reference_range_keeps_its_text_and_reads_bounds(
    oru: Mapping, text: str, bounds: dict
) -> None:
    observation = one_observation(oru, obx(f7=text, f6="mg/dL"))
    (reference,) = observation["referenceRange"]
    assert reference["text"] == text
    assert {k: reference[k]["value"] for k in ("low", "high") if k in reference} == bounds


@pytest.mark.parametrize(
    ("flags", "codes"),
    [("H", ["H"]), ("LL", ["LL"]), ("HH~A", ["HH", "A"]), ("<", ["<"]), ("N", ["N"]),
     ("aa", ["AA"]), ("", [])],
)
def test_abnormal_flags_map_to_v3_interpretation(oru: Mapping, flags: str, codes: list) -> None:
    interpretation = one_observation(oru, obx(f8=flags)).get("interpretation", [])
    assert [i["coding"][0]["code"] for i in interpretation] == codes
    assert all(i["coding"][0]["system"] == V3_INTERPRETATION for i in interpretation)


def test_unknown_flag_is_kept_as_text(oru: Mapping) -> None:
    assert one_observation(oru, obx(f8="ZZ"))["interpretation"] == [{"text": "ZZ"}]


@pytest.mark.parametrize(
    ("code", "status"),
    [("F", "final"), ("P", "preliminary"), ("C", "corrected"), ("A", "amended"),
     ("X", "cancelled"), ("D", "entered-in-error"), ("W", "entered-in-error"),
     ("I", "registered"), ("R", "preliminary"), ("", "final"), ("Q", "final")],
)
def test_observation_status_follows_table_0085(oru: Mapping, code: str, status: str) -> None:
    assert one_observation(oru, obx(f11=code))["status"] == status


@pytest.mark.parametrize(
    ("code", "status"),
    [("F", "final"), ("P", "preliminary"), ("C", "corrected"), ("X", "cancelled"),
     ("R", "partial"), ("I", "registered"), ("O", "registered"), ("S", "registered"),
     ("A", "partial"), ("", "unknown"), ("Z", "unknown")],
)
def test_report_status_follows_table_0123(oru: Mapping, code: str, status: str) -> None:
    bundle = bundle_of(oru, oru_message(obr(f25=code), obx(f11="")))
    assert of_type(bundle, "DiagnosticReport")[0]["status"] == status
    observation = of_type(bundle, "Observation")[0]
    assert observation["status"] == (status if status != "partial" else "unknown")


@pytest.mark.parametrize(
    ("section", "codes", "lab_observation"),
    [("", ["LAB"], True), ("CH", ["LAB", "CH"], True), ("MB", ["LAB", "MB"], True),
     ("RAD", ["RAD"], False), ("LAB", ["LAB"], True)],
)
def test_category_is_lab_unless_another_section_is_named(
    oru: Mapping, section: str, codes: list, lab_observation: bool
) -> None:
    bundle = bundle_of(oru, oru_message(obr(f24=section), obx()))
    report = of_type(bundle, "DiagnosticReport")[0]
    assert [c["coding"][0]["code"] for c in report["category"]] == codes
    assert ("category" in of_type(bundle, "Observation")[0]) is lab_observation


@pytest.mark.parametrize(
    ("system", "uri"),
    [("LN", "http://loinc.org"), ("SCT", "http://snomed.info/sct"),
     ("SNM", "http://snomed.info/sct"), ("SNOMED", "http://snomed.info/sct"),
     ("HL70487", "http://terminology.hl7.org/CodeSystem/v2-0487"),
     ("2.16.840.1.113883.6.1", "http://loinc.org"),
     ("L", "urn:conduit:code:RIVERBEND_LAB:L"), ("99ZLB", "urn:conduit:code:RIVERBEND_LAB:99ZLB"),
     ("", "urn:conduit:code:RIVERBEND_LAB:local")],
)
def test_coding_systems_map_to_fhir_uris(oru: Mapping, system: str, uri: str) -> None:
    code = one_observation(oru, obx(f3=f"GLU^Glucose^{system}"))["code"]
    assert code["coding"][0]["system"] == uri


# ---- times, notes, specimens ------------------------------------------------------------


def test_times_without_zone_take_the_senders_and_issued_needs_an_instant(oru: Mapping) -> None:
    bundle = bundle_of(oru, oru_message(obr(f22="20240312"), obx(f14="202403120705")))
    report = of_type(bundle, "DiagnosticReport")[0]
    assert report["effectiveDateTime"] == "2024-03-12T07:15:00-05:00"
    assert "issued" not in report
    assert of_type(bundle, "Observation")[0]["effectiveDateTime"] == "2024-03-12T07:05:00-05:00"


def test_without_any_zone_times_keep_their_date(oru: Mapping) -> None:
    bundle = bundle_of(oru, oru_message(obr(f22="20240312090000"), obx(), msh7="20240312"))
    report = of_type(bundle, "DiagnosticReport")[0]
    assert report["effectiveDateTime"] == "2024-03-12"
    assert "issued" not in report


def test_report_notes_use_the_r5_note_extension(oru: Mapping) -> None:
    bundle = bundle_of(oru, oru_message(obr(), "NTE|1|L|Specimen slightly lipemic.", obx()))
    report = of_type(bundle, "DiagnosticReport")[0]
    assert report["extension"] == [{
        "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.note",
        "valueAnnotation": {"text": "Specimen slightly lipemic."},
    }]
    assert "note" not in of_type(bundle, "Observation")[0]


def test_notes_after_z_segments_are_not_attributed(oru: Mapping) -> None:
    bundle = bundle_of(oru, oru_message(obr(), obx(), "ZXT|1|X", "NTE|1||stray"))
    assert "note" not in of_type(bundle, "Observation")[0]


def test_obr15_gives_a_specimen_when_there_is_no_spm(oru: Mapping) -> None:
    bundle = bundle_of(oru, oru_message(obr(f15="SER&Serum&HL70070", f14="202403120730"),
                                        obx()))
    (specimen,) = of_type(bundle, "Specimen")
    assert specimen["type"]["coding"][0]["code"] == "SER"
    assert specimen["receivedTime"] == "2024-03-12T07:30:00-05:00"
    assert of_type(bundle, "Observation")[0]["specimen"] == {
        "reference": f"urn:uuid:{specimen['id']}"
    }


def test_observations_after_an_spm_belong_to_that_specimen(oru: Mapping) -> None:
    raw = oru_message(
        obr(), obx(),
        segment("SPM", {1: "1", 2: "^SP-1&LIS", 4: "BLD^Blood^HL70487"}),
        segment("SPM", {1: "2", 2: "^SP-2&LIS", 4: "UR^Urine^HL70487"}),
        obx(f1="2", f3="VOL^Volume^L", f5="12", f6="mL"),
    )
    bundle = bundle_of(oru, raw)
    first, second = of_type(bundle, "Specimen")
    glucose, volume = of_type(bundle, "Observation")
    assert glucose["specimen"]["reference"] == f"urn:uuid:{first['id']}"
    assert volume["specimen"]["reference"] == f"urn:uuid:{second['id']}"
    check_transaction(bundle)
