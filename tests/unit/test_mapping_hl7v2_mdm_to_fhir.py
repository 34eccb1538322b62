"""hl7v2-mdm-to-fhir@1: every fixture, valid FHIR, stable ids shared with the ADT feed,
document content decoded byte for byte, and errors without PHI."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from engine.maplib.v2_documents import mime_type
from engine.mapping import Mapping, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, by_type, run, segment

FIXTURES = checks.Fixtures("hl7v2-mdm-to-fhir@1")
ADT_FIXTURES = checks.Fixtures("hl7v2-adt-to-fhir@1")
LITERAL_REFERENCE = re.compile(r"(Encounter|DocumentReference)/[0-9a-f-]{36}\Z")

mdm = checks.mapping_fixture(FIXTURES.ref)


def document(mapping: Mapping, raw: bytes) -> dict:
    return by_type(bundle_of(mapping, raw))["DocumentReference"]


def fixture(case: str) -> bytes:
    return FIXTURES.input(case)


TXA = {
    1: "1",
    2: "PN^Progress note^L",
    3: "TX",
    4: "20240601100000",
    6: "20240601103000",
    9: "9001^ROWE^ANNIKA^^^DR",
    12: "DOC-1001^TRANSCR",
    17: "AU",
    19: "AV",
}
OBX_TEXT = "OBX|1|TX|NOTE^Note^L||Patient seen and examined.||||||F"


def mdm_message(
    event: str = "T02",
    *,
    txa: dict[int, str] | None = None,
    obx: list[str] | None = None,
    msh7: str = "20240601120000-0500",
    pid: str = "PID|1||MG001234^^^MERCY^MR||ROWE^TAMSIN^^^^^L||19900101|F",
    pv1: str | None = "PV1|1|I|3E^301^A||||||||||||||||MGV5550001^^^MERCY^VN",
) -> bytes:
    segments = [
        f"MSH|^~\\&|TRANSCR|MERCY_GEN|CONDUIT|HIE|{msh7}||MDM^{event}|CTRL{event}|P|2.5.1",
        f"EVN|{event}|{msh7}",
        pid,
    ]
    if pv1 is not None:
        segments.append(pv1)
    segments.append(segment("TXA", {**TXA, **(txa or {})}))
    segments += [OBX_TEXT] if obx is None else obx
    return ("\r".join(segments) + "\r").encode()


def text_of(doc: dict, index: int = 0) -> str:
    return base64.b64decode(doc["content"][index]["attachment"]["data"]).decode("utf-8")


# ---- fixtures ---------------------------------------------------------------------------


def _check_output(bundle: dict) -> None:
    checks.check_transaction(bundle, literal=LITERAL_REFERENCE)
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == [
        "Patient",
        "DocumentReference",
    ]


TestFixtures = checks.fixture_tests(FIXTURES, min_outputs=6, output=_check_output)


@pytest.mark.parametrize("case", FIXTURES.output_cases)
def test_content_data_matches_its_size_and_hash(mdm: Mapping, case: str) -> None:
    for content in document(mdm, fixture(case))["content"]:
        attachment = content["attachment"]
        if "data" not in attachment:
            continue
        data = base64.b64decode(attachment["data"], validate=True)
        assert attachment["size"] == len(data)
        assert base64.b64decode(attachment["hash"]) == hashlib.sha1(data).digest()


# ---- ids shared with the ADT feed -------------------------------------------------------


def test_patient_and_encounter_are_the_ones_the_adt_feed_made(mdm: Mapping) -> None:
    bundle = by_type(bundle_of(mdm, fixture("epic_t02_discharge_pdf")))
    admit = checks.check_same_patient(bundle["Patient"], ADT_FIXTURES.input("epic_a01_admit"))
    encounter = bundle["DocumentReference"]["context"]["encounter"][0]
    assert encounter["reference"] == f"Encounter/{admit['Encounter']['id']}"
    assert encounter["identifier"]["value"] == admit["Encounter"]["identifier"][0]["value"]


def test_patient_id_equals_adts_for_the_same_pid_and_facility(mdm: Mapping) -> None:
    raw = mdm_message()
    as_adt = raw.replace(b"MDM^T02", b"ADT^A01").replace(b"EVN|T02", b"EVN|A01")
    as_adt = as_adt[: as_adt.index(b"TXA|")]
    note = by_type(bundle_of(mdm, raw))
    admit = checks.check_same_patient(note["Patient"], as_adt, whole=True)
    assert note["DocumentReference"]["context"]["encounter"][0]["reference"] == (
        f"Encounter/{admit['Encounter']['id']}"
    )


def test_edit_status_change_and_cancel_update_the_same_document(mdm: Mapping) -> None:
    ids = {document(mdm, mdm_message(event))["id"] for event in ("T02", "T04", "T08", "T11")}
    assert len(ids) == 1
    original = document(mdm, fixture("transcription_t02_progress_note"))
    cancel = document(mdm, fixture("transcription_t11_cancel"))
    assert cancel["id"] == original["id"]
    edit = document(mdm, fixture("custom_delimiters_t08_edit_rtf_hex"))
    assert edit["id"] == document(mdm, fixture("meditech_t10_replace_op_note"))["id"]


def test_addendum_points_at_its_parent_documents_id(mdm: Mapping) -> None:
    original = document(mdm, fixture("transcription_t02_progress_note"))
    addendum = document(mdm, fixture("transcription_t06_addendum"))
    assert addendum["id"] != original["id"]
    relation = addendum["relatesTo"][0]
    assert relation["code"] == "appends"
    assert relation["target"]["reference"] == f"DocumentReference/{original['id']}"
    assert relation["target"]["identifier"] == original["masterIdentifier"]


def test_another_facility_gets_another_document(mdm: Mapping) -> None:
    here = document(mdm, mdm_message())
    there = document(mdm, mdm_message().replace(b"MERCY_GEN", b"MERCY_NORTH"))
    assert here["id"] != there["id"]


# ---- events and statuses ----------------------------------------------------------------


@pytest.mark.parametrize("event", ["T01", "T03", "T05", "T07", "T09", "T12"])
def test_events_without_content_are_skipped(mdm: Mapping, event: str) -> None:
    out = run(mdm, mdm_message(event))
    assert out == Skip(f"MDM^{event} is not mapped by this version (it carries no document)")


@pytest.mark.parametrize(
    ("event", "availability", "status"),
    [
        ("T02", "AV", "current"),
        ("T02", "", "current"),
        ("T04", "AV", "current"),
        ("T08", "UN", "current"),
        ("T02", "OB", "superseded"),
        ("T02", "CA", "entered-in-error"),
        ("T11", "AV", "entered-in-error"),
    ],
)
def test_status_follows_event_and_availability(
    mdm: Mapping, event: str, availability: str, status: str
) -> None:
    assert document(mdm, mdm_message(event, txa={19: availability}))["status"] == status


@pytest.mark.parametrize(
    ("completion", "doc_status"),
    [
        ("AU", "final"),
        ("DO", "final"),
        ("LA", "final"),
        ("la", "final"),
        ("DI", "preliminary"),
        ("IN", "preliminary"),
        ("IP", "preliminary"),
        ("PA", "preliminary"),
        ("ZZ", None),
        ("", None),
    ],
)
def test_doc_status_follows_table_0271(
    mdm: Mapping, completion: str, doc_status: str | None
) -> None:
    assert document(mdm, mdm_message(txa={17: completion})).get("docStatus") == doc_status


@pytest.mark.parametrize(("event", "code"), [("T06", "appends"), ("T10", "replaces")])
def test_addendum_and_replacement_relate_to_the_parent(mdm: Mapping, event: str, code: str) -> None:
    doc = document(mdm, mdm_message(event, txa={12: "DOC-1002^TRANSCR", 13: "DOC-1001^TRANSCR"}))
    parent = document(mdm, mdm_message())
    assert doc["relatesTo"] == [
        {
            "code": code,
            "target": {
                "reference": f"DocumentReference/{parent['id']}",
                "identifier": parent["masterIdentifier"],
            },
        }
    ]


def test_cancel_without_content_keeps_only_a_title(mdm: Mapping) -> None:
    doc = document(mdm, mdm_message("T11", obx=[]))
    assert doc["content"] == [{"attachment": {"title": "Progress note"}}]
    untitled = document(mdm, mdm_message("T11", txa={2: ""}, obx=[]))
    assert untitled["content"] == [{"attachment": {"title": "Cancelled document"}}]


@pytest.mark.parametrize(
    ("txa2", "coding"),
    [
        ("PN^Progress note", ("urn:conduit:code:MERCY_GEN:local", "PN")),
        ("PN^Progress note^L", ("urn:conduit:code:MERCY_GEN:L", "PN")),
        ("11506-3^Progress note^LN", ("http://loinc.org", "11506-3")),
        ("DS^Discharge summary^HL70270", ("http://terminology.hl7.org/CodeSystem/v2-0270", "DS")),
        ("x^y^2.16.840.1.113883.6.1", ("http://loinc.org", "x")),
    ],
)
def test_document_type_keeps_the_senders_system(
    mdm: Mapping, txa2: str, coding: tuple[str, str]
) -> None:
    first = document(mdm, mdm_message(txa={2: txa2}))["type"]["coding"][0]
    assert (first["system"], first["code"]) == coding


# ---- dates ------------------------------------------------------------------------------


def test_dates_take_the_senders_zone(mdm: Mapping) -> None:
    doc = document(mdm, mdm_message())
    assert doc["date"] == "2024-06-01T10:30:00-05:00"
    assert doc["context"]["period"] == {"start": "2024-06-01T10:00:00-05:00"}
    assert doc["content"][0]["attachment"]["creation"] == "2024-06-01T10:30:00-05:00"


def test_without_any_zone_date_is_left_out_and_dates_keep_their_day(mdm: Mapping) -> None:
    doc = document(mdm, mdm_message(msh7="20240601120000"))
    assert "date" not in doc
    assert doc["context"]["period"] == {"start": "2024-06-01"}
    assert doc["content"][0]["attachment"]["creation"] == "2024-06-01"


def test_activity_time_is_the_date_when_origination_is_missing(mdm: Mapping) -> None:
    assert document(mdm, mdm_message(txa={6: ""}))["date"] == "2024-06-01T10:00:00-05:00"


# ---- content ----------------------------------------------------------------------------


def test_text_lines_escapes_and_blank_lines(mdm: Mapping) -> None:
    obx = [
        "OBX|1|TX|N^N^L||HEADER||||||F",
        "OBX|2|TX|N^N^L||||||||F",
        "OBX|3|TX|N^N^L||one\\.br\\two \\T\\ three \\F\\ four \\S\\ five \\E\\||||||F",
        "OBX|4|FT|N^N^L||\\.in+4\\indented\\.sp\\after a blank\\.sp 2\\end\\.ce\\x||||||F",
        "OBX|5|ST|N^N^L||first~second||||||F",
        "OBX|6|TX|N^N^L||stray^component & sub||||||F",
        "OBX|7|NM|N^N^L||42||||||F",
    ]
    assert text_of(document(mdm, mdm_message(obx=obx))) == (
        "HEADER\n\none\ntwo & three | four ^ five \\\n"
        "indented\n\nafter a blank\n\n\nend\nx\nfirst\nsecond\nstray^component & sub"
    )


def test_text_is_utf8_plain_text(mdm: Mapping) -> None:
    raw = mdm_message(obx=["OBX|1|TX|N^N^L||Señora Núñez: café||||||F"])
    doc = document(mdm, raw)
    assert doc["content"][0]["attachment"]["contentType"] == "text/plain; charset=utf-8"
    assert text_of(doc) == "Señora Núñez: café"


def test_embedded_pdf_arrives_byte_for_byte(mdm: Mapping) -> None:
    raw = fixture("epic_t02_discharge_pdf")
    sent = raw.split(b"^Base64^")[1].split(b"|")[0]
    attachment = document(mdm, raw)["content"][0]["attachment"]
    assert attachment["contentType"] == "application/pdf"
    pdf = base64.b64decode(attachment["data"])
    assert pdf == base64.b64decode(sent)
    assert pdf.startswith(b"%PDF-1.") and pdf.rstrip().endswith(b"%%EOF")


@pytest.mark.parametrize(
    ("value", "content_type", "data"),
    [
        ("^AP^PDF^Base64^JVBERi0x", "application/pdf", b"%PDF-1"),
        ("^TEXT^RTF^Hex^7B5C727466317D", "text/rtf", b"{\\rtf1}"),
        ("^TEXT^HTML^A^<p>hi</p>", "text/html", b"<p>hi</p>"),
        ("^image^jpeg^Base64^/9j/4A==", "image/jpeg", b"\xff\xd8\xff\xe0"),
        ("AP^PDF^Base64^JVBERi0x", "application/pdf", b"%PDF-1"),
        ("^AP^^Base64^AAEC", "application/octet-stream", b"\x00\x01\x02"),
        ("^AP^PDF^Base64^JVBE\\.br\\Ri0x", "application/pdf", b"%PDF-1"),
    ],
)
def test_encapsulated_data_encodings_and_types(
    mdm: Mapping, value: str, content_type: str, data: bytes
) -> None:
    doc = document(mdm, mdm_message(obx=[f"OBX|1|ED|DOC^Doc^L||{value}||||||F"]))
    attachment = doc["content"][0]["attachment"]
    assert attachment["contentType"] == content_type
    assert base64.b64decode(attachment["data"]) == data


def test_text_comes_first_then_each_encapsulated_value(mdm: Mapping) -> None:
    obx = [
        "OBX|1|ED|DOC^Doc^L||^AP^PDF^Base64^JVBERi0x~^TEXT^RTF^Hex^7B7D||||||F",
        "OBX|2|TX|DOC^Doc^L||Summary line.||||||F",
    ]
    content = document(mdm, mdm_message(obx=obx))["content"]
    types = [c["attachment"]["contentType"] for c in content]
    assert types == ["text/plain; charset=utf-8", "application/pdf", "text/rtf"]
    assert {c["attachment"]["title"] for c in content} == {"Progress note"}


def test_document_title_wins_over_the_type_text(mdm: Mapping) -> None:
    doc = document(mdm, mdm_message(txa={25: "Cardiology follow-up"}))
    assert doc["content"][0]["attachment"]["title"] == "Cardiology follow-up"


@pytest.mark.parametrize(
    ("kind", "subtype", "expected"),
    [
        ("AP", "PDF", "application/pdf"),
        ("application", "pdf", "application/pdf"),
        ("TEXT", "RTF", "text/rtf"),
        ("IM", "TIFF", "image/tiff"),
        ("IM", "png", "image/png"),
        ("AP", "application/msword", "application/msword"),
        ("AP", "x-unknown", "application/octet-stream"),
        ("TEXT", "", "text/plain"),
        ("", "", "application/octet-stream"),
    ],
)
def test_mime_type(kind: str, subtype: str, expected: str) -> None:
    assert mime_type(kind, subtype) == expected


# ---- people and labels ------------------------------------------------------------------


def test_authors_authenticator_and_confidentiality(mdm: Mapping) -> None:
    txa = {9: "1^ROWE^ANNIKA^^^DR~2^LUND^PER", 10: "", 22: "3^IMAI^KEN^^^DR^MD", 18: "R"}
    doc = document(mdm, mdm_message(txa=txa))
    assert doc["author"] == [{"display": "DR ANNIKA ROWE"}, {"display": "PER LUND"}]
    assert doc["authenticator"] == {"display": "DR KEN IMAI, MD"}
    assert doc["securityLabel"][0]["coding"][0]["code"] == "R"


def test_order_numbers_become_typed_identifiers(mdm: Mapping) -> None:
    doc = document(mdm, mdm_message(txa={14: "P-1^EHR", 15: "F-9"}))
    assert [
        (i["type"]["coding"][0]["code"], i["system"], i["value"]) for i in doc["identifier"]
    ] == [
        ("PLAC", "urn:conduit:id:EHR", "P-1"),
        ("FILL", "urn:conduit:id:MERCY_GEN", "F-9"),
    ]


def test_no_encounter_without_a_visit_number(mdm: Mapping) -> None:
    doc = document(mdm, mdm_message(pv1="PV1|1|I|3E^301^A"))
    assert "encounter" not in doc["context"]
    assert "encounter" not in document(mdm, mdm_message(pv1=None))["context"]


# ---- errors name fields, never values ---------------------------------------------------

PHI = ("ROWE", "TAMSIN", "MG001234", "DOC-1001", "Patient seen", "19900101", "2024-13")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"txa": {12: ""}}, "TXA-12"),
        ({"txa": {12: '""'}}, "TXA-12"),
        ({"obx": []}, "OBX-5"),
        ({"obx": ["OBX|1|TX|N^N^L||   ||||||F"]}, "OBX-5"),
        ({"obx": ["OBX|1|ED|N^N^L||^AP^PDF^Hex^ZZ-Patient seen||||||F"]}, "OBX[1]-5"),
        ({"obx": [OBX_TEXT, "OBX|2|ED|N^N^L||^AP^PDF^Base64^@@||||||F"]}, "OBX[2]-5"),
        ({"obx": ["OBX|1|ED|N^N^L||^AP^PDF^UU^abc||||||F"]}, "OBX[1]-5"),
        ({"txa": {6: "2024-13-01"}}, "TXA-6"),
        ({"txa": {4: "20241301"}}, "TXA-4"),
        ({"event": "T06"}, "TXA-13"),
        ({"event": "T10"}, "TXA-13"),
        ({"pid": "PID|1||^^^MERCY^MR||ROWE^TAMSIN||19900101|F"}, "PID-3"),
    ],
)
def test_bad_input_fails_naming_the_field_and_no_value(
    mdm: Mapping, kwargs: dict, field: str
) -> None:
    checks.check_error(mdm, mdm_message(**kwargs), field, phi=PHI)


def test_missing_txa_fails_naming_txa12(mdm: Mapping) -> None:
    raw = mdm_message()
    raw = b"\r".join(s for s in raw.split(b"\r") if not s.startswith(b"TXA"))
    checks.check_error(mdm, raw, "TXA-12")


def test_non_mdm_message_fails_naming_msh9(mdm: Mapping) -> None:
    checks.check_error(mdm, mdm_message().replace(b"MDM^T02", b"ORU^R01"), "MSH-9")


def test_event_is_read_from_evn_when_msh9_has_none(mdm: Mapping) -> None:
    raw = mdm_message("T11").replace(b"MDM^T11", b"MDM")
    assert document(mdm, raw)["status"] == "entered-in-error"
