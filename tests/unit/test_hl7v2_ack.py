"""Acknowledgements we build, and what acknowledgements we receive mean for the queue."""

import pytest

from engine.formats.hl7v2 import Hl7Message, Hl7v2Codec
from engine.message import Fail, Outbound, Outcome, Problem, Retry, Sent, Verdict

codec = Hl7v2Codec()


def _msg(version="2.5.1", trigger="A01", extra=""):
    return (
        f"MSH|^~\\&|LAB|NORTH|EHR|SOUTH|20240102120000||ADT^{trigger}|CTRL42|P|{version}{extra}\r"
        "PID|1||777^^^NORTH^MR||ROE^RICHARD\r"
    ).encode()


def _ack(raw, verdict=Verdict.ACCEPTED, problems=()):
    parsed = codec.parse(raw)
    return Hl7Message.parse(codec.reply(raw, parsed, Outcome(verdict, problems)).decode())


def test_ack_echoes_control_id_version_and_swaps_applications():
    ack = _ack(_msg())
    assert ack.value("MSA-1") == "AA"
    assert ack.value("MSA-2") == "CTRL42"
    assert ack.value("MSH-12") == "2.5.1"
    assert (ack.value("MSH-3"), ack.value("MSH-4")) == ("EHR", "SOUTH")
    assert (ack.value("MSH-5"), ack.value("MSH-6")) == ("LAB", "NORTH")
    assert ack.message_type == "ACK^A01"
    assert ack.value("MSH-9.3") == "ACK"
    assert ack.control_id and ack.control_id != "CTRL42"
    assert len(ack.control_id) <= 20


def test_v23_ack_has_no_message_structure_and_uses_err_1():
    problem = Problem("required field missing", code="101", segment="PID", field=3)
    ack = _ack(_msg("2.3"), Verdict.ERROR, (problem,))
    assert ack.value("MSA-1") == "AE"
    assert ack.value("MSH-9.3") == ""
    err = ack.segment("ERR")
    assert err is not None
    assert (err.value(1, 1), err.value(1, 3)) == ("PID", "3")
    assert err.value(1, 4, 1) == "101"


def test_v25_ack_err_has_location_code_and_severity():
    problem = Problem("bad value", code="102", segment="PV1", field=2)
    ack = _ack(_msg(), Verdict.REJECTED, (problem,))
    assert ack.value("MSA-1") == "AR"
    assert ack.value("ERR-2.1") == "PV1"
    assert ack.value("ERR-2.3") == "2"
    assert ack.value("ERR-3.1") == "102"
    assert ack.value("ERR-3.3") == "HL70357"
    assert ack.value("ERR-4") == "E"
    assert ack.value("ERR-8") == "bad value"


def test_ack_text_with_delimiters_is_escaped():
    ack = _ack(_msg(), Verdict.ERROR, (Problem("a|b^c"),))
    assert ack.value("ERR-8") == "a|b^c"


def test_ack_keeps_declared_character_set():
    raw = _msg(extra="|||AL|NE||8859/1")
    ack = _ack(raw)
    assert ack.value("MSH-18") == "8859/1"


def test_reply_to_unparseable_bytes_is_an_ar_with_err():
    outcome = Outcome(Verdict.REJECTED, (Problem("message does not start with an MSH segment",
                                                 code="100", segment="MSH"),))
    ack = Hl7Message.parse(codec.reply(b"\x00\xff binary junk", None, outcome).decode())
    assert ack.value("MSA-1") == "AR"
    assert ack.value("MSA-2") == ""
    assert ack.value("ERR-3.1") == "100"


def test_reply_to_broken_message_still_echoes_its_msh():
    raw = b"MSH|^~\\&|LAB|NORTH|EHR|SOUTH|20240102||ADT^A01|C9|P|2.4\r\x01\x02garbage\r"
    outcome = Outcome(Verdict.REJECTED, (Problem("bad segment", code="100"),))
    ack = Hl7Message.parse(codec.reply(raw, None, outcome).decode())
    assert ack.value("MSA-2") == "C9"
    assert ack.value("MSH-12") == "2.4"
    assert ack.value("MSH-5") == "LAB"


def _outbound(control_id="CTRL42"):
    return Outbound(1, "m", "c", "d", b"", "x-application/hl7-v2+er7", control_id)


@pytest.mark.parametrize(
    ("code", "kind"),
    [("AA", Sent), ("CA", Sent), ("AE", Retry), ("CE", Retry), ("AR", Fail), ("CR", Fail)],
)
def test_receiver_ack_codes_map_to_deliveries(code, kind):
    reply = f"MSH|^~\\&|B|B|A|A|20240101||ACK|X|P|2.5\rMSA|{code}|CTRL42\r".encode()
    assert isinstance(codec.read_reply(reply, _outbound()), kind)


def test_ack_for_another_message_is_retried():
    reply = b"MSH|^~\\&|B|B|A|A|20240101||ACK|X|P|2.5\rMSA|AA|OTHER\r"
    result = codec.read_reply(reply, _outbound())
    assert isinstance(result, Retry)
    assert "OTHER" in result.reason


def test_unreadable_ack_is_retried():
    assert isinstance(codec.read_reply(b"HTTP/1.1 200 OK\r\n", _outbound()), Retry)
