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
        ("MSH|\x95~\\&|A|B\r", "MSH", 2),  # delimiters are ASCII punctuation
        ("MSH\x01^~\\&\x01A\r", "MSH", 1),
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


V27 = ADT.replace("MSH|^~\\&|", "MSH|^~\\&#|").replace("2.5.1", "2.7")


def test_v27_truncation_character_is_read_from_msh_2():
    msg = Hl7Message.parse(V27.replace("DOE^JANE", "DOE\\P\\1^JANE#"))
    assert msg.delimiters.truncation == "#"
    assert msg.value("MSH-2") == "^~\\&#"
    assert msg.value("PID-5.1") == "DOE#1"  # \P\ is a literal truncation character
    assert msg.value("PID-5.2") == "JANE#"  # a bare one marks a truncated value, kept


def test_truncation_character_is_escaped_only_when_declared():
    assert escape("a#b", Delimiters(truncation="#")) == "a\\P\\b"
    assert escape("a#b", Delimiters()) == "a#b"
    assert unescape("a\\P\\b", Delimiters()) == "a\\P\\b"  # undeclared: kept as sent


def test_msh_2_with_a_repeated_or_blank_character_is_refused():
    for encoding in ("^~\\&^", "^~\\& "):
        with pytest.raises(ParseError):
            Hl7Message.parse(ADT.replace("^~\\&", encoding, 1))


def test_msh_ending_after_msh_2_is_read():
    msg = Hl7Message.parse("MSH|^~\\&\rPID|1||X\r")
    assert msg.value("PID-3") == "X"


@pytest.mark.parametrize(("text", "plain"), [
    ("a\\.br\\b", "a\nb"),
    ("a\\.sp\\b", "a\n\nb"),  # end the line, skip one
    ("a\\.sp 3\\b", "a\n\n\n\nb"),
    ("a\\.sk 2\\b", "a  b"),
    ("\\.ti 3\\a", "   a"),
    ("\\.in 2\\a\\.br\\b\\.sp\\c", "  a\n  b\n  \n  c"),
    ("\\.in 2\\a\\.in 0\\\\.br\\b", "  a\nb"),
    ("a\\.ce\\TITLE", "a\nTITLE"),
    ("\\.fi\\a\\.nf\\b", "ab"),
    ("\\H\\bold\\N\\", "bold"),
    ("\\.sp x\\", "\\.sp x\\"),  # malformed number: kept as sent
    ("\\.zz\\", "\\.zz\\"),  # unknown command: kept
    ("\\Zlocal\\", "\\Zlocal\\"),  # locally defined: kept
    ("\\C2842\\\\M248440\\", "\\C2842\\\\M248440\\"),  # ISO 2022 switches: kept
    ("\\Xnothex\\", "\\Xnothex\\"),
    ("\\X\\", "\\X\\"),
    ("lone \\ escape", "lone \\ escape"),
])
def test_escape_sequences_and_formatting_commands_read_as_plain_text(text, plain):
    assert unescape(text, Delimiters()) == plain


def test_sequences_for_undeclared_delimiters_are_kept():
    two = Delimiters("|", "^", "~", "\\", "\x00")  # MSH-2 "^~\\": no subcomponent
    assert unescape("a\\T\\b\\S\\c", two) == "a\\T\\b^c"


def test_dot_as_a_delimiter_writes_line_feeds_in_hex():
    d = Delimiters("|", ".", "~", "\\", "&")
    assert escape("a\nb", d) == "a\\X0A\\b"
    assert unescape(escape("a\nb.c", d), d) == "a\nb.c"


def test_escape_writes_frame_and_segment_breaking_bytes_in_hex():
    d = Delimiters()
    assert escape("a\rb", d) == "a\\X0D\\b"
    assert escape("\x0b\x1c\x00", d) == "\\X0B\\\\X1C\\\\X00\\"
    assert escape("tab\there", d) == "tab\there"
    for value in ["\r\n", "\x0b", "x\\X0D\\y", "\\.br\\", "#", "日本"]:
        assert unescape(escape(value, d), d) == value


def test_read_header_reads_one_header_segment():
    from engine.formats.hl7v2.message import read_header

    msh = read_header(ADT.replace("2.5.1", "2.5.1||||||8859/1"))
    assert msh.name == "MSH" and msh.value(12) == "2.5.1"
    assert msh.delimiters.encoding == "latin-1"
    bhs = read_header("BHS|^~\\&|A|B|||||||B1\rMSH|x")
    assert (bhs.value(1), bhs.value(2), bhs.value(11)) == ("|", "^~\\&", "B1")


def test_formatting_counts_are_capped():
    assert unescape("\\.sp 999999999\\", Delimiters()) == "\n" * 101
    assert unescape("\\.sk 999999999\\", Delimiters()) == " " * 100


@pytest.mark.parametrize("text", ["", "\r\n", "\ufeff  \n"])
def test_an_empty_message_is_refused_as_empty(text: str) -> None:
    with pytest.raises(ParseError, match="message is empty"):
        Hl7Message.parse(text)
