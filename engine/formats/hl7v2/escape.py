"""HL7v2 escape sequences (v2.5 chapter 2.7): decoding on read, encoding on write.

Decoding is on the hot path for every field a mapping reads, so the common case (no
escape character in the value) returns the string untouched.
"""

from __future__ import annotations

from typing import NamedTuple


class Delimiters(NamedTuple):
    """The five delimiters a message declares in MSH-1 and MSH-2 (never assumed)."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding_characters(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent


DEFAULT = Delimiters()


def unescape(value: str, d: Delimiters) -> str:
    """Replace escape sequences with the characters they stand for.

    \\H\\ and \\N\\ (highlighting) carry no text and are dropped; \\.br\\ becomes a line
    break; unknown or character-set sequences are kept as they were so nothing is lost.
    """
    esc = d.escape
    if not esc or esc not in value:
        return value
    out: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch != esc:
            j = value.find(esc, i)
            if j < 0:
                out.append(value[i:])
                break
            out.append(value[i:j])
            i = j
            continue
        end = value.find(esc, i + 1)
        if end < 0:  # a lone escape character: keep it literally
            out.append(value[i:])
            break
        seq = value[i + 1 : end]
        out.append(_decode_sequence(seq, d))
        i = end + 1
    return "".join(out)


def _decode_sequence(seq: str, d: Delimiters) -> str:
    if seq == "F":
        return d.field
    if seq == "S":
        return d.component
    if seq == "T":
        return d.subcomponent
    if seq == "R":
        return d.repetition
    if seq == "E":
        return d.escape
    if seq in ("H", "N"):
        return ""
    if seq == ".br":
        return "\n"
    if seq[:1] == "X" and len(seq) > 1 and len(seq) % 2 == 1:
        try:
            return bytes.fromhex(seq[1:]).decode("latin-1")
        except ValueError:
            pass
    return d.escape + seq + d.escape


def escape(value: str, d: Delimiters) -> str:
    """Escape the delimiters and line breaks in a value for writing into a message."""
    specials = (d.escape, d.field, d.component, d.subcomponent, d.repetition, "\r", "\n")
    if not any(c in value for c in specials if c):
        return value
    e = d.escape
    table = {
        d.escape: f"{e}E{e}",
        d.field: f"{e}F{e}",
        d.component: f"{e}S{e}",
        d.subcomponent: f"{e}T{e}",
        d.repetition: f"{e}R{e}",
        "\r": f"{e}X0D{e}",
        "\n": f"{e}.br{e}",
    }
    return "".join(table.get(c, c) for c in value)
