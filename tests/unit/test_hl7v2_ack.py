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


@pytest.mark.parametrize(("version", "where", "located"), [
    ("2.5.1", "OBX[3]-5", ("OBX", "3", "5")), ("2.5.1", "PID-3", ("PID", "1", "3")),
    ("2.3", "PID-3", ("PID", "1", "3")), ("2.5.1", "NewRx/Patient", ("", "", ""))])
def test_a_mapping_failure_is_located_where_its_mapping_says(version, where, located):
    """The field a mapping names (MappingError.field, carried as the problem's `where`)
    fills ERR-2 (ERR-1 before v2.5), so the sender sees which field to correct."""
    problem = Problem("mapping hl7v2-oru-to-fhir@2 failed: not a number", where=(where,))
    ack = _ack(_msg(version), Verdict.ERROR, (problem,))
    err = ack.segment("ERR")
    assert err is not None
    at = 1 if version == "2.3" else 2
    assert (err.value(at, 1), err.value(at, 2), err.value(at, 3)) == located


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
    assert "another control id" in result.reason
    assert "OTHER" not in result.reason  # MSA-2 may hold anything, a shifted MRN too


def test_a_shifted_ack_quotes_nothing_of_its_fields():
    reply = b"MSH|^~\\&|B|B|A|A|20240101||ACK|X|P|2.5\rMSA|DOE^JANE|MRN4711\rERR|||MRN4711\r"
    result = codec.read_reply(reply, _outbound())
    assert isinstance(result, Retry)
    assert "DOE" not in result.reason and "MRN4711" not in result.reason
    assert result.code == ""


def test_unreadable_ack_is_retried():
    assert isinstance(codec.read_reply(b"HTTP/1.1 200 OK\r\n", _outbound()), Retry)


# Enhanced acknowledgement mode (MSH-15 accept, MSH-16 application; table 0155).

OK = Outcome(Verdict.ACCEPTED)
BAD = Outcome(Verdict.ERROR, (Problem("bad value", code="102", segment="PID", field=3),))
REFUSED = Outcome(Verdict.REJECTED, (Problem("unsupported", code="200"),))


def _enhanced(accept, application, version="2.5.1"):
    return _msg(version, extra=f"|||{accept}|{application}")


def _code(answer: bytes) -> str:
    return Hl7Message.parse(answer.decode()).value("MSA-1") if answer else ""


@pytest.mark.parametrize(("condition", "ok", "bad", "refused"), [
    ("AL", "CA", "CE", "CR"),
    ("NE", "", "", ""),
    ("ER", "", "CE", "CR"),
    ("SU", "CA", "", ""),
    ("", "CA", "CE", "CR"),  # enhanced (MSH-16 valued) with MSH-15 empty: read as AL
])
def test_commit_ack_follows_msh_15(condition, ok, bad, refused):
    raw = _enhanced(condition, "AL")
    parsed = codec.parse(raw)
    got = [_code(codec.reply(raw, parsed, o)) for o in (OK, BAD, REFUSED)]
    assert got == [ok, bad, refused]


@pytest.mark.parametrize(("condition", "ok", "bad", "refused"), [
    ("AL", "AA", "AE", "AR"),
    ("NE", "", "", ""),
    ("ER", "", "AE", "AR"),
    ("SU", "AA", "", ""),
])
def test_application_ack_follows_msh_16(condition, ok, bad, refused):
    raw = _enhanced("AL", condition)
    parsed = codec.parse(raw)
    got = [_code(codec.application_reply(raw, parsed, o)) for o in (OK, BAD, REFUSED)]
    assert got == [ok, bad, refused]


def test_original_mode_has_no_separate_application_ack():
    raw = _msg()
    assert codec.application_reply(raw, codec.parse(raw), OK) == b""
    assert _code(codec.reply(raw, codec.parse(raw), OK)) == "AA"


def test_enhanced_acks_echo_the_message_and_ask_for_no_ack_themselves():
    raw = _enhanced("AL", "AL", version="2.4")
    parsed = codec.parse(raw)
    for answer in (codec.reply(raw, parsed, BAD), codec.application_reply(raw, parsed, BAD)):
        ack = Hl7Message.parse(answer.decode())
        assert ack.value("MSA-2") == "CTRL42"
        assert ack.value("MSH-12") == "2.4"
        assert (ack.value("MSH-3"), ack.value("MSH-5")) == ("EHR", "LAB")
        assert ack.value("MSH-15") == "" and ack.value("MSH-16") == ""
        assert ack.value("ERR-1.1") == "PID"  # v2.4 lays ERR out as ERR-1


def test_unparseable_message_in_enhanced_mode_is_answered_by_its_msh_15():
    broken = b"MSH|^~\\&|LAB|NORTH|EHR|SOUTH|2024||ADT^A01|C9|P|2.5|||NE|NE\r\x01junk\r"
    assert codec.reply(broken, None, REFUSED) == b""
    broken_er = broken.replace(b"|NE|NE", b"|ER|NE")
    ack = Hl7Message.parse(codec.reply(broken_er, None, REFUSED).decode())
    assert (ack.value("MSA-1"), ack.value("MSA-2")) == ("CR", "C9")


def test_v27_ack_keeps_the_truncation_character_and_drops_msa_3():
    raw = _msg("2.7").replace(b"MSH|^~\\&|", b"MSH|^~\\&#|")
    ack = Hl7Message.parse(codec.reply(raw, codec.parse(raw), BAD).decode())
    assert ack.value("MSH-2") == "^~\\&#"
    assert ack.value("MSA-1") == "AE" and ack.value("MSA-3") == ""
    assert ack.value("ERR-8") == "bad value"
    older = Hl7Message.parse(codec.reply(_msg(), codec.parse(_msg()), BAD).decode())
    assert older.value("MSA-3") == "bad value"


def test_ack_writes_the_trigger_event_escaped():
    raw = _msg(trigger="A\\.sp 5\\01\\F\\")
    ack = Hl7Message.parse(codec.reply(raw, None, OK).decode())
    assert [s.name for s in ack] == ["MSH", "MSA"]
    assert ack.value("MSH-9.2") == "A" + "\n" * 6 + "01|"  # .sp 5: end line, skip 5


def test_ack_to_a_message_without_subcomponent_separator_has_no_nul():
    raw = _msg("2.3").replace(b"MSH|^~\\&|", b"MSH|^~\\|")
    problem = Problem("bad", code="101", segment="PID", field=3)
    answer = codec.reply(raw, codec.parse(raw), Outcome(Verdict.ERROR, (problem,)))
    assert b"\x00" not in answer
    assert Hl7Message.parse(answer.decode()).value("ERR-1.4") == "101"
