"""Every registered codec keeps the Codec contract of engine/formats/base.py: it is an
instance of the protocol, and each member does its job on a small message of its own
standard."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from engine import registry
from engine.formats.base import Codec
from engine.message import (
    Fail,
    Outbound,
    Outcome,
    Parsed,
    ProblemKind,
    Retry,
    Sent,
    Verdict,
)

HL7 = (b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ADT^A01|MSG0001|P|2.5\r"
       b"PID|1||MRN123^^^HOSP^MR||DOE^JANE\r")
FHIR = msgspec.json.encode({"resourceType": "Patient", "id": "p1",
                            "identifier": [{"value": "MRN123"}],
                            "name": [{"family": "Doe"}]})
X12 = (b"ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*PAYER          *240101*1200*^*"
       b"00501*000000101*0*P*:~GS*HS*SUBMITTER*PAYER*20240101*1200*1*X*005010X279A1~"
       b"ST*270*0001*005010X279A1~BHT*0022*13*REF1*20240101*1200~HL*1**20*1~"
       b"NM1*PR*2*PAYER*****PI*12345~HL*2*1*21*1~NM1*1P*2*CLINIC*****XX*1234567893~"
       b"HL*3*2*22*0~NM1*IL*1*DOE*JANE****MI*MRN123~EQ*30~SE*10*0001~GE*1*1~"
       b"IEA*1*000000101~")
_999 = (b"ISA*00*          *00*          *ZZ*PAYER          *ZZ*SUBMITTER      *240101*1201*^*"
        b"00501*000000900*0*P*:~GS*FA*PAYER*SUBMITTER*20240101*1201*9*X*005010X231A1~"
        b"ST*999*0001*005010X231A1~AK1*HS*1*005010X279A1~AK2*270*0001*005010X279A1~"
        b"IK5*%s~AK9*%s*1*1*%s~SE*6*0001~GE*1*9~IEA*1*000000900~")
_SCRIPT = (b'<?xml version="1.0"?><Message xmlns="http://www.ncpdp.org/schema/SCRIPT" '
           b'TransactionVersion="2017071"><Header><To Qualifier="P">7701630</To>'
           b'<From Qualifier="C">EHR1</From><MessageID>%s</MessageID>%s'
           b'<SentTime>2024-01-01T12:00:00Z</SentTime></Header><Body>%s</Body></Message>')
SCRIPT = _SCRIPT % (b"MSG0001", b"", b"<NewRx><Patient><HumanPatient><Identification>"
                    b"<MedicalRecordIdentificationNumberEHR>MRN123"
                    b"</MedicalRecordIdentificationNumberEHR></Identification><Name>"
                    b"<LastName>DOE</LastName><FirstName>JANE</FirstName></Name>"
                    b"</HumanPatient></Patient></NewRx>")
_ANSWER = _SCRIPT % (b"A1", b"<RelatesToMessageID>MSG0001</RelatesToMessageID>", b"%s")

# Per standard: a sample, a field path and its value, an answer meaning "delivered" and
# one meaning "failed for good".
SAMPLES = {
    "hl7v2": (HL7, "PID-3.1", "MRN123",
              b"MSH|^~\\&|EHR|HOSP|LAB|HOSP|20240101120001||ACK|A1|P|2.5\rMSA|AA|MSG0001\r",
              b"MSH|^~\\&|EHR|HOSP|LAB|HOSP|20240101120001||ACK|A1|P|2.5\rMSA|AR|MSG0001\r"),
    "fhir": (FHIR, "identifier.0.value", "MRN123",
             msgspec.json.encode({"resourceType": "OperationOutcome", "issue": [
                 {"severity": "information", "code": "informational"}]}),
             msgspec.json.encode({"resourceType": "OperationOutcome", "issue": [
                 {"severity": "error", "code": "invalid"}]})),
    "x12": (X12, "NM1[IL].09", "MRN123", _999 % (b"A", b"A", b"1"),
            _999 % (b"R*5", b"R", b"0")),
    "ncpdp": (SCRIPT, "NewRx/Patient/HumanPatient/Identification/"
              "MedicalRecordIdentificationNumberEHR", "MRN123",
              _ANSWER % b"<Status><Code>000</Code></Status>",
              _ANSWER % b"<Error><Code>900</Code><Description>rejected</Description></Error>"),
}


def test_every_registered_codec_has_samples_here():
    assert set(registry.CODECS) == set(SAMPLES)


@pytest.fixture(params=sorted(registry.CODECS))
def codec(request) -> Codec:
    return registry.CODECS[request.param]()


def test_is_a_codec(codec):
    assert isinstance(codec, Codec)
    assert codec.name in registry.CODECS
    assert codec.content_type and "/" in codec.content_type
    assert codec.extensions and all(e.startswith(".") for e in codec.extensions)


def test_detects_its_own_bytes_and_no_other(codec):
    for name, (raw, *_) in SAMPLES.items():
        assert codec.detect(raw) is (name == codec.name)
        assert registry.detect(raw) == name


def test_parse_field_and_validate(codec):
    raw, path, value, *_ = SAMPLES[codec.name]
    parsed = codec.parse(raw)
    assert isinstance(parsed, Parsed) and parsed.standard == codec.name
    assert parsed.patient_id == "MRN123"
    assert codec.field(parsed, path) == value
    assert codec.field_path_error(path) is None
    codec.require({})
    assert isinstance(codec.validate(parsed, "lenient"), list)


def test_replies_and_envelopes(codec):
    raw, *_ = SAMPLES[codec.name]
    parsed = codec.parse(raw)
    accepted = Outcome(Verdict.ACCEPTED)
    reply = codec.reply(raw, parsed, accepted)
    assert reply
    assert len(codec.replies(raw, parsed, accepted)) == 1  # no enhanced mode asked
    refused = Outcome(Verdict.ERROR, (codec.problem(ProblemKind.MAPPING_FAILED, "broken"),))
    assert codec.reply(raw, parsed, refused) != reply
    assert codec.reply(raw, None, refused)  # answered even when it did not parse
    assert codec.split(raw) is None  # one message, no envelope
    assert codec.file_messages(raw) == [raw]


def test_read_reply(codec):
    raw, _, _, good, bad = SAMPLES[codec.name]
    control_id = "000000101-1-0001" if codec.name == "x12" else "MSG0001"
    sent = Outbound(1, "m1", "c", "d", raw, codec.content_type, control_id=control_id)
    assert isinstance(codec.read_reply(good, sent), Sent)
    assert isinstance(codec.read_reply(bad, sent), Fail)
    assert isinstance(codec.read_reply(b"\x00garbage", sent), Retry | Fail)


def test_diff(codec):
    raw, *_ = SAMPLES[codec.name]
    assert codec.diff(raw, raw) == []
    other = raw.replace(b"MRN123", b"MRN124")
    changes = codec.diff(raw, other)
    assert len(changes) == 1 and changes[0].old == "MRN123" and changes[0].new == "MRN124"


def test_registry_finds_codecs_by_content_type(codec):
    found = registry.codec_for_content(codec.content_type + "; charset=utf-8")
    assert found is not None and found.name == codec.name
    assert registry.extension_for(codec.content_type) == codec.extensions[0]


def test_recognised_but_unread_standards():
    assert "x12" not in registry.RECOGNISED  # read now: a codec
    assert registry.detect(b"ISA*00*") == "x12"
    assert "ncpdp" not in registry.RECOGNISED
    assert registry.detect(b"<Message xmlns='http://www.ncpdp.org/schema/SCRIPT'>") == "ncpdp"
    assert registry.detect(b"<Patient xmlns='http://hl7.org/fhir'/>") == "fhir-xml"
    assert registry.detect(b"hello") == "unknown"


def test_codecs_type_check_against_the_protocol():
    """mypy: registry.CODECS holds factories of Codec, so every codec's signatures must
    match the protocol's (imported modules are read for types, not checked themselves)."""
    api = pytest.importorskip("mypy.api")
    root = Path(__file__).resolve().parents[2]
    files = ["engine/formats/base.py", "engine/formats/fhir.py",
             "engine/formats/hl7v2/codec.py", "engine/formats/x12/codec.py",
             "engine/registry.py"]
    out, err, status = api.run(["--follow-imports=silent", "--ignore-missing-imports",
                                "--cache-dir=/dev/null", *[str(root / f) for f in files]])
    assert status == 0, out + err
