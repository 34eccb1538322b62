"""MSH-18 character sets: decoding bytes, hex escapes in the declared set, writing back."""

import pytest

from engine.formats.hl7v2 import Delimiters, Hl7Message, Hl7v2Codec, MessageBuilder
from engine.formats.hl7v2.charsets import charset_name, codec_for, decode_text
from engine.formats.hl7v2.escape import escape, unescape
from engine.message import Outcome, Problem, Verdict

codec = Hl7v2Codec()


def _raw(charset: str, pid5: str, encoding: str = "ascii") -> bytes:
    return (f"MSH|^~\\&|A|B|C|D|2024||ADT^A01|C1|P|2.5||||||{charset}\r"
            f"PID|1||1^^^H^MR||{pid5}\r").encode(encoding)


@pytest.mark.parametrize(("msh18", "python"), [
    ("ASCII", "ascii"), ("8859/1", "latin-1"), ("8859/15", "iso8859-15"),
    ("UNICODE UTF-8", "utf-8"), ("UNICODE UTF-16", "utf-16"), ("UNICODE UTF-32", "utf-32"),
    ("UNICODE", "utf-16"), ("GB 18030-2000", "gb18030"), ("KS X 1001", "euc_kr"),
    ("BIG-5", "big5"), ("ISO IR87", "iso2022_jp"), ("ISO IR192", "utf-8"),
    ("unicode utf-8", "utf-8"), ("UTF-8", "utf-8"), ("windows-1252", "cp1252"),
    ("", ""), ("KLINGON", ""), ("CNS 11643-1992", ""),
    ("~ISO IR87", "iso2022_jp_2"), ("ASCII~ISO IR87~ISO IR159", "iso2022_jp_2"),
    ("8859/1^x", "latin-1"),
])
def test_table_0211_names_map_to_python_codecs(msh18, python):
    assert codec_for(msh18) == python


def test_charset_names_for_builders():
    assert charset_name("utf-8") == "UNICODE UTF-8"
    assert charset_name("latin-1") == "8859/1"
    assert charset_name("gb18030") in ("GB 18030", "GB 18030-2000")
    with pytest.raises(ValueError):
        charset_name("koi8-r")


def test_hex_escapes_are_bytes_in_the_declared_character_set():
    assert codec.parse(_raw("UNICODE UTF-8", "REN\\XC3A9\\E")).body.value("PID-5") == "RENéE"
    assert codec.parse(_raw("8859/1", "REN\\XE9\\E")).body.value("PID-5") == "RENéE"
    assert codec.parse(_raw("8859/15", "\\XA4\\")).body.value("PID-5") == "€"
    assert codec.parse(_raw("8859/1", "\\XA4\\")).body.value("PID-5") == "¤"
    assert codec.parse(_raw("GB 18030", "\\XC8D5\\")).body.value("PID-5") == "日"
    assert codec.parse(_raw("UNICODE UTF-16", "\\X00E9\\", "utf-16")).body.value(
        "PID-5") == "é"


def test_hex_escapes_that_do_not_decode_fall_back_to_latin_1():
    assert codec.parse(_raw("UNICODE UTF-8", "\\XE9\\")).body.value("PID-5") == "é"
    assert codec.parse(_raw("", "\\XE9\\")).body.value("PID-5") == "é"
    assert codec.parse(_raw("", "\\XC3A9\\")).body.value("PID-5") == "é"


@pytest.mark.parametrize(("raw", "text"), [
    (_raw("8859/1", "Zoë", "latin-1"), "Zoë"),
    (_raw("UNICODE UTF-8", "Zoë 日", "utf-8"), "Zoë 日"),
    (_raw("", "Zoë", "utf-8"), "Zoë"),
    (_raw("", "Zoë", "latin-1"), "Zoë"),  # undeclared and not UTF-8: Latin-1
    (_raw("ASCII", "Zoë", "latin-1"), "Zoë"),  # declared ASCII, sent Latin-1
    (_raw("UNICODE UTF-16", "Zoë 日", "utf-16"), "Zoë 日"),  # byte-order mark
    (_raw("UNICODE UTF-16", "Zoë", "utf-16-le"), "Zoë"),  # no mark, little-endian
    (_raw("UNICODE UTF-16", "Zoë", "utf-16-be"), "Zoë"),
    (_raw("UNICODE UTF-32", "Zoë", "utf-32"), "Zoë"),
    (b"\xef\xbb\xbf" + _raw("", "Zoë", "utf-8"), "Zoë"),  # UTF-8 byte-order mark
    (b"\r\n  " + _raw("8859/1", "Zoë", "latin-1"), "Zoë"),  # leading blank lines
    (_raw("UNICODE UTF-16", "Zoë", "utf-8"), "Zoë"),  # declares UTF-16, sends UTF-8
    (_raw("GB 18030", "日本", "gb18030"), "日本"),
    (_raw("~ISO IR87", "日本", "iso2022_jp"), "日本"),  # ISO 2022 escape sequences
])
def test_messages_decode_in_their_declared_character_set(raw, text):
    assert codec.parse(raw).body.value("PID-5") == text


def test_decode_text_never_fails():
    assert decode_text(bytes(range(256)))
    assert decode_text(b"MSH|^~\\&|||||||||||||||||UNICODE UTF-8\r\xff\xfe")


def test_escape_writes_control_characters_in_the_declared_set():
    utf16 = Delimiters(encoding="utf-16")
    assert escape("a\rb", utf16) == "a\\X000D\\b"
    assert unescape("a\\X000D\\b", utf16) == "a\rb"
    assert escape("a\rb\x0b\x1c", Delimiters()) == "a\\X0D\\b\\X0B\\\\X1C\\"
    assert escape("Zoë 日", Delimiters(encoding="latin-1")) == "Zoë 日"  # never \X for text


def test_acks_are_written_in_the_declared_character_set():
    raw = _raw("8859/1", "Zoë", "latin-1")
    outcome = Outcome(Verdict.ERROR, (Problem("Zoë is not a valid name"),))
    ack = codec.reply(raw, codec.parse(raw), outcome)
    assert "Zoë".encode("latin-1") in ack and b"8859/1" in ack
    ascii_ack = codec.reply(_raw("ASCII", "x"), None, Outcome(Verdict.ERROR, (Problem("日"),)))
    assert b"?" in ascii_ack  # a character ASCII cannot carry, in our own text
    wide = _raw("UNICODE UTF-16", "x", "utf-16")
    wide_ack = codec.reply(wide, codec.parse(wide), Outcome(Verdict.ACCEPTED))
    assert Hl7Message.parse(wide_ack.decode("utf-16")).value("MSA-1") == "AA"
    lying = _raw("UNICODE UTF-16", "x")  # declares UTF-16, sent in ASCII
    assert codec.reply(lying, codec.parse(lying), Outcome(Verdict.ACCEPTED)).startswith(b"MSH")


def test_builder_declares_and_encodes_its_character_set():
    builder = MessageBuilder(charset="8859/1")
    builder.set("MSH-9.1", "ADT")
    builder.set("MSH-10", "C1")
    builder.set("PID-5.1", "Zoë")
    raw = builder.encode_bytes()
    assert "Zoë".encode("latin-1") in raw
    parsed = codec.parse(raw)
    assert parsed.body.value("MSH-18") == "8859/1"
    assert parsed.body.value("PID-5") == "Zoë"


def test_builder_refuses_characters_its_set_cannot_carry():
    builder = MessageBuilder(charset="ASCII")
    builder.set("PID-5.1", "Zoë")
    with pytest.raises(ValueError, match="UNICODE UTF-8"):
        builder.encode_bytes()
    with pytest.raises(ValueError, match="table 0211"):
        MessageBuilder(charset="KLINGON")


def test_charset_names_holding_a_delimiter_are_read_unescaped():
    d = Delimiters("|", "^", "~", "\\", "/")  # "/" as the subcomponent separator
    builder = MessageBuilder(d, charset="8859/1")
    builder.set("MSH-9.1", "ADT")
    builder.set("MSH-10", "C1")
    builder.set("PID-5.1", "Zoë")
    raw = builder.encode_bytes()
    assert b"8859\\T\\1" in raw
    assert codec.parse(raw).body.encoding == "latin-1"
    assert codec.parse(raw).body.value("PID-5") == "Zoë"
