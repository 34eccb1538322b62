"""Building HL7v2 messages value by value, by HL7 path, for mappings that emit HL7v2.

    b = MessageBuilder()
    b.set("MSH-9.1", "ADT"); b.set("MSH-9.2", "A28")
    b.set("PID-3[1].1", "12345"); b.set("PID-3[1].4", "HOSP")
    b.set("OBX[2]-5", "7.2")
    text = b.encode()

Values are escaped on the way out, so a mapping writes plain text and never thinks
about delimiters. Segments come out in the order they were first touched; MSH is always
first and its MSH-1/MSH-2 come from the delimiters (four encoding characters, or five
with a v2.7 truncation character).

A character set is chosen by its MSH-18 name (`MessageBuilder(charset="8859/1")`, or by
setting MSH-18): it is written into MSH-18, control characters are hex-escaped in it, and
`encode_bytes` encodes in it, raising ValueError for a character it cannot carry (there
is no \\X form for such a character: its bytes do not exist in that set).
"""

from __future__ import annotations

import re

from engine.formats.hl7v2.charsets import codec_for, encode_text
from engine.formats.hl7v2.escape import DEFAULT, Delimiters, escape

_PATH = re.compile(
    r"(?P<seg>[A-Z][A-Z0-9]{2})(?:\[(?P<segrep>\d+)\])?"
    r"-(?P<field>\d+)(?:\[(?P<rep>\d+)\])?(?:\.(?P<comp>\d+)(?:\.(?P<sub>\d+))?)?\Z"
)

# field -> repetition -> component -> subcomponent -> value, all 1-based
_Field = dict[int, dict[int, dict[int, str]]]


class MessageBuilder:
    def __init__(self, delimiters: Delimiters = DEFAULT, charset: str = "") -> None:
        self.delimiters = delimiters
        self._segments: list[tuple[str, dict[int, _Field]]] = []
        self._index: dict[tuple[str, int], dict[int, _Field]] = {}
        if charset:
            if not codec_for(charset):
                raise ValueError(f"{charset!r} is not a character set of HL7 table 0211 "
                                 "(e.g. UNICODE UTF-8, 8859/1, ASCII)")
            self.set("MSH-18", charset)

    def segment(self, name: str, occurrence: int = 1) -> dict[int, _Field]:
        """The fields of the `occurrence`-th segment called `name`, creating it (and any
        earlier occurrences) when missing."""
        for n in range(1, occurrence + 1):
            if (name, n) not in self._index:
                fields: dict[int, _Field] = {}
                self._index[(name, n)] = fields
                self._segments.append((name, fields))
        return self._index[(name, occurrence)]

    def set(self, path: str, value: str | None) -> None:
        """Set one value by HL7 path (`PID-5.1`, `PID-3[2].4.1`, `OBX[3]-5`); None or ""
        leaves it empty. MSH-1 and MSH-2 cannot be set: they are the delimiters."""
        m = _PATH.match(path)
        if m is None:
            raise ValueError(f"not an HL7 field path: {path!r} (expected e.g. PID-5.1)")
        name, field = m["seg"], int(m["field"])
        if name == "MSH" and field in (1, 2):
            raise ValueError("MSH-1 and MSH-2 are the delimiters; give them to the builder")
        if not value:
            return
        fields = self.segment(name, int(m["segrep"] or 1))
        rep, comp, sub = int(m["rep"] or 1), int(m["comp"] or 1), int(m["sub"] or 1)
        fields.setdefault(field, {}).setdefault(rep, {}).setdefault(comp, {})[sub] = value

    @property
    def encoding(self) -> str:
        """The Python codec MSH-18 (as set so far) names; "" when undeclared (UTF-8)."""
        declared = self._index.get(("MSH", 1), {}).get(18, {}).get(1, {}).get(1, {}).get(1, "")
        return codec_for(declared, "") if declared else ""  # a plain value, not raw text

    def encode_bytes(self, segment_end: str = "\r") -> bytes:
        """The message encoded in its MSH-18 character set (UTF-8 when undeclared).

        Raises ValueError naming the first character the set cannot carry."""
        text = self.encode(segment_end)
        try:
            return encode_text(text, self.encoding)
        except UnicodeEncodeError as exc:
            bad = exc.object[exc.start : exc.end]
            raise ValueError(
                f"{bad!r} cannot be written in MSH-18's character set ({self.encoding}); "
                "declare UNICODE UTF-8 or leave the character out"
            ) from None

    def encode(self, segment_end: str = "\r") -> str:
        d = self.delimiters
        encoding = self.encoding
        if encoding != d.encoding:
            d = Delimiters(*d[:6], encoding)
        if ("MSH", 1) not in self._index:
            self.segment("MSH")
        ordered = sorted(self._segments, key=lambda s: s[0] != "MSH")
        lines = []
        for name, fields in ordered:
            if name == "MSH":
                parts = ["MSH", d.encoding_characters.replace("\x00", "")]
                parts += [_field(fields.get(n, {}), d) for n in range(3, _last(fields) + 1)]
                lines.append(d.field.join(parts))
            else:
                parts = [name] + [_field(fields.get(n, {}), d)
                                  for n in range(1, _last(fields) + 1)]
                lines.append(d.field.join(parts))
        return segment_end.join(lines) + segment_end


def _field(reps: dict[int, dict[int, dict[int, str]]], d: Delimiters) -> str:
    return d.repetition.join(
        d.component.join(
            d.subcomponent.join(escape(subs.get(s, ""), d) for s in range(1, _last(subs) + 1))
            for c, subs in ((c, comps.get(c, {})) for c in range(1, _last(comps) + 1))
        )
        for comps in (reps.get(r, {}) for r in range(1, _last(reps) + 1))
    )


def _last(numbered: dict[int, object]) -> int:
    return max(numbered, default=0)
