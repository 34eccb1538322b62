"""MSH-18 character sets (HL7 table 0211): which Python codec reads a message's bytes.

Why a module of its own: the character set decides three things that must agree, the
decoding of the bytes into text (`decode_text`), the decoding of `\\Xhh...\\` hex escapes
(bytes in the declared set, not always Latin-1) and the encoding of what we write back
(ACKs, built messages). All three ask `codec_for`.

Rules, in the order they apply:

- An empty MSH-18 is "undeclared". The standard's default is 7-bit ASCII, but senders
  that leave it empty send UTF-8 or Latin-1 in practice, so undeclared text is read as
  UTF-8 and, when that fails, as Latin-1 (which maps every byte: nothing is ever
  unreadable). Hex escapes in undeclared messages follow the same rule.
- A declared set whose bytes do not decode (many senders declare ASCII and send
  Latin-1) falls back to Latin-1 too, for the same reason.
- MSH-18 repeats: the first repetition is the default set, the others are alternates
  switched to with ISO 2022 escape sequences (MSH-20). When an alternate is one of the
  ISO 2022 Japanese/Chinese/Korean sets, the whole message is read with Python's
  `iso2022_jp_2`, which follows those escape sequences itself.
- Values outside table 0211 that Python knows by name (`UTF-8`, `ISO-8859-1`,
  `windows-1252`) are honoured, because senders write them.
- Text in UTF-16/UTF-32 is recognised by its byte-order mark or by the NUL pattern of
  "MSH", since MSH-18 cannot be read before the bytes are decoded.
"""

from __future__ import annotations

import codecs
from functools import lru_cache

# HL7 table 0211 (v2.3 to v2.8) and the Python codec for each. CNS 11643 has no codec
# in Python and reads as undeclared.
TABLE_0211: dict[str, str] = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "8859/1": "latin-1",
    "ISO IR100": "latin-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "ISO IR14": "shift_jis",  # JIS X 0201: ASCII plus half-width katakana
    "ISO IR87": "iso2022_jp",  # JIS X 0208 kanji, ISO 2022 escapes
    "ISO IR159": "iso2022_jp_1",  # JIS X 0212 supplementary kanji
    "ISO IR58": "gb2312",
    "GB 18030-2000": "gb18030",
    "GB 18030": "gb18030",
    "KS X 1001": "euc_kr",
    "BIG-5": "big5",
    "UNICODE": "utf-16",
    "UNICODE UTF-8": "utf-8",
    "ISO IR192": "utf-8",
    "UNICODE UTF-16": "utf-16",
    "UNICODE UTF-32": "utf-32",
}

# Alternate sets reached through ISO 2022 escape sequences (MSH-18 repetitions 2..n).
_ISO2022_ALTERNATES = frozenset({"ISO IR87", "ISO IR159", "ISO IR58", "ISO IR149", "KS X 1001"})

# The MSH-18 name we write for a codec (builders pick the set by Python codec name too).
_NAME_OF = {
    "ascii": "ASCII",
    "latin-1": "8859/1",
    "iso8859-15": "8859/15",
    "utf-8": "UNICODE UTF-8",
    "utf-16": "UNICODE UTF-16",
    "utf-32": "UNICODE UTF-32",
}

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_WIDE_PREFIXES = ("utf-1", "utf-3")  # utf-16*, utf-32*
_WIDE_MSH = (
    ("MSH".encode("utf-32-le"), "utf-32-le"),
    ("MSH".encode("utf-32-be"), "utf-32-be"),
    ("MSH".encode("utf-16-le"), "utf-16-le"),
    ("MSH".encode("utf-16-be"), "utf-16-be"),
)


@lru_cache(maxsize=256)
def codec_for(msh18: str, delimiters: str = "|^~\\&") -> str:
    """The Python codec for the text of MSH-18 ("" when undeclared or unknown).

    `msh18` is the field as sent (repetitions included); `delimiters` is MSH-1 followed
    by MSH-2 (field, component, repetition, escape, subcomponent, truncation), so it is split
    and its delimiter escapes read like any other. Cached: the hot path pays a look-up.
    """
    field, component, repetition, esc, sub, truncation = (delimiters + "\x00" * 6)[:6]
    reps = []
    for rep in msh18.split(repetition):
        name = rep.split(component, 1)[0]
        if esc != "\x00" and esc in name:
            for code, char in (("F", field), ("S", component), ("R", repetition),
                               ("T", sub), ("P", truncation), ("E", esc)):
                name = name.replace(f"{esc}{code}{esc}", char)
        reps.append(name.strip().upper())
    if any(r in _ISO2022_ALTERNATES for r in reps[1:]):
        return "iso2022_jp_2"
    first = reps[0] if reps else ""
    if not first:
        return ""
    known = TABLE_0211.get(first)
    if known is not None:
        return known
    if len(first) > 40 or not first.isascii() or not first.isprintable():
        return ""
    try:
        return codecs.lookup(first).name
    except (LookupError, ValueError):
        return ""


def charset_name(codec: str) -> str:
    """The table 0211 name to write in MSH-18 for a Python codec name ("" for undeclared)."""
    if not codec:
        return ""
    name = codecs.lookup(codec).name
    if name in _NAME_OF:
        return _NAME_OF[name]
    for hl7_name, python_name in TABLE_0211.items():
        if codecs.lookup(python_name).name == name:
            return hl7_name
    raise ValueError(f"{codec!r} has no HL7 table 0211 name; use e.g. utf-8 or latin-1")


def declared_codec(raw: bytes) -> str:
    """The codec MSH-18 of these (ASCII-compatible) bytes declares; "" when none.

    Reads only the first segment; counting separators first keeps the common case (no
    MSH-18) to one scan of the MSH line.
    """
    if raw[:3] != b"MSH" or len(raw) < 5:
        return ""
    end = raw.find(b"\r")
    newline = raw.find(b"\n", 0, end if end >= 0 else len(raw))
    if newline >= 0:
        end = newline
    line = raw[:end] if end >= 0 else raw
    sep = line[3:4]
    if line.count(sep) < 17:
        return ""
    parts = line.split(sep, 18)
    delimiters = (sep + parts[1][:5]).decode("latin-1")
    return codec_for(parts[17].decode("latin-1"), delimiters)


def sniff_wide(raw: bytes) -> str:
    """The codec for bytes that start with a byte-order mark or a wide "MSH"; else ""."""
    for mark, codec in _BOMS:
        if raw.startswith(mark):
            return codec
    for prefix, codec in _WIDE_MSH:
        if raw.startswith(prefix):
            return codec
    return ""


def decode_text(raw: bytes) -> str:
    """Decode a message using the character set it declares in MSH-18.

    Undeclared or wrong (many senders declare ASCII and send Latin-1) falls back to
    Latin-1, which maps every byte, so a bad byte never makes a message unreadable.
    """
    if raw[:3] == b"MSH":
        encoding = declared_codec(raw)
    else:
        encoding = sniff_wide(raw) or declared_codec(raw.lstrip(b" \t\r\n"))
    if is_wide(encoding) and raw[:3] == b"MSH":
        encoding = ""  # declared wide but sent one byte per character: the bytes win
    try:
        return raw.decode(encoding or "utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def decode_hex(hex_digits: str, codec: str) -> str | None:
    """The text of a `\\Xhh...\\` escape: its bytes read in the message's character set.

    None when the digits are not hex (the caller keeps the sequence as it was). Bytes
    the set cannot decode fall back to Latin-1, as whole messages do. UTF-16/32 escapes
    without a byte-order mark are big-endian, the Unicode default.
    """
    if not hex_digits or len(hex_digits) % 2:
        return None
    try:
        data = bytes.fromhex(hex_digits)
    except ValueError:
        return None
    codec = _hex_codec(codec)
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return data.decode("latin-1")


def encode_hex(text: str, codec: str) -> str:
    """Hex digits of `text` in the message's character set (for `\\Xhh\\` on write)."""
    return text.encode(_hex_codec(codec)).hex().upper()


@lru_cache(maxsize=64)
def _hex_codec(codec: str) -> str:
    if not codec:
        return "utf-8"
    name = codecs.lookup(codec).name
    if name in ("utf-16", "utf-32"):
        return name + "-be"
    return codec


def is_wide(codec: str) -> bool:
    """UTF-16 or UTF-32 in any byte order."""
    return codec[:5] in _WIDE_PREFIXES


def reply_codec(declared: str, raw: bytes) -> str:
    """The codec to answer `raw` in: the one it declares, unless it declares UTF-16/32 and
    was sent one byte per character (then its bytes, read as UTF-8, are the truth)."""
    if is_wide(declared) and not sniff_wide(raw):
        return ""
    return declared


def encode_text(text: str, codec: str, errors: str = "strict") -> bytes:
    """Encode a message's text in its declared set ("" = undeclared, written as UTF-8).

    UTF-16/32 are written with a byte-order mark so a reader can find "MSH" again.
    """
    return text.encode(codec or "utf-8", errors)
