"""Property-based tests: whatever a mapping writes with MessageBuilder reads back unchanged.

Messages are generated with random segment names (Z-segments included), repeated
segments, fields with repetitions, components and subcomponents, values holding every
delimiter, the escape and truncation characters, CR/LF, control characters and
non-ASCII text; under random distinct punctuation delimiters (4 or 5 encoding
characters), every segment ending, and several MSH-18 character sets.
"""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.formats.hl7v2 import Delimiters, Hl7Message, Hl7v2Codec, MessageBuilder
from engine.formats.hl7v2.charsets import codec_for
from engine.formats.hl7v2.escape import escape, unescape

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

PUNCTUATION = string.punctuation
ENDINGS = ["\r", "\n", "\r\n"]
RESERVED = {"MSH", "FHS", "BHS", "BTS", "FTS"}

# MSH-18 value -> characters beyond ASCII that it can carry.
CHARSETS = {
    "": "é日😀ÿ",
    "UNICODE UTF-8": "é日😀ÿ",
    "8859/1": "éÿ\u00d7",
    "8859/15": "€éŠ",
    "ASCII": "",
    "UNICODE UTF-16": "é日😀",
    "GB 18030": "é日",
}


@st.composite
def delimiters(draw: st.DrawFn) -> Delimiters:
    """MSH-1 plus 4 or 5 encoding characters, distinct punctuation."""
    count = draw(st.sampled_from([5, 6]))
    chars = draw(st.lists(st.sampled_from(PUNCTUATION), min_size=count, max_size=count,
                          unique=True))
    return Delimiters(*chars[:5], chars[5] if count == 6 else "")


def values(extra: str = "é日😀") -> st.SearchStrategy[str]:
    """Non-empty values rich in delimiters, escapes, line breaks and controls."""
    alphabet = st.sampled_from(PUNCTUATION + "aZ09 \t\r\n\x0b\x1c\x00\x7f" + extra)
    return st.text(alphabet, min_size=1, max_size=10)


segment_names = st.one_of(
    st.sampled_from(["PID", "PV1", "OBX", "NTE", "ZPI", "ZZ9"]),
    st.from_regex(r"[A-Z][A-Z0-9]{2}", fullmatch=True),
).filter(lambda name: name not in RESERVED)


def fields(value: st.SearchStrategy[str]) -> st.SearchStrategy[dict]:
    """field -> repetition -> component -> subcomponent -> value, all 1-based."""
    subs = st.dictionaries(st.integers(1, 3), value, min_size=1, max_size=2)
    comps = st.dictionaries(st.integers(1, 4), subs, min_size=1, max_size=3)
    reps = st.dictionaries(st.integers(1, 3), comps, min_size=1, max_size=2)
    return st.dictionaries(st.integers(1, 8), reps, min_size=1, max_size=4)


@st.composite
def messages(draw: st.DrawFn, charset: str | None = None):
    """(delimiters, charset, MSH fields, [(segment name, fields)])."""
    d = draw(delimiters())
    if charset is None:
        charset = draw(st.sampled_from(sorted(CHARSETS)))
    value = values(CHARSETS[charset])
    msh = {9: draw(value), 10: draw(value)}
    msh.update(draw(st.dictionaries(st.sampled_from([3, 4, 5, 6, 7, 11, 12]), value,
                                    max_size=4)))
    body = draw(st.lists(st.tuples(segment_names, fields(value)), min_size=1, max_size=5))
    return d, charset, msh, body


def build(d: Delimiters, charset: str, msh: dict[int, str], body) -> MessageBuilder:
    builder = MessageBuilder(d, charset=charset)
    for number, value in msh.items():
        builder.set(f"MSH-{number}", value)
    seen: dict[str, int] = {}
    for name, fs in body:
        seen[name] = seen.get(name, 0) + 1
        occurrence = seen[name]
        for f, reps in fs.items():
            for r, comps in reps.items():
                for c, subs in comps.items():
                    for s, value in subs.items():
                        builder.set(f"{name}[{occurrence}]-{f}[{r}].{c}.{s}", value)
    return builder


def assert_same(message: Hl7Message, d: Delimiters, charset: str, msh: dict[int, str],
                body) -> None:
    """Every position the model defines reads back as set, and every other position
    inside its bounds reads as ""."""
    assert message.delimiters[:6] == d[:6]
    assert message.encoding == codec_for(charset, "")
    assert message.value("MSH-1") == d.field
    assert message.value("MSH-2") == d.encoding_characters
    for number, value in msh.items():
        assert message.value(f"MSH-{number}") == value
    assert message.value("MSH-18") == charset
    seen: dict[str, int] = {}
    names = []
    for name, fs in body:
        seen[name] = seen.get(name, 0) + 1
        names.append(name)
        occurrence = seen[name]
        for f in range(1, max(fs) + 1):
            reps = fs.get(f, {})
            for r in range(1, max(reps, default=1) + 1):
                comps = reps.get(r, {})
                for c in range(1, max(comps, default=1) + 1):
                    subs = comps.get(c, {})
                    for s in range(1, max(subs, default=1) + 1):
                        path = f"{name}[{occurrence}]-{f}[{r}].{c}.{s}"
                        assert message.value(path) == subs.get(s, ""), path
    assert [seg.name for seg in message.segments] == ["MSH", *names]


@SETTINGS
@given(messages(), st.sampled_from(ENDINGS))
def test_parse_of_encode_gives_back_every_value(model, ending):
    d, charset, msh, body = model
    text = build(d, charset, msh, body).encode(ending)
    assert_same(Hl7Message.parse(text), d, charset, msh, body)


@SETTINGS
@given(messages(), st.sampled_from(ENDINGS))
def test_codec_reads_the_encoded_bytes_in_their_character_set(model, ending):
    d, charset, msh, body = model
    raw = build(d, charset, msh, body).encode_bytes(ending)
    parsed = Hl7v2Codec().parse(raw)
    assert_same(parsed.body, d, charset, msh, body)
    assert parsed.control_id == msh[10]


codecs_used = st.sampled_from(["", "utf-8", "latin-1", "ascii", "utf-16", "utf-32",
                               "gb18030", "shift_jis", "iso2022_jp_2", "iso8859-15"])


@SETTINGS
@given(st.text(), delimiters(), codecs_used)
def test_unescape_of_escape_is_identity(value, d, encoding):
    d = Delimiters(*d[:6], encoding)
    escaped = escape(value, d)
    assert unescape(escaped, d) == value
    # What escape writes never holds a delimiter (other than the escape character, in
    # its sequences) nor a byte that ends a segment or an MLLP frame.
    for char in (d.field, d.component, d.repetition, d.subcomponent, d.truncation,
                 "\r", "\n", "\x0b", "\x1c"):
        assert not char or char not in escaped


@SETTINGS
@given(st.text(alphabet=st.characters(codec="ascii"), max_size=30), delimiters())
def test_unescape_never_fails_on_any_text(value, d):
    unescape(value, d)


def test_undeclared_hex_escapes_fall_back_to_latin_1():
    d = Delimiters()
    assert unescape("caf\\XE9\\", d) == "café"
    assert unescape("REN\\XC3A9\\E", d) == "RENéE"
