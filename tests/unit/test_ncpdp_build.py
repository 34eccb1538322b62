"""engine/formats/ncpdp/build.py: SCRIPT Messages written from nested data read back by
the codec as sent (escaping, repeats, attributes, copied signature elements), with the
version attributes asked for, deterministic when MessageID and SentTime are given."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from engine.formats.ncpdp.build import NAMESPACE, message, sent_time, version_attributes
from engine.formats.ncpdp.codec import NcpdpCodec
from engine.formats.ncpdp.message import ScriptMessage

codec = NcpdpCodec()
STATUS = {"Status": {"Code": "000"}}


def _read(raw: bytes) -> ScriptMessage:
    parsed = codec.parse(raw)
    assert isinstance(parsed.body, ScriptMessage)
    return parsed.body


def _status(**kw: object) -> bytes:
    args = {"to": ("7701630", "P"), "sender": ("HARBORSIDEEHR", "C"),
            "message_id": "m-1", "sent": "2026-12-01T14:05:22.100Z"} | kw
    return message(STATUS, **args)  # type: ignore[arg-type]


def test_header_and_version_attributes_read_back() -> None:
    raw = _status(relates_to="orig-9", prescriber_order_number="ORD-1")
    assert raw.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Message xmlns="'
                          + NAMESPACE.encode() + b'"')
    read = _read(raw)
    assert read.namespace == NAMESPACE
    assert read.version == "2017071"
    assert read.root.attrib == version_attributes("2017071")
    assert read.root.attrib["TransactionDomain"] == "SCRIPT"
    assert (read.value("Header/To"), read.value("Header/To@Qualifier")) == ("7701630", "P")
    assert (read.value("Header/From"), read.value("Header/From@Qualifier")) == (
        "HARBORSIDEEHR", "C")
    assert read.value("Header/MessageID") == "m-1"
    assert read.value("Header/RelatesToMessageID") == "orig-9"
    assert read.value("Header/SentTime") == "2026-12-01T14:05:22.100Z"
    assert read.value("Header/PrescriberOrderNumber") == "ORD-1"
    assert read.message_type == "Status" and read.value("Status/Code") == "000"
    assert [e.tag for e in read.header] == ["To", "From", "MessageID", "RelatesToMessageID",
                                            "SentTime", "PrescriberOrderNumber"]


def test_2023011_and_given_attributes() -> None:
    assert _read(_status(version="2023011")).version == "2023011"
    read = _read(_status(attributes={"version": "010", "release": "006"}))
    assert read.root.attrib == {"version": "010", "release": "006"}
    assert read.version == "010"


def test_deterministic_when_message_id_and_sent_time_are_given() -> None:
    assert _status() == _status()
    free = message(STATUS, to=("1", "P"), sender=("2", "C"))
    other = message(STATUS, to=("1", "P"), sender=("2", "C"))
    assert _read(free).value("Header/MessageID") != _read(other).value("Header/MessageID")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",
                        _read(free).value("Header/SentTime"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", sent_time())


def test_text_is_escaped_and_reads_back_as_sent() -> None:
    text = 'Take 1 <b>tab</b> & "rinse" \'well\' ]]> \u00e9'
    raw = message({"NewRx": {"MedicationPrescribed": {"Note": text}}},
                  to=("A&B", "P"), sender=("<C>", "C"), message_id="x", sent="t")
    read = _read(raw)
    assert read.value("NewRx/MedicationPrescribed/Note") == text
    assert read.value("Header/To") == "A&B" and read.value("Header/From") == "<C>"
    assert b"<b>" not in raw


def test_nested_data_repeats_attributes_and_leaves_out_empties() -> None:
    body = {"NewRx": {
        "Patient": {"HumanPatient": {"Name": {"LastName": "Quill", "FirstName": "",
                                              "MiddleName": None}}},
        "Pharmacy": {},
        "MedicationPrescribed": {"Diagnosis": [{"Primary": {"Code": "E109"}},
                                               {"Primary": {"Code": "Z794"}}],
                                 "Empty": {"Inner": None}, "Listed": [],
                                 "Quantity": {"Value": 30}},
        "Tagged": {"@Qualifier": "ZZ", "#text": "value"}}}
    read = _read(message(body, to=("1", "P"), sender=("2", "C"), message_id="x", sent="t"))
    rx = read.body
    assert rx is not None
    assert [e.tag for e in rx] == ["Patient", "MedicationPrescribed", "Tagged"]
    assert [e.tag for e in rx.find("Patient/HumanPatient/Name")] == ["LastName"]
    assert [c.text for c in rx.findall("MedicationPrescribed/Diagnosis/Primary/Code")] == [
        "E109", "Z794"]
    assert rx.find("MedicationPrescribed/Empty") is None
    assert read.value("NewRx/MedicationPrescribed/Quantity/Value") == "30"
    assert (read.value("NewRx/Tagged"), read.value("NewRx/Tagged@Qualifier")) == (
        "value", "ZZ")


def test_header_extras_go_around_the_prescriber_order_number() -> None:
    signature = ET.fromstring('<DigitalSignature Version="T"><DigestValue>abc=</DigestValue>'
                              '<SignatureValue>MEUCIQ==</SignatureValue></DigitalSignature>')
    raw = _status(prescriber_order_number="ORD-1", header={
        "DigitalSignature": signature,
        "SenderSoftware": {"SenderSoftwareDeveloper": "Conduit"}})
    read = _read(raw)
    assert [e.tag for e in read.header] == ["To", "From", "MessageID", "SentTime",
                                            "SenderSoftware", "PrescriberOrderNumber",
                                            "DigitalSignature"]
    assert read.value("Header/DigitalSignature@Version") == "T"
    assert read.value("Header/DigitalSignature/SignatureValue") == "MEUCIQ=="
    assert read.value("Header/DigitalSignature/DigestValue") == "abc="


def test_an_element_read_from_a_message_is_copied_unchanged() -> None:
    source = _read(_status(header={"DigitalSignature": {"@Version": "T",
                                                        "SignatureValue": "sig=="}}))
    copied = _read(_status(header={"DigitalSignature": source.find(
        "Header/DigitalSignature")}))
    assert codec.diff(_status(header={"DigitalSignature": source.find(
        "Header/DigitalSignature")}), _status(header={"DigitalSignature": {
            "@Version": "T", "SignatureValue": "sig=="}})) == []
    assert copied.value("Header/DigitalSignature/SignatureValue") == "sig=="
    assert source.find("Header/DigitalSignature") is not None  # the source is untouched


def test_no_namespace() -> None:
    raw = _status(namespace="")
    assert b"xmlns" not in raw
    assert _read(raw).namespace == ""


def test_a_character_xml_cannot_carry_is_refused_naming_the_element_not_the_value() -> None:
    with pytest.raises(ValueError) as caught:
        message({"NewRx": {"Patient": {"HumanPatient": {"Name": {
            "LastName": "Secretname\x01"}}}}}, to=("1", "P"), sender=("2", "C"))
    assert "Body/NewRx/Patient/HumanPatient/Name/LastName" in str(caught.value)
    assert "Secretname" not in str(caught.value)


def test_a_body_holds_one_message() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        message({"NewRx": {}, "Status": {}}, to=("1", "P"), sender=("2", "C"))
