"""hl7v2-siu-to-fhir@2: every fixture as valid R4, the facts where the reference puts
them, v1's ids kept, odd timing fields as located warnings (never a lost appointment,
never a half-timed booking), and warnings that hold no values from the message."""

from __future__ import annotations

from typing import Any

import pytest

from engine.errors import MappingError
from engine.maplib.v2_to_fhir import siu
from engine.mapping import Mapping, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, of_type, only, run, warnings_of

FIXTURES = checks.Fixtures("hl7v2-siu-to-fhir@2")
to_fhir = checks.mapping_fixture(FIXTURES.ref)
to_fhir_v1 = checks.mapping_fixture("hl7v2-siu-to-fhir@1")
CPT = "http://www.ama-assn.org/go/cpt"

HEAD = ("MSH|^~\\&|CADENCE|LAKESIDE|CONDUIT|HIE|20250301090000-0600||SIU^{event}^SIU_S12"
        "|C{event}|P|2.5.1")
PID = "PID|1||LK-5501^^^LAKESIDE^MR||QUILLAN^ROSA^^^^^L||19800202|F"


def sch(**fields: str) -> str:
    base = {1: "P-100^LAKESIDE", 2: "F-200^LAKESIDE", 11: "^^30^20250310090000"}
    base.update({int(k[1:]): v for k, v in fields.items()})
    return checks.segment("SCH", base)


def message(*segments: str, event: str = "S12", pid: str | None = PID) -> bytes:
    lines = [HEAD.format(event=event), segments[0], *([pid] if pid else []), *segments[1:]]
    return ("\r".join(lines) + "\r").encode()


def appointment(mapping: Mapping, raw: bytes) -> dict:
    return only(bundle_of(mapping, raw), "Appointment")


def app3_holds(appt: dict) -> bool:
    """R4 app-2 and app-3: start and end together, and only proposed, cancelled or
    waitlisted appointments without them."""
    both = "start" in appt and "end" in appt
    neither = "start" not in appt and "end" not in appt
    return both or (neither and appt["status"] in ("proposed", "cancelled", "waitlist"))


# ---- fixtures ---------------------------------------------------------------------------


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=14, min_outputs=14,
                                    output=checks.check_transaction)


@pytest.mark.parametrize("case", [c for c in FIXTURES.output_cases
                                  if b"SCH|" in FIXTURES.input(c)])  # no SCH: no Appointment
def test_every_fixture_appointment_obeys_app2_and_app3(to_fhir: Mapping, case: str) -> None:
    appt = appointment(to_fhir, FIXTURES.input(case))
    assert app3_holds(appt), f"{case}: {appt['status']} with start/end {appt.get('start')}"
    assert appt["participant"], "an Appointment needs a participant"


def test_declares_every_event_and_what_its_bundles_hold(to_fhir: Mapping) -> None:
    assert siu.EVENTS == ("S12", "S13", "S14", "S15", "S16", "S17", "S18", "S19", "S20",
                          "S21", "S22", "S23", "S24", "S26")
    made = {e["resource"]["resourceType"]
            for case in FIXTURES.output_cases
            for e in bundle_of(to_fhir, FIXTURES.input(case))["entry"]}
    assert {"Appointment", "Patient", "Practitioner", "Location", "Device",
            "ServiceRequest", "Encounter", "Condition"} <= made
    assert made <= set(siu.RESOURCES)


# ---- facts where the reference puts them ------------------------------------------------


def test_epic_booking_lands_its_facts(to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, FIXTURES.input("epic_cadence_s12_v251"))
    appt = of_type(bundle, "Appointment")[0]
    ids = {i["type"]["coding"][0]["code"]: i["value"] for i in appt["identifier"]}
    assert ids == {"FILL": "FL-99031877", "PLAC": "PL-774120"}
    assert appt["status"] == "booked" and appt["priority"] == 3
    assert (appt["start"], appt["end"], appt["minutesDuration"]) == (
        "2025-02-10T08:30:00-06:00", "2025-02-10T08:50:00-06:00", 20)
    assert appt["appointmentType"]["coding"][0]["code"] == "FOLLOWUP"
    assert appt["serviceType"][0]["coding"][0] == {
        "system": CPT, "code": "99214", "display": "Office visit est pt moderate"}
    assert appt["patientInstruction"] == "Arrive 15 minutes early"
    by_ref = {f"urn:uuid:{e['resource']['id']}": e["resource"] for e in bundle["entry"]}
    actors = [by_ref[p["actor"]["reference"]] for p in appt["participant"]]
    assert [a["resourceType"] for a in actors] == ["Patient", "Device", "Location",
                                                   "Practitioner"]
    assert actors[3]["identifier"][0]["value"] == "1457392081"
    assert appt["participant"][3]["type"][0]["coding"][0]["code"] == "ATT"
    service = by_ref[appt["basedOn"][0]["reference"]]
    assert service["resourceType"] == "ServiceRequest" and service["code"] == appt[
        "serviceType"][0]
    roles = [by_ref[r["reference"]] for r in appt["supportingInformation"]]
    assert [r["resourceType"] for r in roles] == ["PractitionerRole"] * 3
    contacts = [by_ref[r["practitioner"]["reference"]] for r in roles]
    assert [c["identifier"][0]["value"] for c in contacts] == ["8810", "8820", "8830"]
    assert roles[0]["telecom"] == [{"system": "phone", "value": "+1 (608) 555-0183",
                                    "use": "work"}]
    assert by_ref[roles[1]["location"][0]["reference"]]["name"] == "MFM"
    encounter = of_type(bundle, "Encounter")[0]
    assert encounter["appointment"] == [{"reference": f"urn:uuid:{appt['id']}"}]


def test_patient_is_the_adt_feeds_and_appointment_id_is_v1s(
        to_fhir: Mapping, to_fhir_v1: Mapping) -> None:
    raw = message(sch())
    bundle = bundle_of(to_fhir, raw)
    adt = ("\r".join([
        "MSH|^~\\&|CADENCE|LAKESIDE|CONDUIT|HIE|20250301090000-0600||ADT^A04|A1|P|2.5.1",
        "EVN|A04", PID]) + "\r").encode()
    checks.check_same_patient(of_type(bundle, "Patient")[0], adt)
    assert appointment(to_fhir, raw)["id"] == appointment(to_fhir_v1, raw)["id"]
    checks.check_deterministic(to_fhir, raw)


@pytest.mark.parametrize(("event", "status"), [
    ("S12", "booked"), ("S13", "booked"), ("S14", "booked"), ("S15", "cancelled"),
    ("S16", "cancelled"), ("S17", "entered-in-error"), ("S26", "noshow")])
def test_status_follows_the_event(to_fhir: Mapping, event: str, status: str) -> None:
    assert appointment(to_fhir, message(sch(), event=event))["status"] == status


@pytest.mark.parametrize(("filler", "status"), [
    ("Complete", "fulfilled"), ("Started", "checked-in"), ("Pending", "pending"),
    ("Waitlist", "waitlist"), ("", "booked")])
def test_sch25_refines_a_booking(to_fhir: Mapping, filler: str, status: str) -> None:
    appt = appointment(to_fhir, message(sch(f25=filler), event="S14"))
    assert appt["status"] == status


def test_tq1_times_and_priority_win_when_sch11_is_empty(to_fhir: Mapping) -> None:
    raw = message(sch(f11=""), "TQ1|1||||||20250310140000|20250310144500|S^Stat^HL70485")
    appt = appointment(to_fhir, raw)
    assert (appt["start"], appt["end"], appt["minutesDuration"], appt["priority"]) == (
        "2025-03-10T14:00:00-06:00", "2025-03-10T14:45:00-06:00", 45, 1)


def test_resource_start_offsets_count_from_the_appointment(to_fhir: Mapping) -> None:
    raw = message(sch(), "RGS|1", "AIS|1|A|99213^Visit^CPT||10|min|20|min",
                  "AIP|1|A|88^KEPT^KARL||||1|H|15")
    bundle = bundle_of(to_fhir, raw)
    service = of_type(bundle, "ServiceRequest")[0]
    assert service["occurrencePeriod"] == {"start": "2025-03-10T09:10:00-06:00",
                                           "end": "2025-03-10T09:30:00-06:00"}
    person = of_type(bundle, "Appointment")[0]["participant"][1]
    assert person["period"] == {"start": "2025-03-10T10:00:00-06:00",
                                "end": "2025-03-10T10:15:00-06:00"}


def test_removed_resource_group_is_left_out(to_fhir: Mapping) -> None:
    raw = message(sch(), "RGS|1|D", "AIP|1|A|77^GONE^GINA", "RGS|2|A",
                  "AIP|1|A|88^KEPT^KARL")
    bundle = bundle_of(to_fhir, raw)
    names = [p["name"][0]["family"] for p in of_type(bundle, "Practitioner")]
    assert names == ["KEPT"]


# ---- odd fields are warnings, the appointment still maps --------------------------------


def test_unknown_sch11_unit_with_another_duration_is_a_warning(
        to_fhir: Mapping, to_fhir_v1: Mapping) -> None:
    raw = message(sch(f9="30", f10="MIN", f11="^^Q30^20250310090000"))
    with pytest.raises(MappingError):
        run(to_fhir_v1, raw)  # the issue: v1 delivers nothing
    appt = appointment(to_fhir, raw)
    assert (appt["status"], appt["end"]) == ("booked", "2025-03-10T09:30:00-06:00")
    assert warnings_of(to_fhir, raw) == [
        "SCH-11: has a duration (component 3) that is not S, M, H, D or W and a number"]


def test_start_without_a_readable_end_is_proposed_with_requested_period(
        to_fhir: Mapping) -> None:
    raw = message(sch(f11="^^FORTNIGHT^20250310090000"))
    appt = appointment(to_fhir, raw)
    assert appt["status"] == "proposed" and "start" not in appt and "end" not in appt
    assert appt["requestedPeriod"] == [{"start": "2025-03-10T09:00:00-06:00"}]
    said = warnings_of(to_fhir, raw)
    assert said[-1].startswith("SCH-11: gives a start but no end") and "proposed" in said[-1]


def test_a_deleted_appointment_without_times_stays_not_happening(to_fhir: Mapping) -> None:
    appt = appointment(to_fhir, message(sch(f11="^^^2025031009"), event="S17"))
    assert appt["status"] == "cancelled" and app3_holds(appt)


def test_bad_zone_reads_the_time_in_the_senders_zone(to_fhir: Mapping) -> None:
    raw = message(sch(f11="^^30^202503100900+3000"))
    assert appointment(to_fhir, raw)["start"] == "2025-03-10T09:00:00-06:00"
    assert warnings_of(to_fhir, raw) == [
        "SCH-11: holds a time zone offset that does not exist; read without it"]


def test_odd_resource_fields_cost_only_themselves(to_fhir: Mapping) -> None:
    raw = message(sch(), "RGS|1", "AIP|1|A|88^KEPT^KARL|||20250310090000|||ten|min",
                  "AIS|1|A|99213^Visit^CPT|20251399")
    appt = appointment(to_fhir, raw)
    assert appt["status"] == "booked" and appt["minutesDuration"] == 30
    assert len(appt["participant"]) == 2
    said = warnings_of(to_fhir, raw)
    assert "AIP-9: is not a non-negative number" in said
    assert any(w.startswith("AIS-4: ") for w in said)


def test_codes_without_a_system_keep_their_code(to_fhir: Mapping) -> None:
    raw = message(sch(f7="FOLLOWUP", f6="PTREQ^Patient request"), "RGS|1",
                  "AIS|1|A|99213", "AIP|1|A|88^KEPT^KARL|ATT")
    appt = appointment(to_fhir, raw)
    assert appt["appointmentType"]["coding"][0]["code"] == "FOLLOWUP"
    assert appt["appointmentType"]["coding"][0]["system"].endswith("v2-0276")
    assert appt["serviceType"][0]["coding"][0]["code"] == "99213"
    assert appt["reasonCode"][0]["coding"][0]["display"] == "Patient request"
    assert appt["participant"][1]["type"][0]["coding"][0]["code"] == "ATT"
    assert warnings_of(to_fhir, raw) == []


def test_no_ids_still_maps_keyed_on_patient_and_start(to_fhir: Mapping) -> None:
    raw = message(sch(f1="", f2=""))
    first, again = appointment(to_fhir, raw), appointment(to_fhir, raw)
    assert first["id"] == again["id"] and "identifier" not in first
    assert warnings_of(to_fhir, raw)[0].startswith("SCH-2: and SCH-1 are both empty")


def test_warnings_hold_no_values(to_fhir: Mapping) -> None:
    raw = message(sch(f1="", f2="", f11="^^Q77^209913011300+9900^20991301"),
                  "RGS|1", "AIG|1|A|SECRET-RM^Hidden|||||20991301|||XYZ|QQQ")
    said = " ".join(warnings_of(to_fhir, raw))
    assert said
    for value in ("Q77", "2099", "9900", "SECRET", "Hidden", "XYZ", "QQQ", "LK-5501",
                  "QUILLAN"):
        assert value not in said


# ---- what fails, what is skipped --------------------------------------------------------


def test_only_a_message_with_nothing_to_map_fails(to_fhir: Mapping) -> None:
    checks.check_error(to_fhir, message("RGS|1", pid=None), "SCH-2")
    no_sch = bundle_of(to_fhir, message("RGS|1"))  # the patient still maps, with a warning
    assert len(of_type(no_sch, "Patient")) == 1 and not of_type(no_sch, "Appointment")
    checks.check_error(to_fhir, message(sch(), pid=None), "PID-3")
    bundle = bundle_of(to_fhir, message(sch(), "RGS|1", "AIL|1|A|MRI^MR2^^LAKESIDE",
                                        pid=None))
    assert of_type(bundle, "Patient") == [] and len(of_type(bundle, "Appointment")) == 1


def test_other_siu_events_are_skipped(to_fhir: Mapping) -> None:
    out: Any = run(to_fhir, message(sch(), event="S99"))
    assert isinstance(out, Skip) and "S99" in out.reason


@pytest.mark.parametrize("event", ["S18", "S20", "S22"])
def test_a_resource_event_updates_the_appointment_and_drops_a_deleted_resource(
        to_fhir: Mapping, event: str) -> None:
    """S18-S24 change one service or resource of an appointment that stays (a message
    with no output would leave the receiver's appointment stale): the appointment as a
    modification, without the resource its action code (AIP-2 D) deletes."""
    found = appointment(to_fhir, message(
        sch(f25="Booked"), "RGS|1|U", "AIP|1|D|11^GONE^GUS", "AIP|2|A|12^NEW^NORA",
        event=event))
    assert found["status"] == "booked"
    bundle = bundle_of(to_fhir, message(sch(), "RGS|1|U", "AIP|1|D|11^GONE^GUS",
                                        "AIP|2|A|12^NEW^NORA", event=event))
    assert [p["name"][0]["family"] for p in of_type(bundle, "Practitioner")] == ["NEW"]
    assert len(found["participant"]) == 2  # the patient and the resource added


def test_an_siu_without_an_event_is_a_booking(to_fhir: Mapping) -> None:
    """MSH-9.2 (and EVN-1) empty: read as S12 rather than give no output."""
    raw = message(sch(f25="Booked"), event="").replace(b"SIU^^SIU_S12|", b"SIU|")
    assert b"|SIU|" in raw
    assert appointment(to_fhir, raw)["status"] == "booked"
