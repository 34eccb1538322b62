"""hl7v2-oru-to-fhir@2: every fixture as a valid R4 transaction, every OBX value type where
the reference puts it, v1's ids kept for the same facts, the ADT feed's Patient, every
patient of a batch under its own Patient, and odd fields as located warnings that hold no
values from the message."""

from __future__ import annotations

import pytest

from engine.errors import MappingError
from engine.maplib.v2_to_fhir import oru
from engine.mapping import Mapping
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, of_type, only, run, segment, warnings_of

FIXTURES = checks.Fixtures("hl7v2-oru-to-fhir@2")
V1_FIXTURES = checks.Fixtures("hl7v2-oru-to-fhir@1")
to_fhir = checks.mapping_fixture(FIXTURES.ref)
to_fhir_v1 = checks.mapping_fixture(V1_FIXTURES.ref)

UCUM = "http://unitsofmeasure.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
PID = "PID|1||LK-5501^^^LAKESIDE^MR||QUILLAN^ROSA^^^^^L||19800202|F"


def obr(**fields: str) -> str:
    base = {1: "1", 2: "P1^EHR", 3: "L1^LIS", 4: "2345-7^Glucose^LN", 7: "20250310071500",
            22: "20250310090000", 25: "F"}
    base.update({int(k[1:]): v for k, v in fields.items()})
    return segment("OBR", base)


def obx(**fields: str) -> str:
    base = {1: "1", 2: "NM", 3: "2345-7^Glucose^LN", 5: "98", 6: "mg/dL", 11: "F"}
    base.update({int(k[1:]): v for k, v in fields.items()})
    return segment("OBX", base)


def message(*body: str, pid: str | None = PID, msh9: str = "ORU^R01^ORU_R01") -> bytes:
    head = f"MSH|^~\\&|LIS|LAKESIDE_LAB|EHR|LAKESIDE|20250310090500-0600||{msh9}|C1|P|2.5.1"
    lines = [head, *([pid] if pid else []), *(body or (obr(), obx()))]
    return ("\r".join(lines) + "\r").encode()


def observation(mapping: Mapping, *segments: str) -> dict:
    return only(bundle_of(mapping, message(obr(), *segments)), "Observation")


def ids(bundle: dict, *kinds: str) -> set[tuple[str, str]]:
    return {(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]
            if e["resource"]["resourceType"] in kinds}


# ---- fixtures ---------------------------------------------------------------------------


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=30, min_outputs=25,
                                    output=checks.check_transaction)


@pytest.mark.parametrize("case", FIXTURES.output_cases)
def test_every_report_lists_the_observations_of_its_obr(to_fhir: Mapping, case: str) -> None:
    bundle = bundle_of(to_fhir, FIXTURES.input(case))
    listed = {r["reference"] for d in of_type(bundle, "DiagnosticReport")
              for r in d.get("result", [])}
    made = {f"urn:uuid:{o['id']}" for o in of_type(bundle, "Observation")}
    assert listed <= made
    if of_type(bundle, "DiagnosticReport") and "without_obr" not in case:
        assert made <= listed | {m["reference"] for o in of_type(bundle, "Observation")
                                 for m in o.get("hasMember", [])}


@pytest.mark.parametrize("case", V1_FIXTURES.output_cases)
def test_v1_ids_are_kept_for_the_same_facts(to_fhir: Mapping, to_fhir_v1: Mapping,
                                            case: str) -> None:
    raw = V1_FIXTURES.input(case)
    kinds = ("Patient", "DiagnosticReport", "Observation", "Specimen")
    assert ids(bundle_of(to_fhir_v1, raw), *kinds) <= ids(bundle_of(to_fhir, raw), *kinds)


def test_declares_its_events_and_every_resource_its_bundles_hold(to_fhir: Mapping) -> None:
    assert oru.EVENTS == ("R01", "R30", "R31", "R32")
    made = {e["resource"]["resourceType"] for case in FIXTURES.output_cases
            for e in bundle_of(to_fhir, FIXTURES.input(case))["entry"]}
    assert {"Patient", "DiagnosticReport", "Observation", "Specimen", "ServiceRequest",
            "Practitioner", "Organization", "Device", "DocumentReference",
            "Encounter"} <= made
    assert made <= set(oru.RESOURCES)


def test_patient_is_the_one_the_adt_feed_makes(to_fhir: Mapping) -> None:
    adt = ("MSH|^~\\&|ADT|LAKESIDE_LAB|EHR|LAKESIDE|20250310080000-0600||ADT^A01|A1|P|2.5.1\r"
           "EVN|A01|20250310080000-0600\r" + PID + "\rPV1|1|O\r").encode()
    patient = of_type(bundle_of(to_fhir, message()), "Patient")[0]
    checks.check_same_patient(patient, adt)


def test_same_message_twice_gives_the_same_ids(to_fhir: Mapping) -> None:
    checks.check_deterministic(to_fhir, message(obr(), obx(), obx(f1="2", f5="101")))


# ---- values by OBX-2 ------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "value"), [
    ({"f2": "NM", "f5": "5.10", "f6": "mmol/L"},
     {"valueQuantity": {"value": 5.10, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"}}),
    ({"f2": "NM", "f5": "142", "f6": "cells/uL"},
     {"valueQuantity": {"value": 142, "unit": "cells/uL"}}),
    ({"f2": "SN", "f5": ">^90", "f6": ""}, {"valueQuantity": {"value": 90, "comparator": ">"}}),
    ({"f2": "NM", "f5": "<0.01", "f6": ""},
     {"valueQuantity": {"value": 0.01, "comparator": "<"}}),
    ({"f2": "SN", "f5": "^1^:^128", "f6": ""},
     {"valueRatio": {"numerator": {"value": 1}, "denominator": {"value": 128}}}),
    ({"f2": "SN", "f5": "^10^-^20", "f6": ""},
     {"valueRange": {"low": {"value": 10}, "high": {"value": 20}}}),
    ({"f2": "NR", "f5": "10^20", "f6": ""},
     {"valueRange": {"low": {"value": 10}, "high": {"value": 20}}}),
    ({"f2": "ST", "f5": "Nonreactive", "f6": ""}, {"valueString": "Nonreactive"}),
    ({"f2": "FT", "f5": "line one\\.br\\line two~line three", "f6": ""},
     {"valueString": "line one\nline two\nline three"}),
    ({"f2": "CWE", "f5": "260385009^Negative^SCT", "f6": ""},
     {"valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct",
                                            "code": "260385009", "display": "Negative"}]}}),
    ({"f2": "CNE", "f5": "LA9633-4^Present^LN", "f6": ""},
     {"valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "LA9633-4",
                                            "display": "Present"}]}}),
    ({"f2": "DT", "f5": "20241203", "f6": ""}, {"valueDateTime": "2024-12-03"}),
    ({"f2": "TS", "f5": "202402271200", "f6": ""},
     {"valueDateTime": "2024-02-27T12:00:00-06:00"}),
    ({"f2": "DTM", "f5": "20240227120000+0100", "f6": ""},
     {"valueDateTime": "2024-02-27T12:00:00+01:00"}),
    ({"f2": "TM", "f5": "0910", "f6": ""}, {"valueTime": "09:10:00"}),
    ({"f2": "DR", "f5": "20250101^20250102", "f6": ""},
     {"valuePeriod": {"start": "2025-01-01", "end": "2025-01-02"}}),
])
def test_value_follows_the_value_type(to_fhir: Mapping, fields: dict, value: dict) -> None:
    found = observation(to_fhir, obx(**fields))
    assert {k: v for k, v in found.items() if k.startswith("value")} == value


def test_an_empty_value_says_why_it_is_absent(to_fhir: Mapping) -> None:
    found = observation(to_fhir, obx(f5="", f11="X"))
    assert found["status"] == "cancelled"
    assert found["dataAbsentReason"]["coding"][0]["code"] == "not-performed"
    assert not [k for k in found if k.startswith("value")]


def test_encapsulated_pdf_is_the_reports_presented_form(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, message(obr(), obx(
        f2="ED", f3="PDF^Report^L", f5="^application^pdf^Base64^JVBERi0xLjQ=")))
    form = of_type(bundle, "DiagnosticReport")[0]["presentedForm"][0]
    assert (form["contentType"], form["data"], form["title"]) == (
        "application/pdf", "JVBERi0xLjQ=", "Report")
    assert not of_type(bundle, "Observation")


def test_reference_pointer_is_a_document_the_observation_derives_from(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, message(obr(), obx(
        f2="RP", f3="18748-4^Imaging study^LN", f5="https://pacs.example/1^PACS^image^jpeg")))
    document = of_type(bundle, "DocumentReference")[0]
    assert document["content"][0]["attachment"] == {"contentType": "image/jpeg",
                                                    "url": "https://pacs.example/1"}
    found = of_type(bundle, "Observation")[0]
    assert found["derivedFrom"] == [{"reference": f"urn:uuid:{document['id']}"}]


def test_text_lines_of_one_test_are_one_observation(to_fhir: Mapping) -> None:
    found = observation(to_fhir, obx(f2="TX", f3="18782-3^Narrative^LN", f5="FINDINGS:"),
                        obx(f1="2", f2="TX", f3="18782-3^Narrative^LN", f5="Lungs clear."))
    assert found["valueString"] == "FINDINGS:\nLungs clear."


# ---- the elements around the value ------------------------------------------------------


def test_range_flags_status_times_and_notes(to_fhir: Mapping) -> None:
    found = observation(to_fhir, obx(f7="70-99", f8="H", f11="C", f14="20250310070000"),
                        "NTE|1|L|Fasting specimen.")
    assert found["referenceRange"] == [{
        "low": {"value": 70, "unit": "mg/dL", "system": UCUM, "code": "mg/dL"},
        "high": {"value": 99, "unit": "mg/dL", "system": UCUM, "code": "mg/dL"},
        "text": "70-99"}]
    assert found["interpretation"][0]["coding"][0]["code"] == "H"
    assert found["status"] == "corrected"
    assert found["effectiveDateTime"] == "2025-03-10T07:00:00-06:00"
    assert found["issued"] == "2025-03-10T09:00:00-06:00"
    assert found["note"] == [{"text": "Fasting specimen."}]
    assert found["category"][0]["coding"][0]["code"] == "laboratory"


def test_performers_device_method_and_site_are_resources(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, message(obr(), obx(
        f16="RN44^OYELOWO^FUNMI", f17="0031^Glucose meter^L", f18="GM-7712^ACCUCHEK",
        f20="29707007^Toe^SCT", f23="CORE LAB^^^^^CLIA&2.16.840.1.113883.4.7&ISO^XX^^^46D0098",
        f24="12 QUARRY RD^^BOULDER^CO^80301", f25="8812^STEELE^MARGO^^^DR^MD")))
    found = of_type(bundle, "Observation")[0]
    by_ref = {f"urn:uuid:{e['resource']['id']}": e["resource"] for e in bundle["entry"]}
    performers = [by_ref[p["reference"]] for p in found["performer"]]
    assert [p["resourceType"] for p in performers] == [
        "PractitionerRole", "PractitionerRole", "Organization"]  # each person at the lab
    lab = performers[2]
    assert [(by_ref[p["practitioner"]["reference"]]["name"][0]["family"],
             p["code"][0]["coding"][0]["code"], p["organization"]) for p in performers[:2]] \
        == [("OYELOWO", "RO", found["performer"][2]), ("STEELE", "MDIR", found["performer"][2])]
    assert lab["identifier"] == [{"system": "urn:oid:2.16.840.1.113883.4.7",
                                  "value": "46D0098"}]
    assert lab["address"][0]["city"] == "BOULDER"
    assert by_ref[found["device"]["reference"]]["identifier"][0]["value"] == "GM-7712"
    assert found["method"]["coding"][0]["code"] == "0031"
    assert found["bodySite"]["coding"][0]["code"] == "29707007"


def test_vital_signs_are_categorised_as_such(to_fhir: Mapping) -> None:
    found = observation(to_fhir, obx(f3="8867-4^Heart rate^LN", f5="72", f6="/min"))
    assert found["category"] == [{"coding": [{"system": CATEGORY, "code": "vital-signs",
                                              "display": "Vital Signs"}]}]


def test_report_facts_land_on_the_diagnostic_report(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, message(
        "ORC|RE|P1^EHR|L1^LIS||CM",
        obr(f8="20250310073000", f24="HM", f32="5512&MORROW&JUDITH&&&DR&MD"), obx()))
    report = of_type(bundle, "DiagnosticReport")[0]
    request = of_type(bundle, "ServiceRequest")[0]
    assert report["basedOn"] == [{"reference": f"urn:uuid:{request['id']}"}]
    assert report["effectivePeriod"] == {"start": "2025-03-10T07:15:00-06:00",
                                         "end": "2025-03-10T07:30:00-06:00"}
    assert report["issued"] == "2025-03-10T09:00:00-06:00"
    assert [c["coding"][0]["code"] for c in report["category"]] == ["LAB", "HM"]
    interpreter = of_type(bundle, "Practitioner")[0]
    assert report["resultsInterpreter"] == [{"reference": f"urn:uuid:{interpreter['id']}"}]
    assert interpreter["name"][0]["family"] == "MORROW"


def test_susceptibilities_are_members_of_their_isolate(to_fhir: Mapping) -> None:
    raw = FIXTURES.input("micro_culture_sensitivities")
    bundle = bundle_of(to_fhir, raw)
    isolate = next(o for o in of_type(bundle, "Observation")
                   if o["code"]["coding"][0]["code"] == "630-4")
    assert len(isolate["hasMember"]) == 5


# ---- patients ------------------------------------------------------------------------------


def test_each_patient_of_a_batch_gets_only_their_results(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, FIXTURES.input("two_patients_one_message"))
    patients = of_type(bundle, "Patient")
    assert [p["name"][0]["given"][0] for p in patients] == ["CARMEN", "MATEO"]
    subjects = [o["subject"]["reference"] for o in of_type(bundle, "Observation")]
    assert subjects == [f"urn:uuid:{p['id']}" for p in patients]


# ---- leniency -----------------------------------------------------------------------------


def test_a_number_that_is_not_a_number_stays_text_with_a_warning(to_fhir: Mapping) -> None:
    raw = message(obr(), obx(f5="see note"), obx(f1="2", f5="5.5"))
    assert warnings_of(to_fhir, raw) == ["OBX-5: is not a number; kept as text"]
    values = [o.get("valueString") or o["valueQuantity"]["value"]
              for o in of_type(bundle_of(to_fhir, raw), "Observation")]
    assert values == ["see note", 5.5]


def test_a_repeated_number_keeps_the_first_and_says_the_rest_was_not_read(
        to_fhir: Mapping) -> None:
    """A value of one number sent twice (140~141): the first is the value, and the
    warning says the others were left, rather than the 141 vanishing unremarked."""
    raw = message(obr(), obx(f5="140~141"))
    assert warnings_of(to_fhir, raw) == [
        "OBX-5: repeats, and a value of type NM holds one: only the first of its 2 is read"]
    [found] = of_type(bundle_of(to_fhir, raw), "Observation")
    assert found["valueQuantity"]["value"] == 140
    assert not warnings_of(to_fhir, message(obr(), obx(f2="CWE", f5="A^Pos~B^Neg")))


def test_a_bad_time_zone_is_read_without_it(to_fhir: Mapping) -> None:
    raw = message(obr(), obx(), obx(f1="2", f14="20250310070000+2500"))
    assert warnings_of(to_fhir, raw) == [
        "OBX[2]-14: holds a time zone offset that does not exist; read without it"]
    second = of_type(bundle_of(to_fhir, raw), "Observation")[1]
    assert second["effectiveDateTime"] == "2025-03-10T07:00:00-06:00"


def test_a_code_without_a_system_is_the_senders_own(to_fhir: Mapping) -> None:
    found = observation(to_fhir, obx(f3="GLU^Glucose"))
    assert found["code"]["coding"][0]["system"].startswith("urn:conduit:code:LAKESIDE_LAB")
    assert not warnings_of(to_fhir, message(obr(), obx(f3="GLU^Glucose")))


def test_empty_required_looking_fields_are_warnings_not_failures(to_fhir: Mapping) -> None:
    raw = message(obr(f2="", f3="", f4="", f25="Q"), obx(), obx(f1="2", f3=""))
    assert sorted(warnings_of(to_fhir, raw)) == [
        "OBR-25: is not a result status of table 0123; the report's status is unknown",
        "OBR-2: has no placer or filler order number (nor ORC-3, OBR-2, OBR-3), so the order "
        "is identified by the message control id",
        "OBR-3: has no filler or placer order number (nor ORC-3/ORC-2), so the report is "
        "identified by the message control id",
        "OBR-4: is empty, so the report's test is not named",
        "OBX[2]-3: is empty, so the result has no test code",
    ]
    bundle = bundle_of(to_fhir, raw)
    assert len(of_type(bundle, "Observation")) == 1
    assert of_type(bundle, "DiagnosticReport")[0]["status"] == "unknown"


def test_warnings_hold_no_values_from_the_message(to_fhir: Mapping) -> None:
    raw = FIXTURES.input("messy_bad_values")
    found = warnings_of(to_fhir, raw)
    assert found
    for value in ("see note", "+2500", "20250231", "not-base64", "ROURKE", "Q"):
        assert not [w for w in found if value in w.split(": ", 1)[1]], value


def test_only_a_message_with_nothing_to_map_fails(to_fhir: Mapping) -> None:
    with pytest.raises(MappingError) as no_patient:
        run(to_fhir, message(pid=None))
    assert no_patient.value.field == "PID-3"
    no_result = bundle_of(to_fhir, message("PV1|1|O"))  # the patient and visit still map
    assert of_type(no_result, "Patient") and of_type(no_result, "Encounter")
    assert not of_type(no_result, "DiagnosticReport")
    assert any(w.startswith("OBR: the message has no OBR or OBX")
               for w in warnings_of(to_fhir, message("PV1|1|O")))


def test_obx_without_an_obr_are_still_observations(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, message(obx(), obx(f1="2", f3="2951-2^Sodium^LN", f5="140")))
    assert len(of_type(bundle, "Observation")) == 2
    assert not of_type(bundle, "DiagnosticReport")


def test_another_message_type_fails_naming_msh9(to_fhir: Mapping) -> None:
    with pytest.raises(MappingError) as caught:
        run(to_fhir, message(msh9="ADT^A01"))
    assert caught.value.field == "MSH-9"


# ---- results.observations: the entry point other message builders call ---------------------


def _built(*segments: str):
    """A lenient ADT Build with its Patient and Encounter, as the ADT builder makes them."""
    from engine.formats.hl7v2 import Hl7Message
    from engine.formats.hl7v2.reads import tracked
    from engine.maplib.v2_to_fhir import people, visit
    from engine.maplib.v2_to_fhir.frame import Build

    head = "MSH|^~\\&|EPIC|LAKESIDE|EHR|LAKESIDE|20250310090500-0600||ADT^A08|A8|P|2.5.1"
    raw = "\r".join([head, PID, "PV1|1|I|4W^1^2||||||||||||||||V-1^^^LAKESIDE^VN",
                     *segments])
    b = Build(tracked(Hl7Message.parse(raw)), "ADT")
    people.patient(b)
    visit.encounter(b)
    return b


def test_observations_outside_a_report_are_keyed_on_the_patient_and_kept_in_the_build() -> None:
    from engine.leniency import lenient
    from engine.maplib.v2_to_fhir import results

    segments = (obx(f3="8302-2^Body height^LN", f5="170", f6="cm", f14="20250310080000"),
                "NTE|1||Measured standing.", obx(f1="2", f3="29463-7^Body weight^LN",
                                                  f5="heavy", f6="kg"))
    with lenient() as notes:
        b = _built(*segments)
        request = {"resourceType": "ServiceRequest", "id": "sr-1"}
        made = results.observations(b, b.message.all("OBX"), based_on=[request])
    assert [str(n) for n in notes.warnings] == ["OBX[2]-5: is not a number; kept as text"]
    assert [o["resourceType"] for o in made] == ["Observation", "Observation"]
    assert all(o in b.resources("Observation") for o in made)
    height, weight = made
    assert height["subject"] == b.patient_ref() and height["encounter"] == b.encounter_ref()
    assert height["basedOn"] == [{"reference": "urn:uuid:sr-1"}]
    assert height["category"][0]["coding"][0]["code"] == "vital-signs"
    assert height["note"] == [{"text": "Measured standing."}]
    assert weight["valueString"] == "heavy"
    with lenient():
        again = _built(*segments)
        assert [o["id"] for o in results.observations(again, again.message.all("OBX"))] == [
            o["id"] for o in made]


def test_notes_say_who_entered_them_and_when(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, message(obr(), obx(), "NTE|1|L|Hemolyzed.||77^SMITH^ANN|"
                                                      "20250310083000"))
    note = of_type(bundle, "Observation")[0]["note"]
    author = of_type(bundle, "Practitioner")[0]
    assert note == [{"text": "Hemolyzed.", "authorReference": {
        "reference": f"urn:uuid:{author['id']}"}, "time": "2025-03-10T08:30:00-06:00"}]


def test_a_pending_result_without_value_is_temporarily_unknown(to_fhir: Mapping) -> None:
    found = observation(to_fhir, obx(f5="", f11="I"))
    assert found["status"] == "registered"
    assert found["dataAbsentReason"]["coding"][0]["code"] == "temp-unknown"


@pytest.mark.parametrize(("unit", "quantity"), [
    ("mmHg", {"unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}),
    ("K/uL^thousand per microliter", {"unit": "thousand per microliter", "system": UCUM,
                                       "code": "10*3/uL"}),
    ("^mg/dL", {"unit": "mg/dL", "system": UCUM, "code": "mg/dL"}),
    ("lbs", {"unit": "lbs", "system": UCUM, "code": "[lb_av]"}),
    ("cells/hpf", {"unit": "cells/hpf"}),
])
def test_common_unit_spellings_get_their_ucum_code(to_fhir: Mapping, unit: str,
                                                   quantity: dict) -> None:
    found = observation(to_fhir, obx(f5="7", f6=unit))
    assert found["valueQuantity"] == {"value": 7, **quantity}


def test_an_impression_is_the_reports_conclusion(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, FIXTURES.input("radiology_report_text"))
    report = of_type(bundle, "DiagnosticReport")[0]
    assert report["conclusion"] == "IMPRESSION: No acute cardiopulmonary process."


def test_a_repeated_coded_answer_loses_none(to_fhir: Mapping) -> None:
    found = observation(to_fhir, obx(f2="CWE", f5="112283007^Escherichia coli^SCT~"
                                                  "3092008^Staphylococcus aureus^SCT"))
    assert found["valueCodeableConcept"]["coding"][0]["code"] == "112283007"
    assert found["note"] == [{"text": "Also reported: Staphylococcus aureus (3092008)"}]


@pytest.mark.parametrize(("flag", "interpretation"), [
    ("H", {"coding": [{"system": V3, "code": "H", "display": "High"}]}),
    ("HIGH", {"coding": [{"system": V3, "code": "H", "display": "High"}], "text": "HIGH"}),
    ("Not Detected", {"coding": [{"system": V3, "code": "ND", "display": "Not detected"}],
                      "text": "Not Detected"}),
    ("ZZ", {"text": "ZZ"}),
])
def test_abnormal_flags_are_v3_interpretations(to_fhir: Mapping, flag: str,
                                               interpretation: dict) -> None:
    assert observation(to_fhir, obx(f8=flag))["interpretation"] == [interpretation]


def test_a_section_table_0074_does_not_know_is_still_a_lab_report(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, message(obr(f24="CHEMISTRY"), obx()))
    assert only(bundle, "Observation")["category"][0]["coding"][0]["code"] == "laboratory"
    report = only(bundle, "DiagnosticReport")
    assert report["category"] == [{"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB",
        "display": "Laboratory"}]}, {"text": "CHEMISTRY"}]


def test_bedside_charting_that_is_not_a_vital_sign_is_an_exam(to_fhir: Mapping) -> None:
    """A vital-signs category would hold a pain score to the vital signs profile, whose
    LOINC codes it cannot meet."""
    bundle = bundle_of(to_fhir, message(
        obr(f24="NRS"), obx(f3="72514-3^Pain severity^LN", f5="6", f6="{score}"),
        obx(f1="2", f3="8867-4^Heart rate^LN", f5="72", f6="/min")))
    codes = [o["category"][0]["coding"][0]["code"] for o in of_type(bundle, "Observation")]
    assert codes == ["exam", "vital-signs"]


def test_the_labs_medical_director_acts_there(to_fhir: Mapping) -> None:
    """OBX-25 with the OBX-23 performing lab: the director's PractitionerRole at the lab
    (as the reference converter makes one), beside the lab itself."""
    bundle = bundle_of(to_fhir, message(obr(), obx(
        f23="ACME LAB^L^^^^CLIA&2.16.840.1.113883.4.7&ISO^XX^^^05D0000001",
        f25="1234567890^HOUSE^GREG^^^DR^MD^^^^^^NPI")))
    found = only(bundle, "Observation")
    role = only(bundle, "PractitionerRole")
    assert found["performer"] == [{"reference": f"urn:uuid:{role['id']}"},
                                  role["organization"]]
    assert role["code"][0]["coding"][0]["code"] == "MDIR"
    lab = next(o for o in of_type(bundle, "Organization")
               if f"urn:uuid:{o['id']}" == role["organization"]["reference"])
    assert lab["name"] == "ACME LAB"


def test_a_report_issued_without_a_zone_takes_the_engines_with_a_warning(to_fhir: Mapping
                                                                         ) -> None:
    """US Core requires a final lab report's issued instant; OBR-22 and MSH-7 without a
    zone are read in the engine's zone (as Provenance.recorded is), and the warning says
    so; a sent zone is kept as it is."""
    head = "MSH|^~\\&|LIS|LAKESIDE_LAB|EHR|LAKESIDE|20250310090500||ORU^R01|C1|P|2.3"
    raw = ("\r".join([head, PID, obr(), obx()]) + "\r").encode()
    issued = only(bundle_of(to_fhir, raw), "DiagnosticReport")["issued"]
    offset = issued[19:]
    assert issued.startswith("2025-03-10T09:00:00") and offset[0] in "+-"
    assert f"OBR-22: has no time zone; DiagnosticReport.issued assumes the engine's zone, " \
        f"UTC{offset}" in warnings_of(to_fhir, raw)
    zoned = only(bundle_of(to_fhir, message()), "DiagnosticReport")["issued"]
    assert zoned == "2025-03-10T09:00:00-06:00"
