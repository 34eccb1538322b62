"""hl7v2-siu-to-fhir@1: every fixture, valid FHIR, stable ids, and errors without PHI."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from engine.mapping import Mapping, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, by_type, run, segment

FIXTURES = checks.Fixtures("hl7v2-siu-to-fhir@1")
V2_0276 = "http://terminology.hl7.org/CodeSystem/v2-0276"
V2_0277 = "http://terminology.hl7.org/CodeSystem/v2-0277"
INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?[+-]\d{2}:\d{2}\Z")

siu = checks.mapping_fixture(FIXTURES.ref)


BASE_SCH = {
    1: "PL-100^EHR",
    2: "FL-100^PM",
    6: "^Annual review",
    9: "30",
    10: "min",
    11: "^^30^20240601093000^20240601100000",
    25: "Booked",
}
PID = "PID|1||MG001234^^^MERCY^MR||ROWE^TAMSIN^^^^^L||19900101|F|||12 ELM ST^^SALEM^MA^01970"


def siu_message(
    event: str = "S12",
    *extra: str,
    sch: dict[int, str | None] | None = None,
    facility: str = "MERCY_GEN",
    msh7: str = "20240520120000-0500",
    message_type: str | None = None,
    pid: str | None = PID,
) -> bytes:
    """An SIU with SCH (BASE_SCH updated by `sch`; None removes a field), PID and extra
    segments after them."""
    fields = {k: v for k, v in {**BASE_SCH, **(sch or {})}.items() if v is not None}
    kind = message_type or f"SIU^{event}^SIU_S12"
    msh = f"MSH|^~\\&|PM|{facility}|HIE|HIE|{msh7}||{kind}|C{event}|P|2.5.1"
    lines = [msh, segment("SCH", fields)]
    if pid is not None:
        lines.append(pid)
    return ("\r".join([*lines, *extra]) + "\r").encode()


def appointment(mapping: Mapping, raw: bytes) -> dict:
    return by_type(bundle_of(mapping, raw))["Appointment"]


# ---- fixtures ---------------------------------------------------------------------------


def _check_output(bundle: dict) -> None:
    checks.check_transaction(bundle)
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Patient", "Appointment"]
    _assert_r4_timing_invariants(by_type(bundle)["Appointment"])


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=6, output=_check_output)


def test_fixtures_cover_the_events_and_styles() -> None:
    raw = {case: FIXTURES.input(case) for case in FIXTURES.cases}
    for event in (b"S12", b"S13", b"S14", b"S15"):
        assert any(b"SIU^" + event in r for r in raw.values()), event
    assert any(b"\n" in r and b"\r" not in r for r in raw.values()), "a \\n-only fixture"
    assert any(b"\r\n" in r for r in raw.values()), "a \\r\\n fixture"
    assert any(b"\\F\\" in r and b"\rNTE|" in r.replace(b"\n", b"\r") for r in raw.values())


def _assert_r4_timing_invariants(appt: dict) -> None:
    """app-2 (start and end together) and app-3 (only proposed, cancelled or waitlist
    appointments may lack them), which the models do not check."""
    assert ("start" in appt) == ("end" in appt)
    if "start" not in appt:
        assert appt["status"] in ("proposed", "cancelled", "waitlist")
    else:
        assert INSTANT.match(appt["start"]) and INSTANT.match(appt["end"])
        assert datetime.fromisoformat(appt["start"]) <= datetime.fromisoformat(appt["end"])


def test_patient_is_the_one_the_adt_feed_makes(siu: Mapping) -> None:
    msh = "MSH|^~\\&|ADT|MERCY_GEN|HIE|HIE|20240520120000-0500||ADT^A08|A1|P|2.5.1"
    adt_raw = "\r".join([msh, "EVN|A08", PID, "PV1|1|O"]).encode() + b"\r"
    patient = by_type(bundle_of(siu, siu_message()))["Patient"]
    checks.check_same_patient(patient, adt_raw, whole=True)


def test_every_event_about_one_appointment_updates_the_same_resource(siu: Mapping) -> None:
    ids = {
        appointment(siu, siu_message(event, sch={6: None}))["id"]
        for event in ("S12", "S13", "S14", "S15", "S17", "S26")
    }
    assert len(ids) == 1


def test_id_from_filler_else_placer_within_the_facility(siu: Mapping) -> None:
    filler = appointment(siu, siu_message())
    other_placer = appointment(siu, siu_message(sch={1: "PL-999^EHR"}))
    placer_only = appointment(siu, siu_message(sch={2: None}))
    elsewhere = appointment(siu, siu_message(facility="MERCY_NORTH"))
    assert filler["id"] == other_placer["id"]
    assert len({filler["id"], placer_only["id"], elsewhere["id"]}) == 3
    assert [i["type"]["coding"][0]["code"] for i in filler["identifier"]] == ["FILL", "PLAC"]
    assert [i["type"]["coding"][0]["code"] for i in placer_only["identifier"]] == ["PLAC"]


# ---- events and status ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "sch25", "status"),
    [
        ("S12", "Booked", "booked"),
        ("S12", "", "booked"),
        ("S13", "Booked", "booked"),
        ("S14", "", "booked"),
        ("S14", "Started", "checked-in"),
        ("S14", "Complete^Complete^HL70278", "fulfilled"),
        ("S12", "Pending", "pending"),
        ("S12", "Overbook", "booked"),
        ("S14", "NOSHOW", "noshow"),
        ("S15", "Cancelled", "cancelled"),
        ("S15", "Booked", "cancelled"),
        ("S17", "", "entered-in-error"),
        ("S26", "Booked", "noshow"),
    ],
)
def test_status_from_event_and_filler_status(
    siu: Mapping, event: str, sch25: str, status: str
) -> None:
    assert appointment(siu, siu_message(event, sch={25: sch25}))["status"] == status


@pytest.mark.parametrize("event", ["S16", "S18", "S23"])
def test_unmapped_siu_events_are_skipped(siu: Mapping, event: str) -> None:
    assert run(siu, siu_message(event)) == Skip(f"SIU^{event} is not mapped by this version")


def test_non_siu_message_fails_naming_msh9(siu: Mapping) -> None:
    checks.check_error(siu, siu_message(message_type="SRM^S01"), "MSH-9")


# ---- timing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sch", "extra", "timing"),
    [
        ({}, [], ("2024-06-01T09:30:00-05:00", "2024-06-01T10:00:00-05:00", 30)),
        ({9: None, 10: None, 11: "^^H1^202406010930-0400"}, [],
         ("2024-06-01T09:30:00-04:00", "2024-06-01T10:30:00-04:00", 60)),
        ({9: "2", 10: "HR^hours", 11: "^^^20240601093000"}, [],
         ("2024-06-01T09:30:00-05:00", "2024-06-01T11:30:00-05:00", 120)),
        ({9: "90", 10: "S", 11: "^^^20240601093000"}, [],
         ("2024-06-01T09:30:00-05:00", "2024-06-01T09:31:30-05:00", None)),
        ({9: None, 10: None, 11: None},
         ["TQ1|1|||||45^min&minutes&UCUM|20240601080000-0700"],
         ("2024-06-01T08:00:00-07:00", "2024-06-01T08:45:00-07:00", 45)),
        ({9: None, 10: None, 11: None}, ["RGS|1", "AIS|1||X^Visit|20240601141500|||20|"],
         ("2024-06-01T14:15:00-05:00", "2024-06-01T14:35:00-05:00", 20)),
        ({9: None, 10: None, 11: None}, ["RGS|1", "AIL|1||CLINIC^5|||20240601141500|||15|MIN"],
         ("2024-06-01T14:15:00-05:00", "2024-06-01T14:30:00-05:00", 15)),
    ],
)
def test_start_end_and_minutes(
    siu: Mapping, sch: dict, extra: list[str], timing: tuple[str, str, int | None]
) -> None:
    found = appointment(siu, siu_message("S12", *extra, sch=sch))
    assert (found["start"], found["end"], found.get("minutesDuration")) == timing


def test_a_removed_service_gives_no_timing(siu: Mapping) -> None:
    extra = [
        "RGS|1",
        "AIS|1|D|X^Visit|20240601141500|||20|",
        "AIS|2|A|Y^Visit|20240601150000|||40|",
    ]
    found = appointment(siu, siu_message("S14", *extra, sch={9: None, 10: None, 11: None}))
    assert (found["start"], found["minutesDuration"]) == ("2024-06-01T15:00:00-05:00", 40)
    assert [s["coding"][0]["code"] for s in found["serviceType"]] == ["Y"]


def test_cancelled_appointment_may_be_untimed(siu: Mapping) -> None:
    found = appointment(siu, siu_message("S15", sch={9: None, 10: None, 11: None}))
    assert "start" not in found and "end" not in found


@pytest.mark.parametrize(
    ("event", "sch", "field"),
    [
        ("S12", {9: None, 10: None, 11: None}, "SCH-11"),
        ("S26", {9: None, 10: None, 11: None}, "SCH-11"),
        ("S12", {9: None, 10: None, 11: "^^^20240601093000"}, "SCH-11"),
        ("S12", {11: "^^^20240601093000^20240601090000"}, "SCH-11"),
        ("S12", {9: "thirty", 11: "^^^20240601093000"}, "SCH-9"),
        ("S12", {10: "FORTNIGHT", 11: "^^^20240601093000"}, "SCH-10"),
        ("S12", {11: "^^Q30^20240601093000"}, "SCH-11"),
        ("S12", {11: "^^30^20240631093000^20240631100000"}, "SCH-11"),
        ("S12", {2: None, 1: None}, "SCH-2"),
    ],
)
def test_timing_and_identity_errors_name_the_field_and_no_value(
    siu: Mapping, event: str, sch: dict, field: str
) -> None:
    phi = ("ROWE", "TAMSIN", "MG001234", "19900101", "ELM", "SALEM", "thirty", "FORTNIGHT", "2024")
    checks.check_error(siu, siu_message(event, sch=sch), field, phi=phi)


def test_time_without_any_zone_fails(siu: Mapping) -> None:
    checks.check_error(siu, siu_message(msh7="20240520120000"), "SCH-11")


def test_missing_sch_and_pid_fail_naming_fields(siu: Mapping) -> None:
    raw = siu_message(pid=None)
    checks.check_error(siu, raw, "PID-3")
    no_sch = b"\r".join(line for line in raw.split(b"\r") if not line.startswith(b"SCH"))
    checks.check_error(siu, no_sch, "SCH-2")


# ---- what the appointment is --------------------------------------------------------------


def test_event_reason_is_the_booking_reason_or_the_cancellation_reason(siu: Mapping) -> None:
    booked = appointment(siu, siu_message("S12"))
    moved = appointment(siu, siu_message("S13"))
    cancelled = appointment(siu, siu_message("S15", sch={6: "PT^Patient cancelled^LOCALRSN"}))
    assert booked["reasonCode"] == [{"text": "Annual review"}]
    assert "reasonCode" not in moved and "cancelationReason" not in moved
    assert cancelled["cancelationReason"]["coding"][0] == {
        "system": "urn:conduit:code:MERCY_GEN:LOCALRSN",
        "code": "PT",
        "display": "Patient cancelled",
    }
    assert "reasonCode" not in cancelled


@pytest.mark.parametrize(
    ("sch7", "sch8", "coding"),
    [
        ("WALKIN", "", (V2_0276, "WALKIN")),
        ("routine^Routine^HL70276", "", (V2_0276, "ROUTINE")),
        ("NP^New patient^VISITTYPE", "Normal", ("urn:conduit:code:MERCY_GEN:VISITTYPE", "NP")),
        ("", "TENTATIVE", (V2_0277, "Tentative")),
    ],
)
def test_appointment_type(siu: Mapping, sch7: str, sch8: str, coding: tuple[str, str]) -> None:
    found = appointment(siu, siu_message(sch={7: sch7, 8: sch8}))
    first = found["appointmentType"]["coding"][0]
    assert (first["system"], first["code"]) == coding


def test_notes_by_comment_type(siu: Mapping) -> None:
    notes = [
        "NTE|1||Fasting from midnight~Bring your meter|PI",
        "NTE|2||Chest pain on exertion|1R",
        "NTE|3||Call pt day before",
        "NTE|4||Wheelchair \\T\\ escort|RE",
    ]
    found = appointment(siu, siu_message("S12", *notes))
    assert found["patientInstruction"] == "Fasting from midnight\nBring your meter"
    assert found["description"] == "Chest pain on exertion"
    assert found["comment"] == "Call pt day before\nWheelchair & escort"


def test_participants_leave_out_removed_by_type(siu: Mapping) -> None:
    extra = [
        "RGS|1",
        "AIG|1|A|MRI-1^MRI scanner 1|EQUIP^Equipment",
        "AIL|1|A|RAD^MR2^^MERCY^^^^^Radiology",
        "AIP|1|D|11^OLDDOC^ANN^^^^MD|ATT^Attending",
        "AIP|2|A|12^NEWDOC^BEN^^^^MD|ATT^Attending",
        "AIP|3|A||TECH^Technologist",
    ]
    found = appointment(siu, siu_message("S14", *extra))
    people = found["participant"]
    assert people[0]["actor"]["reference"].startswith("urn:uuid:")
    assert [p.get("actor", {}).get("display") for p in people[1:]] == [
        "MRI scanner 1",
        "Radiology (RAD / MR2)",
        "BEN NEWDOC, MD",
        None,
    ]
    assert people[-1]["type"][0]["coding"][0]["code"] == "TECH"
    assert {p["status"] for p in people} == {"accepted"}
