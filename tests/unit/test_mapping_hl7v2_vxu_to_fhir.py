"""hl7v2-vxu-to-fhir@1: every fixture, valid FHIR, stable ids, and errors without PHI."""

from __future__ import annotations

import pytest

from engine.mapping import Mapping, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, run, segment

FIXTURES = checks.Fixtures("hl7v2-vxu-to-fhir@1")

CVX = "http://hl7.org/fhir/sid/cvx"
V2_0162 = "http://terminology.hl7.org/CodeSystem/v2-0162"
V2_0163 = "http://terminology.hl7.org/CodeSystem/v2-0163"
UCUM = "http://unitsofmeasure.org"

vxu = checks.mapping_fixture(FIXTURES.ref)


def immunizations(bundle: dict) -> list[dict]:
    return checks.of_type(bundle, "Immunization")


def only_immunization(mapping: Mapping, raw: bytes) -> dict:
    found = immunizations(bundle_of(mapping, raw))
    assert len(found) == 1, found
    return found[0]


def patient_of(bundle: dict) -> dict:
    return bundle["entry"][0]["resource"]


BASE_RXA = {
    1: "0",
    2: "1",
    3: "20240601103000",
    5: "141^Influenza, seasonal, injectable^CVX",
    6: "0.5",
    7: "mL^milliliters^UCUM",
    9: "00^New immunization record^NIP001",
    15: "FL2291",
    17: "SKB^GlaxoSmithKline^MVX",
    20: "CP",
    21: "A",
}
PID = "PID|1||MG001234^^^MERCY^MR||ROWE^TAMSIN^^^^^L||19900101|F|||12 ELM ST^^SALEM^MA^01970"


def vxu_message(
    *groups: str,
    facility: str = "MERCY_GEN",
    msh7: str = "20240601120000-0500",
    message_type: str = "VXU^V04^VXU_V04",
    pid: str = PID,
    control_id: str = "CTRL0001",
) -> bytes:
    """A VXU with the given order groups (each one or more segments joined by \\r)."""
    msh = f"MSH|^~\\&|EHR|{facility}|IIS|STATE|{msh7}||{message_type}|{control_id}|P|2.5.1"
    return ("\r".join([msh, pid, *groups]) + "\r").encode()


def dose(orc3: str | None = "IMM-1^EHR", rxr: str | None = None, **fields: str) -> str:
    """An ORC (unless orc3 is None) + RXA group; RXA fields by name rxa<N>."""
    rxa = dict(BASE_RXA)
    rxa.update({int(k.removeprefix("rxa")): v for k, v in fields.items()})
    lines = [f"ORC|RE||{orc3}"] if orc3 is not None else []
    lines.append(segment("RXA", rxa))
    if rxr is not None:
        lines.append(rxr)
    return "\r".join(lines)


# ---- fixtures ---------------------------------------------------------------------------


def _check_output(bundle: dict) -> None:
    checks.check_transaction(bundle)
    assert bundle["entry"][0]["resource"]["resourceType"] == "Patient"


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=6, output=_check_output)


def test_fixtures_cover_the_vendor_styles() -> None:
    raw = {case: FIXTURES.input(case) for case in FIXTURES.cases}
    assert any(b"\n" in r and b"\r" not in r for r in raw.values()), "a \\n-only fixture"
    assert any(b"\r\n" in r for r in raw.values()), "a \\r\\n fixture"
    assert any(not r.startswith(b"MSH|^~\\&") for r in raw.values()), "custom delimiters"
    assert any(b"\rZ" in r for r in raw.values()), "a Z-segment"
    assert any(b"|2.3.1|" in r for r in raw.values()), "a v2.3.1 message"


def test_patient_is_the_one_the_adt_feed_makes(vxu: Mapping) -> None:
    from_vxu = patient_of(bundle_of(vxu, vxu_message(dose())))
    msh = "MSH|^~\\&|ADT|MERCY_GEN|HIE|HIE|20240601120000-0500||ADT^A08|A1|P|2.5.1"
    raw = "\r".join([msh, "EVN|A08", PID, "PV1|1|O"]).encode() + b"\r"
    checks.check_same_patient(from_vxu, raw, whole=True)


def test_epic_fixture_patient_matches_adt_for_the_same_pid(vxu: Mapping) -> None:
    raw = FIXTURES.input("epic_v251_cdc_ig")
    lines = raw.split(b"\r")
    msh = lines[0].replace(b"VXU^V04^VXU_V04", b"ADT^A28^ADT_A05")
    pid = next(line for line in lines if line.startswith(b"PID|"))
    adt_raw = b"\r".join([msh, b"EVN|A28", pid]) + b"\r"
    checks.check_same_patient(patient_of(bundle_of(vxu, raw)), adt_raw)


def test_delete_lands_on_the_dose_it_deletes(vxu: Mapping) -> None:
    given = immunizations(bundle_of(vxu, FIXTURES.input("epic_v251_cdc_ig")))
    deleted = immunizations(bundle_of(vxu, FIXTURES.input("deleted_dose_rxa21_d")))
    assert [i["id"] for i in given] == [i["id"] for i in deleted]
    assert (given[0]["status"], deleted[0]["status"]) == ("completed", "entered-in-error")


def test_id_follows_the_filler_order_number_and_facility(vxu: Mapping) -> None:
    first = only_immunization(vxu, vxu_message(dose(orc3="IMM-1^EHR")))
    resent = vxu_message(dose(orc3="IMM-1^EHR", rxa6="0.25"), control_id="X")
    other = only_immunization(vxu, vxu_message(dose(orc3="IMM-2^EHR")))
    there = vxu_message(dose(orc3="IMM-1^EHR"), facility="MERCY_NORTH")
    resent, elsewhere = only_immunization(vxu, resent), only_immunization(vxu, there)
    assert first["id"] == resent["id"]
    assert len({first["id"], other["id"], elsewhere["id"]}) == 3


def test_placer_number_keys_the_dose_when_there_is_no_filler(vxu: Mapping) -> None:
    raw = vxu_message("ORC|RE|PL-77^EHR|\r" + segment("RXA", BASE_RXA))
    found = only_immunization(vxu, raw)
    assert [i["type"]["coding"][0]["code"] for i in found["identifier"]] == ["PLAC"]


@pytest.mark.parametrize("orc3", [None, "9999^CDC", "9999"])
def test_without_an_order_number_the_id_comes_from_the_dose(vxu: Mapping, orc3: str | None) -> None:
    flu = only_immunization(vxu, vxu_message(dose(orc3=orc3)))
    again = only_immunization(vxu, vxu_message(dose(orc3=orc3, rxa15="OTHERLOT"), control_id="Y"))
    covid = only_immunization(vxu, vxu_message(dose(orc3=orc3, rxa5="213^COVID-19^CVX")))
    assert flu["id"] == again["id"] != covid["id"]
    assert "identifier" not in flu


def test_two_placeholder_doses_in_one_message_do_not_collide(vxu: Mapping) -> None:
    raw = vxu_message(dose(orc3="9999^CDC"), dose(orc3="9999^CDC", rxa5="213^COVID-19^CVX"))
    assert len({i["id"] for i in immunizations(bundle_of(vxu, raw))}) == 2


def test_the_same_dose_twice_fails_naming_the_second_order_number(vxu: Mapping) -> None:
    raw = vxu_message(dose(orc3="IMM-1^EHR"), dose(orc3="IMM-1^EHR"))
    checks.check_error(vxu, raw, "ORC[2]-3", phi=["IMM-1"])


# ---- message and event ------------------------------------------------------------------


def test_non_vxu_message_fails_naming_msh9(vxu: Mapping) -> None:
    checks.check_error(vxu, vxu_message(dose(), message_type="ADT^A04"), "MSH-9")


def test_vxu_without_event_reads_as_v04(vxu: Mapping) -> None:
    assert immunizations(bundle_of(vxu, vxu_message(dose(), message_type="VXU")))


def test_other_vxu_events_are_skipped(vxu: Mapping) -> None:
    assert run(vxu, vxu_message(dose(), message_type="VXU^V99")) == Skip(
        "VXU^V99 is not mapped by this version"
    )


def test_vxu_without_doses_writes_the_patient_only(vxu: Mapping) -> None:
    bundle = bundle_of(vxu, vxu_message("ORC|RE||IMM-1^EHR"))
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Patient"]


def test_rxa_after_rxa_without_orc_are_separate_doses(vxu: Mapping) -> None:
    raw = vxu_message(dose(orc3=None), dose(orc3=None, rxa5="08^HepB^CVX"))
    codes = [i["vaccineCode"]["coding"][0]["code"] for i in immunizations(bundle_of(vxu, raw))]
    assert codes == ["141", "08"]


# ---- status -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rxa20", "rxa21", "status"),
    [
        ("CP", "A", "completed"),
        ("", "", "completed"),
        ("cp", "U", "completed"),
        ("RE", "A", "not-done"),
        ("NA", "A", "not-done"),
        ("PA", "A", "completed"),
        ("CP", "D", "entered-in-error"),
        ("RE", "D", "entered-in-error"),
    ],
)
def test_status_from_completion_status_and_action_code(
    vxu: Mapping, rxa20: str, rxa21: str, status: str
) -> None:
    found = only_immunization(vxu, vxu_message(dose(rxa20=rxa20, rxa21=rxa21)))
    assert found["status"] == status


def test_partial_dose_is_subpotent_with_a_note(vxu: Mapping) -> None:
    found = only_immunization(vxu, vxu_message(dose(rxa20="PA")))
    assert found["isSubpotent"] is True
    assert found["subpotentReason"][0]["coding"][0]["code"] == "partial"
    assert found["note"][0]["text"] == "Partially administered (RXA-20 PA)"


@pytest.mark.parametrize(
    ("reason", "act_code"),
    [("00^Parental decision^NIP002", "PATOBJ"), ("01^Religious exemption^NIP002", "RELIG"),
     ("03", "PATOBJ"), ("02^Other^NIP002", None)],
)
def test_refusal_reason_with_its_act_reason(
    vxu: Mapping, reason: str, act_code: str | None
) -> None:
    found = only_immunization(vxu, vxu_message(dose(rxa20="RE", rxa18=reason, rxa6="999")))
    codings = found["statusReason"]["coding"]
    assert codings[0]["system"] == "urn:conduit:code:NIP002"
    assert codings[0]["display"]
    assert [c["code"] for c in codings[1:]] == ([act_code] if act_code else [])
    assert "doseQuantity" not in found


def test_refusal_reason_is_only_for_doses_not_done(vxu: Mapping) -> None:
    found = only_immunization(vxu, vxu_message(dose(rxa20="CP", rxa18="00^Parental^NIP002")))
    assert "statusReason" not in found


def test_recorded_is_the_entry_time_of_an_add_only(vxu: Mapping) -> None:
    added = only_immunization(vxu, vxu_message(dose(rxa22="20240601104500")))
    updated = only_immunization(vxu, vxu_message(dose(rxa21="U", rxa22="20240602090000")))
    assert added["recorded"] == "2024-06-01T10:45:00-05:00"
    assert "recorded" not in updated


# ---- what lands in the Immunization -------------------------------------------------------


@pytest.mark.parametrize(
    ("rxa9", "primary", "origin_codes"),
    [
        ("00^New immunization record^NIP001", True, None),
        ("01^Historical information - source unspecified^NIP001", False, ["01"]),
        ("02", False, ["02", "provider"]),
        ("04^Historical information - from parent's recall^NIP001", False, ["04", "recall"]),
        ("07^Historical information - from school record^NIP001", False, ["07", "school"]),
        ("", None, None),
    ],
)
def test_information_source(
    vxu: Mapping, rxa9: str, primary: bool | None, origin_codes: list[str] | None
) -> None:
    found = only_immunization(vxu, vxu_message(dose(rxa9=rxa9)))
    assert found.get("primarySource") is primary
    codes = [c["code"] for c in found["reportOrigin"]["coding"]] if origin_codes else None
    assert codes == origin_codes
    if not origin_codes:
        assert "reportOrigin" not in found


def test_vaccine_code_systems(vxu: Mapping) -> None:
    code = "49281-0418-50^Fluzone^NDC^141^Influenza, seasonal^CVX"
    found = only_immunization(vxu, vxu_message(dose(rxa5=code)))
    assert [(c["system"], c["code"]) for c in found["vaccineCode"]["coding"]] == [
        ("http://hl7.org/fhir/sid/ndc", "49281-0418-50"),
        (CVX, "141"),
    ]


def test_vaccine_code_without_system_is_cvx_and_a_local_one_is_kept(vxu: Mapping) -> None:
    bare = only_immunization(vxu, vxu_message(dose(rxa5="08^HepB")))
    local = only_immunization(vxu, vxu_message(dose(rxa5="FLU-Q^Flu quad^99VAX")))
    assert bare["vaccineCode"]["coding"][0]["system"] == CVX
    assert local["vaccineCode"]["coding"][0]["system"] == "urn:conduit:code:MERCY_GEN:99VAX"


@pytest.mark.parametrize(
    ("amount", "units", "quantity"),
    [
        ("0.5", "mL^milliliters^UCUM",
         {"value": 0.5, "unit": "milliliters", "system": UCUM, "code": "mL"}),
        ("1", "ML", {"value": 1, "unit": "ML"}),
        ("999", "mL^milliliters^UCUM", None),
        ("", "", None),
    ],
)
def test_dose_quantity(vxu: Mapping, amount: str, units: str, quantity: dict | None) -> None:
    found = only_immunization(vxu, vxu_message(dose(rxa6=amount, rxa7=units)))
    assert found.get("doseQuantity") == quantity


def test_route_and_site_read_their_tables(vxu: Mapping) -> None:
    found = only_immunization(vxu, vxu_message(dose(rxr="RXR|SC^^HL70162|la")))
    route, site = found["route"]["coding"], found["site"]["coding"]
    assert route == [{"system": V2_0162, "code": "SC", "display": "Subcutaneous"}]
    assert site == [{"system": V2_0163, "code": "LA", "display": "Left Arm"}]


def test_manufacturer_is_a_logical_reference(vxu: Mapping) -> None:
    found = only_immunization(vxu, vxu_message(dose()))
    assert found["manufacturer"] == {
        "display": "GlaxoSmithKline",
        "identifier": {"system": "http://hl7.org/fhir/sid/mvx", "value": "SKB"},
    }


def test_performers_by_role(vxu: Mapping) -> None:
    raw = vxu_message(
        "ORC|RE||IMM-1^EHR|||||||||77^HALE^ORIN^^^DR^MD\r"
        + segment("RXA", {**BASE_RXA, 10: "12^VOSS^PRIYA^^^^RN~^^^^^^^^^^^^ID-ONLY"})
    )
    found = only_immunization(vxu, raw)
    roles = [(p["function"]["coding"][0]["code"], p["actor"]["display"])
             for p in found["performer"]]
    assert roles == [("AP", "PRIYA VOSS, RN"), ("OP", "DR ORIN HALE, MD")]


def test_vfc_eligibility_from_pv1_20_for_doses_given_here_only(vxu: Mapping) -> None:
    pv1 = segment("PV1", {2: "R", 20: "V02"})
    raw = vxu_message(pv1 + "\r" + dose(orc3="A^EHR"), dose(orc3="B^EHR", rxa9="01"))
    given, historical = immunizations(bundle_of(vxu, raw))
    assert given["programEligibility"][0]["coding"][0]["code"] == "V02"
    assert "programEligibility" not in historical


def test_times_without_zone_take_the_senders_zone(vxu: Mapping) -> None:
    found = only_immunization(vxu, vxu_message(dose(rxa3="202406011030")))
    assert found["occurrenceDateTime"] == "2024-06-01T10:30:00-05:00"
    no_zone = only_immunization(vxu, vxu_message(dose(rxa3="202406011030"), msh7="20240601120000"))
    assert no_zone["occurrenceDateTime"] == "2024-06-01"


# ---- errors name fields, never values ---------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "value"),
    [
        ({"rxa3": ""}, "RXA-3", None),
        ({"rxa3": "20241399"}, "RXA-3", "20241399"),
        ({"rxa5": ""}, "RXA-5", None),
        ({"rxa6": "half"}, "RXA-6", "half"),
        ({"rxa16": "2025-01-31"}, "RXA-16", "2025-01-31"),
        ({"rxa20": "ZZ"}, "RXA-20", "ZZ"),
        ({"rxa21": "X"}, "RXA-21", "X"),
    ],
)
def test_bad_values_fail_naming_their_field(
    vxu: Mapping, fields: dict[str, str], field: str, value: str | None
) -> None:
    phi = ("ROWE", "TAMSIN", "MG001234", "19900101", "ELM", "SALEM", "FL2291")
    checks.check_error(vxu, vxu_message(dose(**fields)), field, phi=phi, values=[value])


def test_errors_in_a_later_dose_name_its_rxa(vxu: Mapping) -> None:
    checks.check_error(
        vxu, vxu_message(dose(orc3="A^EHR"), dose(orc3="B^EHR", rxa5="")), "RXA[2]-5"
    )


def test_missing_pid_fails_naming_pid3(vxu: Mapping) -> None:
    checks.check_error(vxu, vxu_message(dose(), pid="PD1|||CLINIC"), "PID-3")
