"""X12 tokenizing: delimiters read from the ISA segment, never assumed.

The ISA is fixed width (106 characters with its terminator): the element separator is
its 4th character, the repetition separator is ISA11, the component separator is ISA16
and the segment terminator is the character right after ISA16. The delimiters are found
by walking the ISA's 16 element separators rather than by fixed offsets, so an ISA whose
widths are wrong is still read (and its widths reported as a problem, see
`isa_width_errors`). Line breaks after terminators (or a line break as the terminator)
are tolerated, and so are the layouts of mainframe and VAN files: when the terminator
is not a line break, a line break anywhere is dropped (files wrapped at 80 or 132
columns, the ISA included) and spaces before a segment are padding (fixed-length
records). Whitespace, NULs and a DOS end-of-file mark (Ctrl-Z) between or after
interchanges are skipped; anything else after an IEA is handed on as one `TRAILING`
segment for the reader to refuse, never a crash and never silently dropped.
"""

from __future__ import annotations

import itertools
import mmap
from collections.abc import Iterator
from typing import NamedTuple

from engine.errors import ParseError
from engine.formats.base import opening

ISA_LENGTH = 106
# Widths of ISA01..ISA16, fixed by the standard.
ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)
# TA105 note code for a wrong value or width of each ISA element (ISA01..ISA16). 5010
# has no code of its own for the repetition separator (ISA11): X12 answers 022, invalid
# control structure (RFI 1497; 032 came with 5042).
ISA_NOTE_CODES = ("010", "011", "012", "013", "005", "006", "007", "008", "014", "015",
                  "022", "017", "018", "019", "020", "027")
_SKIP = "\ufeff \t\r\n\x00\x1a"
_SKIP_BYTES = (b" ", b"\t", b"\r", b"\n", b"\x00", b"\x1a", b"\xef", b"\xbb", b"\xbf")
TRAILING = ""  # the id of the segment standing for what follows an IEA and is no ISA
_BREAKS = str.maketrans("", "", "\r\n")
_PADDING = ("", " ", "\t")  # what starts a piece that is no segment or is padded
Buffer = bytes | mmap.mmap | memoryview  # a memoryview: a file read past its routing line


class Delimiters(NamedTuple):
    element: str
    repetition: str
    component: str
    segment: str


class Segment:
    """One segment: its id and its elements (element 1 is `elements[1]`, as X12 counts)."""

    __slots__ = ("delimiters", "elements")

    def __init__(self, elements: list[str], delimiters: Delimiters) -> None:
        self.elements = elements
        self.delimiters = delimiters

    @property
    def id(self) -> str:
        return self.elements[0]

    def __len__(self) -> int:
        return len(self.elements) - 1

    def element(self, index: int, component: int = 0, repetition: int = 1) -> str:
        """Element `index` (1-based), its `component` (1-based, 0 for the whole element)
        of its `repetition` (1-based); "" when absent."""
        if index >= len(self.elements) or index < 1:
            return ""
        value = self.elements[index]
        if self.id == "ISA":
            return value if component == 0 else (value if component == 1 else "")
        if repetition != 1 or (self.delimiters.repetition
                               and self.delimiters.repetition in value):
            reps = value.split(self.delimiters.repetition) if self.delimiters.repetition \
                else [value]
            value = reps[repetition - 1] if repetition <= len(reps) else ""
        if component == 0:
            return value
        comps = value.split(self.delimiters.component)
        return comps[component - 1] if component <= len(comps) else ""

    def text(self) -> str:
        return self.delimiters.element.join(self.elements)

    def __repr__(self) -> str:
        return f"Segment({self.text()!r})"


def _strip(text: str) -> str:
    return text.lstrip(_SKIP)


def read_delimiters(text: str) -> tuple[Delimiters, list[str]]:
    """The delimiters of the ISA at the start of `text`, and the ISA's 17 elements
    (ISA and ISA01..ISA16); ParseError when there is no readable ISA."""
    if not text.startswith("ISA") or len(text) < 4:
        raise ParseError("an X12 interchange starts with an ISA segment", segment="ISA",
                         code="022")
    element = text[3]
    if element.isalnum() or element in " \r\n":
        raise ParseError(f"ISA element separator {element!r} is not usable", segment="ISA",
                         code="026")
    position = 3  # the separator before ISA01; 15 more to the one before ISA16
    for _ in range(15):
        position = text.find(element, position + 1)
        if position < 0:
            raise ParseError("ISA segment is incomplete (fewer than 16 elements)",
                             segment="ISA", code="023")
    if position + 2 >= len(text):
        raise ParseError("ISA segment is incomplete (no ISA16 or terminator)",
                         segment="ISA", code="023")
    component = text[position + 1]
    terminator = text[position + 2]
    if terminator.isalnum() or terminator in (element, component, " "):
        raise ParseError(f"segment terminator {terminator!r} after ISA16 is not usable",
                         segment="ISA", code="004")
    elements = text[:position + 2].split(element)
    repetition = elements[11] if len(elements[11]) == 1 and not elements[11].isalnum() \
        else ""
    return Delimiters(element, repetition, component, terminator), elements


def isa_delimiters(head: str) -> tuple[Delimiters, list[str]]:
    """`read_delimiters` of the text starting an interchange, read again without line
    breaks when they fall inside the ISA (a file wrapped at a fixed width)."""
    delimiters, elements = read_delimiters(head)
    if any("\r" in value or "\n" in value for value in elements):
        return read_delimiters(head.translate(_BREAKS))
    return delimiters, elements


_FIXED_SEPARATORS = (3, 6, 17, 20, 31, 34, 50, 53, 69, 76, 81, 83, 89, 99, 101, 103)


def fixed_isa(text: str) -> Segment | None:
    """An ISA whose delimiters cannot be used (a terminator equal to the component
    separator, a letter as element separator) read at the fixed offsets of its 16
    elements, so its sender can still be told why in a TA1 (written with `*` `^` `:`
    `~`); None when the separators are not where the fixed widths put them."""
    text = text.lstrip(_SKIP)
    if not text.startswith("ISA") or len(text) < ISA_LENGTH - 1:
        return None
    separator = text[3]
    if any(text[at] != separator for at in _FIXED_SEPARATORS):
        return None
    bounds = (*_FIXED_SEPARATORS, 105)
    elements = ["ISA", *(text[a + 1:b] for a, b in itertools.pairwise(bounds))]
    if not all(value.isprintable() and not set(value) & set("*^:~")
               for value in elements[1:11] + elements[12:16]):
        return None  # its answer would not be X12 either
    return Segment(elements, Delimiters("*", "^", ":", "~"))


def isa_width_errors(elements: list[str]) -> list[tuple[int, str]]:
    """(ISA element number, TA105 note code) for each ISA element not of its fixed
    width."""
    return [(i, ISA_NOTE_CODES[i - 1]) for i, width in enumerate(ISA_WIDTHS, start=1)
            if i >= len(elements) or len(elements[i]) != width]


def tokenize(text: str) -> list[Segment]:
    """Every segment of `text` (one or more interchanges, each with its own delimiters),
    line breaks around terminators dropped."""
    return [segment for segment, _, _ in iter_segments(text.encode("utf-8"))]


def iter_segments(buffer: Buffer, block: int = 1 << 18
                  ) -> Iterator[tuple[Segment, int, int]]:
    """Each segment of `buffer` (bytes, or an mmap of a file far larger than memory
    should hold) with its byte span, a block at a time: each interchange's delimiters
    are read from its own ISA; text is UTF-8, else Latin-1."""
    size = len(buffer)
    position = _skip(buffer, 0, size)
    delimiters: Delimiters | None = None
    while position < size:
        head = bytes(buffer[position:position + 512])
        try:
            delimiters, _ = isa_delimiters(decode(head))
        except ParseError:
            if delimiters is None:
                raise
            yield Segment([TRAILING], delimiters), position, size
            return
        # a delimiter beyond ASCII is split on as the bytes it was read from
        terminator = delimiters.segment.encode(_encoding(head))
        step = len(terminator)
        unwrap = delimiters.segment not in "\r\n"
        ended = False
        while position < size and not ended:
            chunk = bytes(buffer[position:position + block])
            while position + len(chunk) < size and terminator not in chunk:
                chunk = bytes(buffer[position:position + 2 * len(chunk)])  # a huge segment
            if position + len(chunk) < size:
                chunk = chunk[:chunk.rfind(terminator) + len(terminator)]
            offset = position
            for piece in _pieces(chunk, terminator):
                start, offset = offset, offset + len(piece) + step
                text = decode(piece) if not isinstance(piece, str) else piece
                if not unwrap:
                    text = text.strip("\r\n")
                elif "\n" in text or "\r" in text:
                    text = text.translate(_BREAKS)
                if text[:1] in _PADDING:
                    text = text.lstrip(" \t")
                    if not text.strip():
                        continue
                segment = Segment(text.split(delimiters.element), delimiters)
                yield segment, start, min(offset, size)
                if segment.id == "IEA":
                    ended = True
                    break
            position = offset if ended else position + len(chunk)
        position = _skip(buffer, position, size)


def _pieces(chunk: bytes, terminator: bytes) -> list[str] | list[bytes]:
    """A block split at its terminators: as text when it is ASCII (one decode, and
    characters are bytes, so spans stay right), else as bytes decoded piece by piece."""
    if chunk.isascii() and terminator.isascii():
        return chunk.decode("ascii").split(terminator.decode("ascii"))
    return chunk.split(terminator)


def _skip(buffer: Buffer, position: int, size: int) -> int:
    while position < size and buffer[position:position + 1] in _SKIP_BYTES:
        position += 1
    return position


def _encoding(raw: bytes) -> str:
    try:
        raw.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:  # a UTF-8 character cut at the window's end
        return "utf-8" if exc.start >= len(raw) - 3 and exc.reason.startswith(
            "unexpected end") else "latin-1"


# A VAN or clearinghouse may put one routing line before the ISA; no more is read past.
ROUTING_LIMIT = 512


def routing_header(raw: bytes) -> int:
    """How many bytes come before the ISA when a sender put one short line (at most
    ROUTING_LIMIT bytes, a VAN's routing header) in front of it: 0 when the ISA comes
    first (after a BOM and white space) or when what comes first is anything longer,
    several lines, or not followed by a readable ISA."""
    head = bytes(raw[:ROUTING_LIMIT + ISA_LENGTH + 32])  # raw may be a memory map
    if opening(head, 3) == b"ISA":
        return 0
    at = head.find(b"ISA", 0, ROUTING_LIMIT + 1)
    while 0 < at <= ROUTING_LIMIT:
        line = head[:at].strip(b" \t\r\n")
        if b"\r" in line or b"\n" in line or b"\x00" in line:
            return 0  # more than one line before it: not a routing header
        try:
            isa_delimiters(decode(head[at:]))
            return at
        except ParseError:
            at = head.find(b"ISA", at + 1, ROUTING_LIMIT + 1)
    return 0


def decode(raw: bytes) -> str:
    """X12 is ASCII in practice; anything else is read as Latin-1 so nothing fails."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
