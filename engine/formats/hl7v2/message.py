"""A lazily tokenized HL7v2 message: what codecs and mappings read.

Splitting into segments happens once; a segment is split into fields only when read,
and a field into repetitions, components and subcomponents only when those are read.
Routing (MSH, PID-3, the event type) therefore costs a few `str.split` calls, which is
why this is ours rather than hl7apy's full model (see DESIGN.md, "What things cost").

Numbering follows HL7 notation, 1-based everywhere: in MSH, field 1 is the field
separator and field 2 the encoding characters, so `MSH-9` means what the standard says.
Every value read is unescaped; `raw()` gives the text as it was sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from engine.errors import ParseError
from engine.formats.hl7v2.charsets import codec_for
from engine.formats.hl7v2.escape import Delimiters, _unescape, unescape

_SEGMENT_NAME = re.compile(r"[A-Z][A-Z0-9]{2}\Z")
# Segments whose field 1 is the field separator and field 2 the encoding characters.
HEADER_SEGMENTS = frozenset({"MSH", "FHS", "BHS"})
# Names already checked against _SEGMENT_NAME (at most 26*36*36, so bounded): a set
# look-up per segment instead of a regex match.
_VALID_NAMES: set[str] = set()
FIELD_PATH = re.compile(
    r"(?P<seg>[A-Z][A-Z0-9]{2})(?:\[(?P<segrep>\d+)\])?"
    r"(?:-(?P<field>\d+)(?:\[(?P<rep>\d+)\])?(?:\.(?P<comp>\d+)(?:\.(?P<sub>\d+))?)?)?\Z"
)


class Repetition:
    """One repetition of a field: components and subcomponents, read on demand."""

    __slots__ = ("_components", "_d", "text")

    def __init__(self, text: str, d: Delimiters) -> None:
        self.text = text
        self._d = d
        self._components: list[str] | None = None

    def components(self) -> list[str]:
        """The raw components (escapes not yet decoded)."""
        if self._components is None:
            self._components = self.text.split(self._d.component)
        return self._components

    def value(self, component: int = 1, subcomponent: int = 1) -> str:
        """The decoded value at component.subcomponent, or "" when absent. (components()
        and unescape() inlined: mappings read a few dozen values a message.)"""
        d = self._d
        comps = self._components
        if comps is None:
            comps = self._components = self.text.split(d.component)
        if component < 1 or component > len(comps):
            return ""
        comp = comps[component - 1]
        if d.subcomponent in comp:
            subs = comp.split(d.subcomponent)
            comp = subs[subcomponent - 1] if 0 < subcomponent <= len(subs) else ""
        elif subcomponent != 1:
            return ""
        esc = d.escape
        if not esc or esc not in comp:
            return comp
        return _unescape(comp, d)

    def __bool__(self) -> bool:
        return bool(self.text)

    def __repr__(self) -> str:
        return f"Repetition({self.text!r})"


class Segment:
    """One segment; fields are split from its text the first time one is read."""

    __slots__ = ("_d", "_fields", "name", "text")

    def __init__(self, text: str, d: Delimiters) -> None:
        self.text = text
        self.name = text[:3]
        self._d = d
        self._fields: list[str] | None = None

    def _split(self) -> list[str]:
        if self._fields is None:
            parts = self.text.split(self._d.field)
            if self.name in HEADER_SEGMENTS:
                # MSH-1 is the separator itself; shift so indices match the standard.
                parts.insert(1, self._d.field)
            self._fields = parts
        return self._fields

    @property
    def delimiters(self) -> Delimiters:
        """The delimiters (and character set) this segment is read with."""
        return self._d

    def __len__(self) -> int:
        """Number of fields present, not counting the segment name."""
        return len(self._split()) - 1

    def raw(self, field: int) -> str:
        """The field's text exactly as sent, or "" when absent."""
        fields = self._split()
        return fields[field] if 0 < field < len(fields) else ""

    def repetitions(self, field: int) -> list[Repetition]:
        """The field's repetitions; an empty field has none."""
        raw = self.raw(field)
        if not raw:
            return []
        if field < 3 and self.name in HEADER_SEGMENTS:
            return [Repetition(raw, _LITERAL)]
        return [Repetition(text, self._d) for text in raw.split(self._d.repetition)]

    def value(
        self, field: int, component: int = 1, subcomponent: int = 1, repetition: int = 1
    ) -> str:
        """The decoded value at field[repetition].component.subcomponent, or ""."""
        fields = self._fields or self._split()
        raw = fields[field] if 0 < field < len(fields) else ""
        if not raw:
            return ""
        if field < 3 and self.name in HEADER_SEGMENTS:
            return raw if component == 1 and repetition == 1 else ""
        d = self._d
        if d.repetition in raw:
            reps = raw.split(d.repetition)
            if not 0 < repetition <= len(reps):
                return ""
            raw = reps[repetition - 1]
        elif repetition != 1:
            return ""
        if d.component not in raw and d.subcomponent not in raw:
            return unescape(raw, d) if component == 1 and subcomponent == 1 else ""
        return Repetition(raw, d).value(component, subcomponent)

    def __repr__(self) -> str:
        return f"Segment({self.name})"


# MSH-1 and MSH-2 hold delimiters; reading them must not split or unescape anything.
_LITERAL = Delimiters("\x00", "\x01", "\x02", "", "\x03")


class Hl7Message:
    """A parsed HL7v2 message. Build with `Hl7Message.parse(text)`."""

    __slots__ = ("_by_name", "delimiters", "segments")

    def __init__(self, segments: list[Segment], delimiters: Delimiters) -> None:
        self.segments = segments
        self.delimiters = delimiters
        self._by_name: dict[str, list[Segment]] | None = None

    @classmethod
    def parse(cls, text: str) -> Hl7Message:
        """Tokenize `text`; raises ParseError naming the segment and field at fault.

        Segments may end in \\r (the standard), \\n or \\r\\n (files, some vendors); blank
        lines are ignored. MSH-18 is read here so that hex escapes decode in the declared
        character set; the MSH fields split for it are kept for the codec's reads.
        """
        text = text.lstrip("\ufeff \t\r\n\x00")
        if not text.startswith("MSH"):
            raise ParseError(
                "message does not start with an MSH segment" if text else "message is empty",
                segment="MSH", code="100"
            )
        d = read_delimiters(text)
        if "\n" in text:
            text = text.replace("\r\n", "\r").replace("\n", "\r")
        lines = text.split("\r")
        field = d.field
        msh_fields = lines[0].split(field)
        if len(msh_fields) > 17 and msh_fields[17]:
            encoding = codec_for(msh_fields[17], "".join(d[:6]))
            if encoding:
                d = Delimiters(*d[:6], encoding)
        segments: list[Segment] = []
        append = segments.append
        for number, line in enumerate(lines, start=1):
            if not line or (line[0].isspace() and not line.strip()):
                continue
            name = line[:3]
            if name not in _VALID_NAMES:
                if not _SEGMENT_NAME.match(name):
                    raise _bad_segment(number, name)
                _VALID_NAMES.add(name)
            if len(line) > 3 and line[3] != field:
                raise _bad_segment(number, name)
            append(Segment(line, d))
        msh_fields.insert(1, field)
        segments[0]._fields = msh_fields
        return cls(segments, d)

    def _index(self) -> dict[str, list[Segment]]:
        if self._by_name is None:
            index: dict[str, list[Segment]] = {}
            for seg in self.segments:
                index.setdefault(seg.name, []).append(seg)
            self._by_name = index
        return self._by_name

    def segment(self, name: str) -> Segment | None:
        """The first segment called `name`, or None."""
        found = self._index().get(name)
        return found[0] if found else None

    def all(self, name: str) -> list[Segment]:
        """Every segment called `name`, in message order."""
        return self._index().get(name, [])

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)

    def value(self, path: str) -> str:
        """Read a value by HL7 path: `PID-5.1`, `PID-3[2].4`, `OBX[3]-5`, `MSH-9.2`.

        Missing segments, fields or components read as "" (HL7 has no null on read).
        """
        m = FIELD_PATH.match(path.strip())
        if m is None:
            raise ValueError(
                f"not an HL7 field path: {path!r} (expected e.g. PID-3.1 or OBX[2]-5)"
            )
        segs = self.all(m["seg"])
        index = int(m["segrep"] or 1)
        if not 0 < index <= len(segs):
            return ""
        seg = segs[index - 1]
        if m["field"] is None:
            return seg.text
        return seg.value(
            int(m["field"]),
            int(m["comp"] or 1),
            int(m["sub"] or 1),
            int(m["rep"] or 1),
        )

    def encode(self, segment_end: str = "\r") -> str:
        """The message text with standard segment terminators."""
        return segment_end.join(seg.text for seg in self.segments) + segment_end

    @property
    def encoding(self) -> str:
        """The Python codec MSH-18 names ("" when undeclared): how to encode replies."""
        return self.delimiters.encoding

    # Routing fields, read by the codec without walking the rest of the message.
    @property
    def message_type(self) -> str:
        msh = self.segments[0]
        code, event = msh.value(9, 1), msh.value(9, 2)
        return f"{code}^{event}" if event else code

    @property
    def control_id(self) -> str:
        return self.segments[0].value(10)

    @property
    def version(self) -> str:
        return self.segments[0].value(12)


def _bad_segment(number: int, name: str) -> ParseError:
    return ParseError(
        f"segment {number} does not begin with a segment name and field separator",
        segment=name if _SEGMENT_NAME.match(name) else None,
        code="100",
    )


def _unusable(char: str) -> bool:
    """A delimiter must be ASCII punctuation: a letter, digit, space or control character
    would be read as data, and a non-ASCII one has no single byte to find segments and
    MSH-18 by before the message is decoded."""
    return not (char.isascii() and char.isprintable()) or char.isalnum() or char == " "


def read_delimiters(text: str) -> Delimiters:
    """Read MSH-1 and MSH-2 (or FHS/BHS-1 and -2); a message may use any delimiters it
    declares there. Two to five encoding characters: component, repetition, escape,
    subcomponent and (v2.7+) truncation, each distinct ASCII punctuation."""
    if len(text) < 8:
        raise ParseError("MSH segment is truncated before its encoding characters",
                         segment="MSH", field=2, code="100")
    field = text[3]
    if _unusable(field):
        raise ParseError(f"MSH-1 field separator {field!r} is not a valid delimiter",
                         segment="MSH", field=1, code="102")
    end = text.find(field, 4)
    encoding = text[4:end] if end >= 0 else text[4:]
    if "\r" in encoding or "\n" in encoding:  # MSH ends right after MSH-2
        encoding = encoding.split("\r", 1)[0].split("\n", 1)[0]
    if not 2 <= len(encoding) <= 5:
        raise ParseError("MSH-2 must hold the encoding characters (usually ^~\\&)",
                         segment="MSH", field=2, code="102")
    if len(set(encoding + field)) != len(encoding) + 1 or any(map(_unusable, encoding)):
        raise ParseError("MSH-2 encoding characters must be distinct punctuation",
                         segment="MSH", field=2, code="102")
    # A delimiter the message does not declare becomes NUL, which never occurs in text.
    component, repetition, esc, sub = encoding.ljust(4, "\x00")[:4]
    return Delimiters(field, component, repetition, esc, sub, encoding[4:])


def read_header(text: str) -> Segment:
    """The header segment (MSH, FHS or BHS) that `text` starts with, alone, carrying its
    delimiters and, for MSH, the character set MSH-18 names. For reading just the header
    of something that is not (or not yet) a whole message: the MSH of a message that
    failed to parse, the envelope of a batch. Raises ParseError on bad delimiters."""
    d = read_delimiters(text)
    end = len(text)
    for stop in ("\r", "\n"):
        found = text.find(stop, 0, end)
        if found >= 0:
            end = found
    line = text[:end]
    segment = Segment(line, d)
    if line[:3] == "MSH":
        charset = segment.raw(18)
        encoding = codec_for(charset, "".join(d[:6])) if charset else ""
        if encoding:
            segment = Segment(line, Delimiters(*d[:6], encoding))
    return segment
