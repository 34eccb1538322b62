"""X12 envelopes: interchanges (ISA/IEA) of functional groups (GS/GE) of transaction
sets (ST/SE), and the checks on them.

Each level's problems are kept in its own standard's vocabulary, so the answer can say
them: an interchange's as TA105 note codes (TA1), a group's as AK9 syntax error codes,
a transaction set's as IK5 syntax error codes (999).

- Interchange: ISA fixed widths (TA105 005..027 by element), ISA13 = IEA02 (001),
  IEA01 = number of groups (021), IEA missing (023), anything but GS/GE/ST..SE between
  ISA and IEA (024).
- Interchange values of the right width that cannot be right: ISA09 date (014), ISA10
  time (015), ISA12 and ISA13 digits (017, 018), ISA14 0/1 (019), ISA15 P/T (020), an
  ISA11 that is another delimiter (022).
- Group: GS06 = GE02 (AK9 code 4), GE01 = number of sets (5), GE missing (3), GS06
  digits (6).
- Transaction set: ST02 = SE02 (IK5 code 3), SE01 = segments ST..SE inclusive (4),
  SE missing (2), ST01 missing (6), ST02 missing (7), ST02 unique in its group (23).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from engine.errors import ParseError
from engine.formats.x12.tokens import (
    TRAILING,
    Buffer,
    Delimiters,
    Segment,
    decode,
    isa_delimiters,
    isa_width_errors,
    iter_segments,
    tokenize,
)
from engine.message import Problem


@dataclass
class TransactionSet:
    segments: list[Segment]  # ST..SE inclusive (SE absent when missing); ST and SE only
    #                          when read for its envelope (read_envelopes)
    codes: list[str] = field(default_factory=list)  # IK5 syntax error codes
    notes: list[str] = field(default_factory=list)
    count: int = 1  # segments ST..SE seen
    span: tuple[int, int] = (0, 0)  # its bytes in the buffer (read_envelopes)

    @property
    def st(self) -> Segment:
        return self.segments[0]


@dataclass
class Group:
    gs: Segment
    ge: Segment | None = None
    sets: list[TransactionSet] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)  # AK9 syntax error codes
    notes: list[str] = field(default_factory=list)
    numbers: set[str] = field(default_factory=set)  # ST02s seen (each once a group)


@dataclass
class Interchange:
    isa: Segment
    iea: Segment | None = None
    groups: list[Group] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)  # TA105 note codes
    notes: list[str] = field(default_factory=list)  # what each code means, for analysts
    ta1: list[Segment] = field(default_factory=list)  # TA1 segments it carries

    @property
    def delimiters(self) -> Delimiters:
        return self.isa.delimiters


def _note(target: Interchange | Group | TransactionSet, code: str, text: str,
          notes: list[str]) -> None:
    notes.append(text)
    if code not in target.codes:
        target.codes.append(code)
        target.notes.append(text)


def _isa_value_errors(isa: Segment) -> list[tuple[int, str, str]]:
    """(ISA element, TA105 note, what it should be) for values of the right width that
    cannot be right: a date or time that does not exist, a control number or version
    that is not digits, an acknowledgement flag or usage outside the code list. The
    qualifiers (ISA05/07) are not checked against HIPAA's short list: partners use
    other X12 codes and the engine does not route on them."""
    found = []
    date, time_ = isa.element(9), isa.element(10)
    if len(date) == 6 and not (date.isdecimal() and 1 <= int(date[2:4]) <= 12
                               and 1 <= int(date[4:]) <= 31):
        found.append((9, "014", "a date (YYMMDD)"))
    if len(time_) == 4 and not (time_.isdecimal() and int(time_[:2]) < 24
                                and int(time_[2:]) < 60):
        found.append((10, "015", "a time (HHMM)"))
    for number, code, what in ((12, "017", "a version number"),
                               (13, "018", "a control number (digits)")):
        value = isa.element(number)
        if value and not value.isdecimal():
            found.append((number, code, what))
    if isa.element(14) not in ("0", "1", ""):
        found.append((14, "019", "0 or 1 (acknowledgement requested)"))
    if isa.element(15) not in ("P", "T", ""):
        found.append((15, "020", "P or T (usage)"))
    return found


def read_interchanges(text: str) -> tuple[list[Interchange], list[str]]:
    """Every interchange of `text`, with its groups and sets and every problem found
    (as codes on each level), and the analyst's text of each problem. Raises ParseError
    only when the first ISA is unreadable."""
    isa_delimiters(text.lstrip("\ufeff \t\r\n\x00\x1a"))  # the first ISA must be readable
    return _read(((segment, 0, 0) for segment in tokenize(text)), keep=True)


def read_envelopes(buffer: Buffer) -> tuple[list[Interchange], list[str]]:
    """The same checks as `read_interchanges` over a buffer of any size, in one pass
    and constant memory beyond the envelopes: each set keeps only its ST and SE, its
    segment count and its byte span, so a 100 MB batch is checked before any of it is
    taken on, then read set by set (`set_text`)."""
    isa_delimiters(bytes(buffer[:512]).decode("latin-1").lstrip("\ufeff \t\r\n\x00\x1a"))
    return _read(iter_segments(buffer), keep=False)


def set_text(buffer: Buffer, tset: TransactionSet) -> str:
    """The segments of a set read by `read_envelopes`, as text ending in its SE."""
    start, end = tset.span
    return decode(bytes(buffer[start:end]))


def _read(segments: Iterator[tuple[Segment, int, int]], keep: bool
          ) -> tuple[list[Interchange], list[str]]:
    notes: list[str] = []
    interchanges: list[Interchange] = []
    current: Interchange | None = None
    group: Group | None = None
    tset: TransactionSet | None = None
    for seg, start, end in segments:
        sid = seg.id
        if sid == "ISA":
            if current is not None and current.iea is None:
                _note(current, "023", "interchange has no IEA trailer", notes)
            current = Interchange(seg)
            interchanges.append(current)
            group = tset = None
            for number, code in isa_width_errors(seg.elements):
                _note(current, code, f"ISA{number:02d} is not of its fixed width", notes)
            if len(seg.elements) != 17:
                _note(current, "022", "ISA does not have 16 elements", notes)
            d = seg.delimiters
            if d.repetition and d.repetition in (d.element, d.component, d.segment):
                _note(current, "022", "ISA11 repetition separator is also another "
                      "delimiter", notes)
            for number, code, what in _isa_value_errors(seg):
                _note(current, code, f"ISA{number:02d} is not {what}", notes)
            continue
        if current is None:
            if sid == TRAILING and interchanges:
                _note(interchanges[-1], "024", "what follows the last IEA is not an "
                      "interchange (no readable ISA)", notes)
                break
            raise ParseError("segment before the first ISA", segment=sid, code="022")
        if tset is not None and sid not in ("SE",):
            if sid in ("ST", "GE", "IEA", "GS"):
                _note(tset, "2", "transaction set has no SE trailer", notes)
                tset = None
            else:
                tset.count += 1
                if keep:
                    tset.segments.append(seg)
                continue
        if sid == "SE":
            if tset is None:
                _note(current, "024", "SE outside a transaction set", notes)
                continue
            tset.segments.append(seg)
            tset.count += 1
            tset.span = (tset.span[0], end)
            st = tset.st
            if seg.element(2) != st.element(2):
                _note(tset, "3", "ST02 and SE02 control numbers differ", notes)
            if seg.element(1) != str(tset.count):
                _note(tset, "4", f"SE01 says {seg.element(1) or 'nothing'}, the set has "
                      f"{tset.count} segments", notes)
            tset = None
        elif sid == "ST":
            if group is None:
                _note(current, "024", "ST outside a functional group", notes)
                group = Group(Segment(["GS"], seg.delimiters))
                current.groups.append(group)
                _note(group, "3", "transaction set outside GS/GE", notes)
            tset = TransactionSet([seg], span=(start, end))
            if seg.element(2) in group.numbers:
                _note(tset, "23", "ST02 repeats another set's control number in its "
                      "functional group", notes)
            elif seg.element(2):
                group.numbers.add(seg.element(2))
            group.sets.append(tset)
            if not seg.element(1):
                _note(tset, "6", "ST01 transaction set identifier is missing", notes)
            if not seg.element(2):
                _note(tset, "7", "ST02 transaction set control number is missing", notes)
        elif sid == "GS":
            if group is not None and group.ge is None:
                _note(group, "3", "functional group has no GE trailer", notes)
            group = Group(seg)
            current.groups.append(group)
            if not seg.element(6).isdecimal():
                _note(group, "6", "GS06 group control number is not digits", notes)
            # a 997 answering what we sent may be 4010 (FA groups are only read back)
            if seg.element(1) != "FA" and (older := _older_version(seg.element(8))):
                _note(group, "2", f"GS08 {seg.element(8)} is X12 {older}, not 5010: the "
                      "HIPAA transactions read here are 5010 (GS08 005010...); the "
                      "sender must send 5010", notes)
        elif sid == "GE":
            if group is None:
                _note(current, "024", "GE outside a functional group", notes)
                continue
            group.ge = seg
            if seg.element(2) != group.gs.element(6):
                _note(group, "4", "GS06 and GE02 control numbers differ", notes)
            if seg.element(1) != str(len(group.sets)):
                _note(group, "5", f"GE01 says {seg.element(1) or 'nothing'}, the group has "
                      f"{len(group.sets)} transaction sets", notes)
            group = None
        elif sid == "IEA":
            if group is not None:
                _note(group, "3", "functional group has no GE trailer", notes)
                group = None
            current.iea = seg
            if seg.element(2) != current.isa.element(13):
                _note(current, "001", "ISA13 and IEA02 control numbers differ", notes)
            if seg.element(1) != str(len(current.groups)):
                _note(current, "021", f"IEA01 says {seg.element(1) or 'nothing'}, the "
                      f"interchange has {len(current.groups)} groups", notes)
            current = None
        elif sid == "TA1" and group is None:
            current.ta1.append(seg)
        else:
            _note(current, "024", f"{sid} segment outside a transaction set", notes)
    if tset is not None:
        _note(tset, "2", "transaction set has no SE trailer", notes)
    if group is not None and group.ge is None:
        _note(group, "3", "functional group has no GE trailer", notes)
    if current is not None and current.iea is None:
        _note(current, "023", "interchange has no IEA trailer (ended early)", notes)
    return interchanges, notes


def _older_version(gs08: str) -> str | None:
    """"4010" for a GS08 of a release before 5010 (004010X098A1, 003070...), which
    reads differently (other loops, codes and acknowledgements: a 997, not a 999); None
    for 5010 and anything later or unreadable."""
    release = gs08.strip()[:6]
    if len(release) == 6 and release.isdecimal() and "002000" <= release < "005010":
        return release[2:6]
    return None


def wrap(interchange: Interchange, group: Group, tset: TransactionSet,
         body: str | None = None) -> str:
    """One transaction set in its own interchange (the original ISA and GS, counts and
    trailers made to fit), so it can be parsed and answered alone; `body` is the set's
    own text (ST..SE with its terminator) when it was read by `read_envelopes`."""
    d = interchange.delimiters
    e = d.element
    if body is None:
        body = d.segment.join(s.text() for s in tset.segments) + d.segment
    head = interchange.isa.text() + d.segment + group.gs.text() + d.segment
    return (head + body + f"GE{e}1{e}{group.gs.element(6)}{d.segment}"
            f"IEA{e}1{e}{interchange.isa.element(13)}{d.segment}")


@dataclass
class X12Envelope:
    """What `split` found: one message per transaction set, each wrapped alone, and the
    interchange- and group-level problems (which refuse the whole)."""

    interchanges: list[Interchange]
    messages: Sequence[bytes]
    problems: list[Problem]


class LazySets(Sequence[bytes]):
    """The sets of a large buffer, each wrapped alone only when asked for, so a batch
    of any size is taken on one set at a time."""

    def __init__(self, buffer: Buffer, interchanges: list[Interchange],
                 header: bytes = b"") -> None:
        self._buffer = buffer
        self._header = header  # a routing line sent before the ISA, kept on every set
        self._sets = [(ic, g, s) for ic in interchanges for g in ic.groups for s in g.sets]

    def __len__(self) -> int:
        return len(self._sets)

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        ic, group, tset = self._sets[index]
        return self._header + wrap(ic, group, tset, set_text(self._buffer, tset)).encode(
            "utf-8")


def problems_of(interchanges: list[Interchange]) -> list[Problem]:
    """The envelope problems (interchange and group levels) as Problems, coded with
    their TA105 note or AK9 error codes."""
    problems: list[Problem] = []
    for ic in interchanges:
        problems += [Problem(f"interchange {ic.isa.element(13)}: {note}", code=code,
                             segment="ISA") for code, note in zip(ic.codes, ic.notes, strict=True)]
        for group in ic.groups:
            problems += [Problem(f"functional group {group.gs.element(6)}: {note}",
                                 code=code, segment="GS")
                         for code, note in zip(group.codes, group.notes, strict=True)]
    return problems
