"""Writing X12: what mappings and the channel use to produce interchanges.

Mappings give body segments as lists (element 0 the segment id); build adds the
envelopes (ST/SE, GS/GE, ISA/IEA) with counts and control numbers that agree, so no
mapping ever counts segments itself. An element is either a string, written as it is
(components already joined with the component separator, ":" by default), or a list/tuple
of strings (its components, joined here), or a list of such lists (its repetitions).

A value holding a delimiter would silently shift every element after it at the
partner, so it is refused (ValueError naming the element's position, never the value:
values are claims data). X12 has no escape sequence to fall back on.

Output is in the common `* ^ : ~` style; `Delimiters` can name others, and `newline`
puts a line break after each terminator (readable, and accepted by every reader the
engine knows of; some partners ask for it, others refuse it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.formats.x12.interchange import read_interchanges

__all__ = ["FUNCTIONAL_IDS", "MAX_CONTROL", "Delimiters", "interchange", "reenvelope",
           "render_set"]

MAX_CONTROL = 999_999_999  # ISA13 is nine digits
# GS01 of each transaction set HIPAA uses.
FUNCTIONAL_IDS = {"270": "HS", "271": "HB", "276": "HR", "277": "HN", "278": "HI",
                  "834": "BE", "835": "HP", "837": "HC", "999": "FA", "997": "FA",
                  "820": "RA", "275": "PI"}

Element = str | Sequence[str] | Sequence[Sequence[str]]


@dataclass(frozen=True)
class Delimiters:
    """Separators of what build writes."""

    element: str = "*"
    repetition: str = "^"
    component: str = ":"
    segment: str = "~"
    newline: bool = False

    def all(self) -> tuple[str, ...]:
        return (self.element, self.repetition, self.component, self.segment)


DEFAULT = Delimiters()
_BREAKS = ("\r", "\n")


def _position(seg_id: str, index: int, component: int = 0) -> str:
    return f"{seg_id}{index:02d}" + (f"-{component}" if component else "")


def _leaf(value: object, where: str, forbidden: Sequence[str]) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: element values are strings, not "
                         f"{type(value).__name__}")
    if any(ch and ch in value for ch in (*forbidden, *_BREAKS)):
        raise ValueError(f"{where}: value contains a delimiter or line break")
    return value


def _trim(values: list[str]) -> list[str]:
    while values and not values[-1]:
        values.pop()
    return values


def _element(value: Element, seg_id: str, index: int, d: Delimiters) -> str:
    """One element's text: a string as given (only the element separator and the
    terminator refused, it may carry joined components or repetitions), a list of
    components, or a list of repetitions (each a list of components)."""
    if isinstance(value, str):
        return _leaf(value, _position(seg_id, index), (d.element, d.segment))
    if value and all(not isinstance(v, str) for v in value):
        return d.repetition.join(_components(rep, seg_id, index, d) for rep in value)
    return _components(value, seg_id, index, d)


def _components(value: Sequence[str] | object, seg_id: str, index: int,
                d: Delimiters) -> str:
    if isinstance(value, str) or not isinstance(value, Sequence):
        return _leaf(value, _position(seg_id, index), d.all())
    return d.component.join(_trim([_leaf(v, _position(seg_id, index, n), d.all())
                                   for n, v in enumerate(value, start=1)]))


def _segment(segment: Sequence[Element], d: Delimiters) -> list[str]:
    if not segment or not isinstance(segment[0], str) or not segment[0].isalnum():
        raise ValueError("a segment starts with its id (letters and digits)")
    seg_id = segment[0]
    return _trim([seg_id, *(_element(v, seg_id, i, d)
                            for i, v in enumerate(segment[1:], start=1))])


def render_set(st01: str, st02: str, segments: Sequence[Sequence[Element]],
               convention: str = "", *, delimiters: Delimiters = DEFAULT
               ) -> list[list[str]]:
    """The transaction set ST..SE around `segments`: ST03 the implementation convention
    when given, SE01 the count of segments ST to SE inclusive."""
    body = [_segment(s, delimiters) for s in segments]
    if any(s[0] in ("ST", "SE", "GS", "GE", "ISA", "IEA") for s in body):
        raise ValueError("body segments carry no envelope (ST/SE/GS/GE/ISA/IEA)")
    st = _segment(["ST", st01, st02, convention], delimiters)
    return [st, *body, ["SE", str(len(body) + 2), st02]]


def _party(party: tuple[str, str], role: str) -> tuple[str, str]:
    qualifier, ident = party
    if len(qualifier) != 2 or not ident or len(ident) > 15:
        raise ValueError(f"{role}: an ISA id is a 2-character qualifier and 1 to 15 "
                         "characters")
    return qualifier, ident


@dataclass
class _Group:
    functional_id: str
    convention: str
    sets: list[tuple[str, str, Sequence[Sequence[Element]]]]


def _assemble(groups: list[_Group], *, sender: tuple[str, str],
              receiver: tuple[str, str], application_sender: str,
              application_receiver: str, control_number: int, usage: str,
              ack_requested: bool, when: datetime | None, d: Delimiters) -> str:
    if not 1 <= control_number <= MAX_CONTROL:
        raise ValueError(f"control number must be 1..{MAX_CONTROL}")
    if usage not in ("P", "T"):
        raise ValueError("usage is P (production) or T (test)")
    if len({*d.all()}) != 4 or any(len(c) != 1 or c.isalnum() or c in " \r\n"
                                   for c in d.all()[:3]) or d.segment.isalnum() \
            or len(d.segment) != 1:
        raise ValueError("delimiters are four distinct single non-alphanumeric characters "
                         "(a line break may only end segments)")
    s_qual, s_id = _party(sender, "sender")
    r_qual, r_id = _party(receiver, "receiver")
    stamp = (when or datetime.now(UTC))
    out: list[list[str]] = [[
        "ISA", "00", " " * 10, "00", " " * 10, s_qual, s_id.ljust(15), r_qual,
        r_id.ljust(15), stamp.strftime("%y%m%d"), stamp.strftime("%H%M"), d.repetition,
        "00501", f"{control_number:09d}", "1" if ack_requested else "0", usage,
        d.component]]
    for isa_value, where in ((s_id, "ISA06"), (r_id, "ISA08")):
        _leaf(isa_value, where, d.all())
    for number, group in enumerate(groups):
        gcontrol = (control_number + number - 1) % MAX_CONTROL + 1
        out.append(_segment(["GS", group.functional_id, application_sender or s_id,
                             application_receiver or r_id, stamp.strftime("%Y%m%d"),
                             stamp.strftime("%H%M"), str(gcontrol), "X", group.convention],
                            d))
        for index, (st01, convention, body) in enumerate(group.sets, start=1):
            out += render_set(st01, f"{index:04d}", body, convention, delimiters=d)
        out.append(["GE", str(len(group.sets)), str(gcontrol)])
    out.append(["IEA", str(len(groups)), f"{control_number:09d}"])
    terminator = d.segment + ("\n" if d.newline and d.segment != "\n" else "")
    return "".join(d.element.join(seg) + terminator for seg in out)


def interchange(sets: Sequence[tuple[str, str, Sequence[Sequence[Element]]]], *,
                sender: tuple[str, str], receiver: tuple[str, str],
                application_sender: str = "", application_receiver: str = "",
                functional_id: str | None = None, control_number: int = 1,
                usage: str = "P", ack_requested: bool = False,
                when: datetime | None = None, newline: bool = False,
                delimiters: Delimiters = DEFAULT) -> str:
    """A whole interchange of `sets` ((ST01, convention, body segments) each): one
    functional group per run of sets with the same GS01 (from ST01 unless
    `functional_id` is given) and convention (GS08). ISA13 is `control_number`, GS06
    the same for the first group (the next numbers for further groups), ST02 0001,
    0002... in each group. `when` (default now) stamps ISA09/10 and GS04/05: mappings
    pass a time from their input so the same input gives the same output."""
    if not sets:
        raise ValueError("an interchange holds at least one transaction set")
    groups: list[_Group] = []
    for st01, convention, body in sets:
        fid = functional_id or FUNCTIONAL_IDS.get(st01)
        if not fid:
            raise ValueError(f"no functional identifier known for ST01 {st01!r}; "
                             "pass functional_id")
        if not groups or (groups[-1].functional_id, groups[-1].convention) != \
                (fid, convention):
            groups.append(_Group(fid, convention, []))
        groups[-1].sets.append((st01, convention, body))
    d = Delimiters(delimiters.element, delimiters.repetition, delimiters.component,
                   delimiters.segment, newline or delimiters.newline)
    return _assemble(groups, sender=sender, receiver=receiver,
                     application_sender=application_sender,
                     application_receiver=application_receiver,
                     control_number=control_number, usage=usage,
                     ack_requested=ack_requested, when=when, d=d)


def reenvelope(text: str, *, sender: tuple[str, str], receiver: tuple[str, str],
               control_number: int, usage: str = "P", ack_requested: bool = False,
               application_sender: str = "", application_receiver: str = "",
               when: datetime | None = None, delimiters: Delimiters | None = None) -> str:
    """The sets of `text` (one or more interchanges) in one new interchange: new ISA and
    GS (ids, usage, TA1 request, control numbers), groups kept as they were (GS01 and
    GS08), sets renumbered 0001.. in each group and recounted. Delimiters are the
    input's own (line breaks too) unless `delimiters` is given. ValueError when the
    input's envelope is broken: a partner must never get a set whose counts lie."""
    interchanges, _ = read_interchanges(text)
    if not interchanges:
        raise ValueError("no interchange to re-envelope")
    source = interchanges[0].delimiters
    if delimiters is None:
        delimiters = Delimiters(source.element, source.repetition or "^",
                                source.component, source.segment,
                                source.segment + "\n" in text
                                or source.segment + "\r\n" in text)
    groups: list[_Group] = []
    for ic in interchanges:
        for code in (*ic.codes, *(c for g in ic.groups for c in g.codes),
                     *(c for g in ic.groups for s in g.sets for c in s.codes)):
            raise ValueError(f"cannot re-envelope a broken interchange (code {code})")
        for group in ic.groups:
            convention = group.gs.element(8)
            sets: list[tuple[str, str, Sequence[Sequence[Element]]]] = []
            for tset in group.sets:
                body: list[Sequence[Element]] = [
                    _split(seg.elements, source.repetition, source.component)
                    for seg in tset.segments[1:-1]]
                sets.append((tset.st.element(1), tset.st.element(3), body))
            if sets:
                groups.append(_Group(group.gs.element(1), convention, sets))
    if not groups:
        raise ValueError("no transaction set to re-envelope")
    return _assemble(groups, sender=sender, receiver=receiver,
                     application_sender=application_sender,
                     application_receiver=application_receiver,
                     control_number=control_number, usage=usage,
                     ack_requested=ack_requested, when=when, d=delimiters)


def _split(elements: list[str], repetition: str, component: str) -> list[Element]:
    """A read segment back into build's nested form, so it can be written with other
    delimiters (and checked against them)."""
    out: list[Element] = [elements[0]]
    for value in elements[1:]:
        reps = value.split(repetition) if repetition else [value]
        parts = [rep.split(component) for rep in reps]
        out.append(parts if len(parts) > 1 else parts[0])
    return out
