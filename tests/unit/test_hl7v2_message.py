"""The HL7v2 tokenizer: delimiters from MSH, escapes, repetitions and paths."""

import pytest

from engine.errors import ParseError
from engine.formats.hl7v2 import Delimiters, Hl7Message, escape, unescape
from engine.formats.hl7v2.split import split_messages

ADT = (
    "MSH|^~\\&|EPIC|GENHOSP|CONDUIT|GENHOSP|20240102120000||ADT^A01^ADT_A01|MSG0001|P|2.5.1\r"
    "EVN|A01|20240102120000\r"
    "PID|1||12345^^^GENHOSP^MR~99-888^^^SSA^SS||DOE^JANE^Q~SMITH^JANE^^^^^M||19800101|F\r"
    "PV1|1|I|4W^401^A||||1234^WELBY^MARCUS\r"
)


def test_msh_numbering_matches_the_standard():
    msg = Hl7Message.parse(ADT)
    assert msg.value("MSH-1") == "|"
    assert msg.value("MSH-2") == "^~\\&"
    assert msg.value("MSH-9") == "ADT"
    assert msg.value("MSH-9.2") == "A01"
    assert msg.message_type == "ADT^A01"
    assert msg.control_id == "MSG0001"
    assert msg.version == "2.5.1"


def test_repetitions_components_and_missing_values():
    msg = Hl7Message.parse(ADT)
    assert msg.value("PID-3.1") == "12345"
    assert msg.value("PID-3[2].4") == "SSA"
    assert msg.value("PID-5[2].1") == "SMITH"
    assert msg.value("PID-5[3].1") == ""
    assert msg.value("PID-99") == ""
    assert msg.value("ZZZ-1") == ""
    pid = msg.segment("PID")
    assert pid is not None
    assert [r.value(5) for r in pid.repetitions(3)] == ["MR", "SS"]
    assert pid.value(5, 3) == "Q"


def test_non_default_delimiters_are_read_from_msh():
    text = ADT.replace("|", "$").replace("^", "%").replace("~", "*").replace("\\&", "!&")
    text = text.replace("MSH$%*!&", "MSH$%*\\!")
    msg = Hl7Message.parse(text)
    assert msg.delimiters == Delimiters("$", "%", "*", "\\", "!")
    assert msg.value("PID-5.2") == "JANE"
    assert msg.value("PID-3[2].1") == "99-888"


@pytest.mark.parametrize("ending", ["\r", "\n", "\r\n"])
def test_segment_endings(ending):
    msg = Hl7Message.parse(ADT.replace("\r", ending))
    assert [s.name for s in msg] == ["MSH", "EVN", "PID", "PV1"]


def test_escape_sequences_are_decoded():
    d = Delimiters()
    assert unescape(r"A\F\B\S\C\T\D\R\E\E\F", d) == "A|B^C&D~E\\F"
    assert unescape(r"line1\.br\line2", d) == "line1\nline2"
    assert unescape("caf\\XE9\\", d) == "café"
    assert unescape("\\H\\bold\\N\\", d) == "bold"
    assert unescape("no escapes", d) == "no escapes"


def test_escape_round_trip():
    d = Delimiters()
    for value in ["A|B", "x^y&z~w", "back\\slash", "two\nlines", "plain"]:
        assert unescape(escape(value, d), d) == value


def test_field_values_are_unescaped_on_read():
    text = ADT.replace("DOE^JANE", r"O\S\BRIEN^JANE")
    assert Hl7Message.parse(text).value("PID-5.1") == "O^BRIEN"


@pytest.mark.parametrize(
    ("text", "segment", "field"),
    [
        ("EVN|A01\rPID|1\r", "MSH", None),
        ("MSH", "MSH", 2),
        ("MSHA^~\\&|X", "MSH", 1),
        ("MSH|^^\\&|A|B\r", "MSH", 2),
        ("MSH|^~\\&|A|B\r\x07\x02junk|x\r", None, None),
    ],
)
def test_malformed_messages_name_the_segment_and_field(text, segment, field):
    with pytest.raises(ParseError) as info:
        Hl7Message.parse(text)
    assert info.value.segment == segment
    assert info.value.field == field


def test_file_splitting_handles_many_messages_and_batches():
    second = ADT.replace("MSG0001", "MSG0002")
    text = "FHS|^~\\&\nBHS|^~\\&\n" + ADT.replace("\r", "\n") + "\n\n" + second + "BTS|2\nFTS|1\n"
    messages = split_messages(text)
    assert len(messages) == 2
    assert [Hl7Message.parse(m).control_id for m in messages] == ["MSG0001", "MSG0002"]
    assert all(m.endswith("\r") and "\n" not in m for m in messages)
