"""hl7v2-mdm-to-fhir@2: every MDM event T01-T11 gives its DocumentReference (valid R4),
the document's content decoded, its people as Practitioners, its parent linked, v1's ids
kept, the ADT feed's Patient, results as Observations derived from the document, and odd
fields as located warnings without values."""

from __future__ import annotations

import base64
import re

import pytest

from engine.errors import MappingError
from engine.maplib.fhir import resource_id
from engine.maplib.v2_to_fhir import mdm
from engine.mapping import Mapping
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, of_type, only, resolve, run, segment, warnings_of

FIXTURES = checks.Fixtures("hl7v2-mdm-to-fhir@2")
V1_FIXTURES = checks.Fixtures("hl7v2-mdm-to-fhir@1")
LITERAL = re.compile(r"DocumentReference/[0-9a-f-]{36}\Z")
to_fhir = checks.mapping_fixture(FIXTURES.ref)
to_fhir_v1 = checks.mapping_fixture(V1_FIXTURES.ref)

PID = "PID|1||SM4410227^^^STMARY^MR||LINDGREN^ASTRID^M||19610325|F"
DOCTOR = "1740339911^HARGREAVES^SIMONE^^^DR^MD^^^^^^NPI"


def txa(**fields: str) -> str:
    base = {1: "1", 2: "HP^History and physical^L", 3: "TX", 4: "20240611083000",
            6: "20240611094500", 9: DOCTOR, 12: "DOC-1^ESCRIPTION", 17: "AU", 19: "AV"}
    base.update({int(k[1:]): v for k, v in fields.items()})
    return segment("TXA", base)


def text(line: str, n: int = 1) -> str:
    return segment("OBX", {1: str(n), 2: "TX", 3: "HP^History and physical^L", 5: line,
                           11: "F"})


def message(event: str, *body: str, pid: str | None = PID) -> bytes:
    head = (f"MSH|^~\\&|ESCRIPTION|STMARY|CONDUIT|HIE|20240611101500-0500||MDM^{event}|C{event}"
            "|P|2.5.1")
    lines = [head, f"EVN|{event}|20240611101500-0500", *([pid] if pid else []), *body]
    return ("\r".join(lines) + "\r").encode()


def document(mapping: Mapping, raw: bytes) -> dict:
    return only(bundle_of(mapping, raw), "DocumentReference")


# ---- fixtures ---------------------------------------------------------------------------


TestFixtures = checks.fixture_tests(
    FIXTURES, min_cases=16, min_outputs=15,
    output=lambda bundle: checks.check_transaction(bundle, LITERAL))


def test_fixtures_cover_every_event() -> None:
    events = {re.search(rb"MDM\^(T\d\d)", FIXTURES.input(c))[1].decode()
              for c in FIXTURES.output_cases}
    assert {f"T{n:02d}" for n in range(1, 12)} <= events


@pytest.mark.parametrize("case", V1_FIXTURES.output_cases)
def test_v1_ids_are_kept(to_fhir: Mapping, to_fhir_v1: Mapping, case: str) -> None:
    raw = V1_FIXTURES.input(case)
    old = {(e["resource"]["resourceType"], e["resource"]["id"])
           for e in bundle_of(to_fhir_v1, raw)["entry"]}
    new = {(e["resource"]["resourceType"], e["resource"]["id"])
           for e in bundle_of(to_fhir, raw)["entry"]}
    assert old <= new


def test_declares_every_event_and_what_its_bundles_hold(to_fhir: Mapping) -> None:
    assert tuple(f"T{n:02d}" for n in range(1, 12)) == mdm.EVENTS
    made = {e["resource"]["resourceType"] for case in FIXTURES.output_cases
            for e in bundle_of(to_fhir, FIXTURES.input(case))["entry"]}
    assert {"Patient", "DocumentReference", "Practitioner", "Encounter", "Observation",
            "ServiceRequest"} <= made
    assert made <= set(mdm.RESOURCES)


def test_patient_is_the_one_the_adt_feed_makes(to_fhir: Mapping) -> None:
    adt = ("MSH|^~\\&|ADT|STMARY|EHR|STMARY|20240611080000-0500||ADT^A01|A1|P|2.5.1\r"
           "EVN|A01|20240611080000-0500\r" + PID + "\rPV1|1|I\r").encode()
    patient = of_type(bundle_of(to_fhir, message("T02", txa(), text("x"))), "Patient")[0]
    checks.check_same_patient(patient, adt)


# ---- the document -----------------------------------------------------------------------


def test_document_facts_land_where_the_reference_puts_them(to_fhir: Mapping) -> None:
    raw = message("T02", "PV1|1|I|3N^310^A^STMARY||||||||||||||||V991^^^STMARY^VN",
                  txa(f5=DOCTOR, f10=DOCTOR, f16="hp_1.txt", f18="R", f25="H and P"),
                  text("CHIEF COMPLAINT: dyspnea."), text("PLAN: diuresis.", 2))
    bundle = bundle_of(to_fhir, raw)
    doc = of_type(bundle, "DocumentReference")[0]
    doctor = of_type(bundle, "Practitioner")[0]
    encounter = of_type(bundle, "Encounter")[0]
    assert doc["masterIdentifier"]["value"] == "DOC-1"
    assert doc["type"]["coding"][0]["code"] == "HP"
    assert (doc["status"], doc["docStatus"]) == ("current", "final")
    assert doc["author"] == [{"reference": f"urn:uuid:{doctor['id']}"}]
    assert doc["authenticator"] == {"reference": f"urn:uuid:{doctor['id']}"}
    assert doctor["identifier"][0] == {
        "system": "http://hl7.org/fhir/sid/us-npi", "value": "1740339911",
        "type": doctor["identifier"][0]["type"]}
    assert doc["securityLabel"][0]["coding"][0]["code"] == "R"
    assert doc["identifier"][-1]["value"] == "hp_1.txt"
    assert doc["context"]["encounter"] == [{"reference": f"urn:uuid:{encounter['id']}"}]
    assert doc["context"]["period"]["start"] == "2024-06-11T08:30:00-05:00"
    attachment = doc["content"][0]["attachment"]
    assert attachment["title"] == "H and P"
    assert base64.b64decode(attachment["data"]).decode() == (
        "CHIEF COMPLAINT: dyspnea.\nPLAN: diuresis.")


def test_formatted_text_is_decoded(to_fhir: Mapping) -> None:
    raw = message("T02", txa(), segment("OBX", {1: "1", 2: "FT", 3: "HP^HP^L",
                                                5: "A\\.br\\B \\T\\ C\\.sp 1\\D"}))
    data = document(to_fhir, raw)["content"][0]["attachment"]["data"]
    assert base64.b64decode(data).decode() == "A\nB & C\n\nD"


def test_encapsulated_and_pointer_content(to_fhir: Mapping) -> None:
    raw = message("T02", txa(),
                  segment("OBX", {1: "1", 2: "ED", 3: "HP^HP^L",
                                  5: "EPIC^application^pdf^Base64^JVBERi0xLjQ="}),
                  segment("OBX", {1: "2", 2: "RP", 3: "HP^HP^L",
                                  5: "https://docs.example/1.xml^EHR^application^xml"}))
    bundle = bundle_of(to_fhir, raw)
    content = [c["attachment"] for c in of_type(bundle, "DocumentReference")[0]["content"]]
    assert (content[0]["contentType"], content[0]["data"]) == ("application/pdf",
                                                               "JVBERi0xLjQ=")
    assert (content[1]["contentType"], content[1]["url"]) == (
        "application/xml", "https://docs.example/1.xml")
    assert not of_type(bundle, "Observation")
    # each is also a DiagnosticReport presenting it, as the reference converter makes one
    reports = of_type(bundle, "DiagnosticReport")
    assert [(r["presentedForm"][0]["contentType"], r["status"]) for r in reports] == [
        ("application/pdf", "final"), ("application/xml", "final")]
    assert reports[0]["presentedForm"][0]["data"] == "JVBERi0xLjQ="
    assert reports[1]["presentedForm"][0]["url"] == "https://docs.example/1.xml"
    assert reports[0]["effectiveDateTime"] == "2024-06-11T08:30:00-05:00"
    assert reports[0]["performer"] == of_type(bundle, "DocumentReference")[0]["author"]


def test_a_plain_text_document_makes_no_diagnostic_report(to_fhir: Mapping) -> None:
    assert of_type(bundle_of(to_fhir, message("T02", txa(), text("Seen."))),
                   "DiagnosticReport") == []


def test_pv1_54_is_the_documents_episode_of_care(to_fhir: Mapping) -> None:
    pv1 = "PV1|1|O|CLINIC^^^STMARY" + "|" * 51 + "EP-7^^^STMARY"
    bundle = bundle_of(to_fhir, message("T02", pv1, txa(), text("x")))
    episode = only(bundle, "EpisodeOfCare")
    assert episode["identifier"][0]["value"] == "EP-7"
    assert only(bundle, "Encounter")["episodeOfCare"] == [
        {"reference": f"urn:uuid:{episode['id']}"}]


@pytest.mark.parametrize("event", ["T01", "T03", "T05", "T07", "T09"])
def test_notifications_without_content_still_give_the_document(to_fhir: Mapping,
                                                               event: str) -> None:
    doc = document(to_fhir, message(event, txa(f13="DOC-0^ESCRIPTION")))
    # US Core's us-core-6 wants data or a url: the url names the document at its sender
    assert doc["content"] == [{"attachment": {"url": "urn:conduit:document:STMARY:DOC-1",
                                              "title": "History and physical",
                                              "creation": "2024-06-11T09:45:00-05:00"}}]
    assert doc["type"]["coding"][0]["code"] == "HP"


@pytest.mark.parametrize(("event", "code"), [("T05", "appends"), ("T06", "appends"),
                                             ("T09", "replaces"), ("T10", "replaces")])
def test_addenda_and_replacements_point_at_their_parent(to_fhir: Mapping, event: str,
                                                         code: str) -> None:
    doc = document(to_fhir, message(event, txa(f12="DOC-2^ESCRIPTION",
                                               f13="DOC-1^ESCRIPTION"), text("x")))
    parent = resource_id("DocumentReference", "STMARY",
                         {"system": "urn:conduit:id:ESCRIPTION", "value": "DOC-1"})
    assert doc["relatesTo"] == [{"code": code, "target": {
        "reference": f"DocumentReference/{parent}",
        "identifier": {"system": "urn:conduit:id:ESCRIPTION", "value": "DOC-1"}}}]


def test_edit_status_change_and_cancel_update_the_same_document(to_fhir: Mapping) -> None:
    original = document(to_fhir, message("T02", txa(), text("x")))
    for event, status in (("T04", "current"), ("T08", "current"),
                          ("T11", "entered-in-error")):
        again = document(to_fhir, message(event, txa(), text("y")))
        assert (again["id"], again["status"]) == (original["id"], status)


def test_obsolete_availability_is_superseded(to_fhir: Mapping) -> None:
    assert document(to_fhir, message("T04", txa(f19="OB"), text("x")))["status"] == (
        "superseded")


def test_results_in_a_document_are_observations_derived_from_it(to_fhir: Mapping) -> None:
    raw = FIXTURES.input("echo_t02_with_measurements")
    bundle = bundle_of(to_fhir, raw)
    doc = of_type(bundle, "DocumentReference")[0]
    observations = of_type(bundle, "Observation")
    assert [o["code"]["coding"][0]["code"] for o in observations] == [
        "10230-1", "8867-4", "59282-4"]
    assert observations[0]["valueQuantity"]["value"] == 55
    assert all(o["derivedFrom"] == [{"reference": f"urn:uuid:{doc['id']}"}]
               for o in observations)


# ---- leniency ---------------------------------------------------------------------------


def test_odd_fields_are_located_warnings_and_the_document_still_maps(to_fhir: Mapping) -> None:
    raw = message("T02", txa(f2="", f4="20240611250000", f12="", f16="note.txt", f17="ZZ"),
                  text("Seen today."))
    assert sorted(warnings_of(to_fhir, raw)) == [
        "TXA-12: is empty; the document is identified by its file name (TXA-16)",
        "TXA-17: is not a completion status of table 0271; docStatus is left out",
        "TXA-2: is empty, so the document type is unknown",
        "TXA-4: holds a date/time that does not exist",
    ]
    doc = document(to_fhir, raw)
    assert doc["type"]["coding"][0]["code"] == "unknown"
    assert "docStatus" not in doc


def test_a_notification_without_number_or_file_name_still_gives_its_document(
        to_fhir: Mapping) -> None:
    """Without TXA-12 and TXA-16 the document is keyed on the patient, its type and time:
    one DocumentReference, the same on a resend, another for another document."""
    raw = message("T01", txa(f12=""))
    assert warnings_of(to_fhir, raw) == [
        "TXA-12: is empty and so is TXA-16: the document is keyed on the patient, its type "
        "and time (else the message control id)"]
    doc = document(to_fhir, raw)
    assert (doc["type"]["coding"][0]["code"], doc["status"]) == ("HP", "current")
    assert doc["content"][0]["attachment"]["title"] == "History and physical"
    assert document(to_fhir, raw)["id"] == doc["id"]
    assert document(to_fhir, message("T01", txa(f12="", f4="20240612083000")))["id"] != doc["id"]


def test_an_addendum_without_parent_maps_without_relates_to(to_fhir: Mapping) -> None:
    raw = message("T06", txa(), text("x"))
    assert warnings_of(to_fhir, raw) == [
        "TXA-13: is empty, but MDM^T06 (appends a document) names its parent document "
        "here; no relatesTo"]
    assert "relatesTo" not in document(to_fhir, raw)


def test_bad_encapsulated_data_costs_only_that_attachment(to_fhir: Mapping) -> None:
    raw = message("T02", txa(), text("Text stays."),
                  segment("OBX", {1: "2", 2: "ED", 3: "X^X^L", 5: "^application^pdf^Base64^@@"}))
    assert warnings_of(to_fhir, raw) == [
        "OBX[2]-5: holds encapsulated data that is not valid Base64"]
    content = document(to_fhir, raw)["content"]
    assert len(content) == 1 and content[0]["attachment"]["contentType"].startswith("text/")


def test_warnings_hold_no_values(to_fhir: Mapping) -> None:
    found = warnings_of(to_fhir, FIXTURES.input("messy_t02_missing_type_and_number"))
    assert found
    for value in ("rb_note_4471_0707.txt", "XX", "2024070725", "***", "GALLAGHER"):
        assert not [w for w in found if value in w], value


def test_only_a_message_without_a_patient_fails(to_fhir: Mapping) -> None:
    with pytest.raises(MappingError) as caught:
        run(to_fhir, message("T02", txa(), text("x"), pid=None))
    assert caught.value.field == "PID-3"
    bundle = bundle_of(to_fhir, message("T02", text("x")))
    assert of_type(bundle, "Patient") and not of_type(bundle, "DocumentReference")


def test_each_con_is_a_consent_of_the_patient(to_fhir: Mapping) -> None:
    con = segment("CON", {1: "1", 2: "001^Release of Information^HL70496",
                          4: "FORM-88^STMARY", 5: "I authorize release of my records.",
                          11: "X^Rescinded^HL70498", 13: "20240611090000-0500",
                          24: "LINDGREN^ASTRID~LINDGREN^ERIK",
                          25: "1^Self^HL70548~2^Parent^HL70548"})
    bundle = bundle_of(to_fhir, message("T02", txa(), text("x"), con))
    consent = only(bundle, "Consent")
    assert (consent["status"], consent["scope"]["coding"][0]["code"]) == (
        "inactive", "patient-privacy")
    assert [c["coding"][0]["code"] for c in consent["category"]] == ["59284-0", "001"]
    assert consent["identifier"][0]["value"] == "FORM-88"
    assert consent["policyRule"] == {"text": "I authorize release of my records."}
    assert consent["dateTime"] == "2024-06-11T09:00:00-05:00"
    who = [resolve(bundle, p)["resourceType"] for p in consent["performer"]]
    assert who == ["Patient", "RelatedPerson"]
    assert consent["patient"] == {"reference": f"urn:uuid:{only(bundle, 'Patient')['id']}"}
    odd = con.replace("X^Rescinded", "Q^Quibbled")
    assert "CON-11: is not a consent status of table 0498; read as active" in warnings_of(
        to_fhir, message("T02", txa(), text("x"), odd))
