"""HL7v2 escape sequences (v2.5+ chapter 2.7): decoding on read, encoding on write.

Decoding is on the hot path for every field a mapping reads, so the common case (no
escape character in the value) returns the string untouched.

What each sequence reads as (`unescape`):

- `\\F\\ \\S\\ \\T\\ \\R\\ \\E\\`: the field, component, subcomponent, repetition and escape
  delimiters; `\\P\\`: the truncation character (v2.7, fifth encoding character).
  A sequence for a delimiter the message does not declare is kept as sent.
- `\\Xhh...\\`: the bytes hh... read in the message's character set (MSH-18, carried
  in `Delimiters.encoding`; see charsets.py), so `REN\\XC3A9\\E` is "RENéE" in UTF-8.
- `\\H\\` and `\\N\\` (highlight on/off) carry no text and read as "".
- Formatting commands (meant for FT fields; rendered as plain text, wherever they occur,
  because mappings want text, not markup):
  `\\.br\\` a line break; `\\.sp n\\` ends the line and skips n lines, so n+1 line breaks
  (`\\.sp\\` skips one: two breaks), as the standard words it and as the mapping library
  renders FT; `\\.ce\\` a line break (centering has no meaning without a page width);
  `\\.sk n\\` n spaces; `\\.ti n\\` n spaces (a temporary indent of this line);
  `\\.in n\\` n spaces now and after every later line break of the value (a lasting
  indent); `\\.fi\\` and `\\.nf\\` (wrap mode) read as "". A malformed number keeps the
  command as sent; counts are capped at 100.
- `\\Zxx\\` (locally defined), `\\Cxxyy\\` and `\\Mxxyyzz\\` (ISO 2022 character set
  switches) and anything unknown are kept exactly as sent, escape characters
  included, so nothing is lost and a mapping can still see them.

What `escape` writes: each delimiter as its sequence (`\\P\\` only when a truncation
character is declared), a line feed as `\\.br\\` (as `\\X0A\\` when "." is one of the
delimiters, which would cut `\\.br\\` apart), and every other control character
(CR, the MLLP framing bytes VT and FS, NUL ...) as `\\Xhh\\` in the message's character
set, since a raw CR would end the segment and VT/FS would break the MLLP frame. Tab is
left alone. Ordinary text, non-ASCII included, is never hex-escaped: a character the
declared set cannot carry has no bytes in that set, so \\X cannot help; encoding the
finished message (`charsets.encode_text`, `MessageBuilder.encode_bytes`) reports it.
`unescape(escape(v, d), d) == v` for every string v and every valid `d`.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from engine.formats.hl7v2.charsets import decode_hex, encode_hex


class Delimiters(NamedTuple):
    """The delimiters a message declares in MSH-1 and MSH-2 (never assumed), plus the
    character set its hex escapes are read in.

    A delimiter the message does not declare is "\\x00" (which never occurs in text);
    `truncation` is "" before v2.7. `encoding` is the Python codec named by MSH-18, ""
    when undeclared. It lives here because every value read already carries this object
    to `unescape`, so the character set reaches hex escapes at no extra cost.
    """

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str = ""
    encoding: str = ""

    @property
    def encoding_characters(self) -> str:
        """MSH-2 as it is written (undeclared ones appear as NUL; callers strip them)."""
        return (
            self.component + self.repetition + self.escape + self.subcomponent + self.truncation
        )


DEFAULT = Delimiters()
_UNDECLARED = ("", "\x00")


def unescape(value: str, d: Delimiters) -> str:
    """Replace escape sequences with the text they stand for (see the module docstring)."""
    esc = d.escape
    if not esc or esc not in value:
        return value
    return _unescape(value, d)


def _unescape(value: str, d: Delimiters) -> str:
    esc = d.escape
    out: list[str] = []
    indent = 0
    i = 0
    n = len(value)
    while i < n:
        j = value.find(esc, i)
        if j < 0:
            out.append(value[i:])
            break
        if j > i:
            out.append(value[i:j])
        end = value.find(esc, j + 1)
        if end < 0:  # a lone escape character: keep it literally
            out.append(value[j:])
            break
        seq = value[j + 1 : end]
        text = _SIMPLE.get(seq)
        if text is not None:
            decoded = _delimiter(text, d)
            out.append(esc + seq + esc if decoded is None else decoded)
        elif seq[:1] == ".":
            decoded, indent = _format(seq, indent)
            out.append(esc + seq + esc if decoded is None else decoded)
        elif seq[:1] == "X":
            decoded = decode_hex(seq[1:], d.encoding)
            out.append(esc + seq + esc if decoded is None else decoded)
        else:
            out.append(esc + seq + esc)
        i = end + 1
    return "".join(out)


# Sequence -> the Delimiters field it stands for ("" for the highlighting pair).
# A count in a formatting command is capped, so `\\.sp 999999999\\` cannot make a value
# of a gigabyte out of eleven characters.
MAX_FORMAT_COUNT = 100

_SIMPLE = {
    "F": "field",
    "S": "component",
    "T": "subcomponent",
    "R": "repetition",
    "E": "escape",
    "P": "truncation",
    "H": "",
    "N": "",
}


def _delimiter(name: str, d: Delimiters) -> str | None:
    if not name:
        return ""
    char: str = getattr(d, name)
    return None if char in _UNDECLARED else char


def _format(seq: str, indent: int) -> tuple[str | None, int]:
    """A formatting command as plain text, and the lasting indent after it."""
    command, arg = seq[1:3], seq[3:].strip()
    if command in ("fi", "nf") and not arg:
        return "", indent
    if command in ("br", "ce") and not arg:
        return "\n" + " " * indent, indent
    if command not in ("sp", "sk", "ti", "in"):
        return None, indent
    try:
        number = int(arg) if arg else 1
    except ValueError:
        return None, indent
    number = max(-MAX_FORMAT_COUNT, min(number, MAX_FORMAT_COUNT))
    if command == "sp":
        return ("\n" + " " * indent) * (max(number, 0) + 1), indent
    if command == "in":
        indent = max(number, 0)
        return " " * indent, indent
    return " " * max(number, 0), indent  # sk, ti


def escape(value: str, d: Delimiters) -> str:
    """Escape delimiters, line breaks and control characters for writing into a message."""
    pattern, table = _escaper(d)
    if pattern.search(value) is None:
        return value
    return pattern.sub(lambda m: table[m.group()], value)


_ESCAPERS: dict[Delimiters, tuple[re.Pattern[str], dict[str, str]]] = {}
_CONTROLS = [chr(c) for c in range(32) if chr(c) not in "\t\n"]


def _escaper(d: Delimiters) -> tuple[re.Pattern[str], dict[str, str]]:
    """The pattern of characters needing escape under `d`, and what each becomes."""
    found = _ESCAPERS.get(d)
    if found is not None:
        return found
    e = d.escape
    table: dict[str, str] = {c: f"{e}X{encode_hex(c, d.encoding)}{e}" for c in _CONTROLS}
    if "." in d[:6]:  # "." as a delimiter would cut \.br\ apart: say it in hex
        table["\n"] = f"{e}X{encode_hex(chr(10), d.encoding)}{e}"
    else:
        table["\n"] = f"{e}.br{e}"
    names = (
        (d.escape, "E"),
        (d.field, "F"),
        (d.component, "S"),
        (d.subcomponent, "T"),
        (d.repetition, "R"),
        (d.truncation, "P"),
    )
    for char, code in names:
        if char not in _UNDECLARED:
            table[char] = f"{e}{code}{e}"
    if e in _UNDECLARED:
        # No escape character declared: nothing can be escaped, so delimiters and breaks
        # become spaces (lossy, but the message stays well formed).
        table = {c: " " for c in table if c not in _UNDECLARED}
        table.update({c: " " for c in (d.field, d.component, d.subcomponent, d.repetition)
                      if c not in _UNDECLARED})
    pattern = re.compile("[" + "".join(re.escape(c) for c in sorted(table)) + "]")
    if len(_ESCAPERS) < 256:
        _ESCAPERS[d] = (pattern, table)
    return pattern, table
