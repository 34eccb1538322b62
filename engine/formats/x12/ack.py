"""X12 acknowledgements: the 999 (implementation acknowledgment) and the TA1
(interchange acknowledgment), built and read.

When the engine answers:
- A 999 for every functional group of an interchange whose ISA/IEA is sound, good or
  bad: HIPAA trading partners expect one for each group received, and nothing in the
  envelope asks for it (ISA14 concerns the TA1 only). A 999 or a TA1 is never itself
  answered (acknowledgements are not acknowledged).
- A TA1 when ISA14 = 1 (the sender asked), and always when the interchange itself is
  refused (ISA widths, ISA13/IEA02, IEA01, a missing IEA): nothing inside it is read then,
  so no 999 can be sent and the TA1 is the only way the sender learns of it. It is
  TA104 R (refused) for every interchange error, even those some engines report as E:
  the engine does not take on an interchange whose envelope it cannot trust.

Codes (X12 element 715 AK901, 717 IK501, 718 IK502, 716 AK905.., I18 TA104, I19 TA105):
IK5/AK9 A accepted, E accepted with errors noted, R rejected, P (AK9 only) partially
accepted; IK502 2 trailer missing, 3 ST02/SE02 differ, 4 SE01 count wrong, 5 segments in
error, 6/7 ST01/ST02 missing; AK9 3 GE missing, 4 GS06/GE02 differ, 5 GE01 count wrong;
TA105 000 no error, 001 ISA13/IEA02 differ, 021 IEA01 wrong, 023 ended early, 024
invalid content, 005..027 an ISA element's value or width.

Control numbers of the answers come from the clock (milliseconds), moved on by one
when the clock has not, so two answers made in the same millisecond (a file of
several interchanges answers each) never share an ISA13; what the engine sends a
partner on its own is numbered per partner (engine.store.control_numbers).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from engine.formats.x12.interchange import Group, Interchange
from engine.formats.x12.tokens import Delimiters, Segment

IMPLEMENTATION_999 = "005010X231A1"
MAX_NOTES = 50  # IK3 loops per set in a 999; the rest are summed up by the IK5


_last = [0]
_lock = threading.Lock()


def _control_number() -> int:
    with _lock:
        number = max(int(time.time() * 1000), _last[0] + 1)
        _last[0] = number
    return number % 1_000_000_000 or 1


def _pad(value: str, width: int) -> str:
    return value[:width].ljust(width)


def _stamp() -> tuple[str, str]:
    now = time.gmtime()
    return time.strftime("%y%m%d", now), time.strftime("%H%M", now)


@dataclass
class SetAnswer:
    """What to say about one transaction set: IK5 code and error codes, and the IK3/IK4
    notes when known: (segment id, position in the set, loop id, IK304, element
    position or "", IK403)."""

    st01: str
    st02: str
    st03: str
    code: str  # IK501: A, E or R
    errors: list[str] = field(default_factory=list)
    segments: list[tuple[str, ...]] = field(default_factory=list)


def group_code(answers: list[SetAnswer], group_errors: list[str]) -> tuple[str, int]:
    """AK901 and AK904 (accepted sets): R when the group itself is broken or every set
    is rejected, P when some but not all are, E when all are accepted and some with
    errors, A otherwise."""
    accepted = sum(1 for a in answers if a.code in ("A", "E"))
    if group_errors:
        return "R", 0
    if answers and accepted == 0:
        return "R", 0
    if accepted < len(answers):
        return "P", accepted
    if any(a.code == "E" for a in answers):
        return "E", accepted
    return "A", accepted


def build_999(interchange: Interchange, groups: list[tuple[Group, list[SetAnswer]]],
              *, ta1: bool = False) -> str:
    """One interchange answering `interchange`: a TA1 first when `ta1` (TA104 A), then
    one 999 per group (AK1, AK2/IK3/IK5 per set, AK9), in a functional group of its
    own, sender and receiver swapped."""
    d = answer_delimiters(interchange.delimiters)
    e, t = d.element, d.segment
    isa = interchange.isa
    control = _control_number()
    date, hhmm = _stamp()
    out = [_isa(isa, d, control, date, hhmm)]
    if ta1:
        out.append(e.join(["TA1", isa.element(13), isa.element(9), isa.element(10), "A",
                           "000"]))
    gcontrol = control % 100_000_000 or 1
    gs = interchange.groups[0].gs if interchange.groups else isa
    out.append(e.join(["GS", "FA", gs.element(3) or isa.element(8).strip(),
                       gs.element(2) or isa.element(6).strip(), "20" + date, hhmm,
                       str(gcontrol), "X", IMPLEMENTATION_999]))
    for number, (group, answers) in enumerate(groups, start=1):
        body = [e.join(["ST", "999", f"{number:04d}", IMPLEMENTATION_999]),
                e.join(["AK1", group.gs.element(1), group.gs.element(6),
                        group.gs.element(8)]).rstrip(e)]
        for answer in answers:
            body.append(e.join(["AK2", answer.st01, answer.st02, answer.st03]).rstrip(e))
            body += _ik3_loops(answer.segments, e)
            body.append(e.join(["IK5", answer.code, *answer.errors[:5]]))
        code, accepted = group_code(answers, group.codes)
        included = group.ge.element(1) if group.ge is not None else str(len(answers))
        body.append(e.join(["AK9", code, included or "0", str(len(answers)),
                            str(accepted), *group.codes[:5]]))
        body.append(e.join(["SE", str(len(body) + 1), f"{number:04d}"]))
        out += body
    out.append(e.join(["GE", str(len(groups)), str(gcontrol)]))
    out.append(e.join(["IEA", "1", f"{control:09d}"]))
    return t.join(out) + t


def _ik3_loops(notes: list[tuple[str, ...]], e: str) -> list[str]:
    """The IK3 loops of one set: one IK3 per segment in error (by its id and position),
    in the set's order, followed by an IK4 per element in error, as the 999 nests them;
    notes come one per finding, and a segment with three bad elements is one IK3 with
    three IK4s, not three IK3s. At most MAX_NOTES segments (the IK5 sums up the rest)."""
    by_segment: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for note in notes:
        by_segment.setdefault(note[:3], []).append(note)
    ordered = sorted(by_segment.values(), key=lambda found: _number(found[0][1]))
    lines: list[str] = []
    for found in ordered[:MAX_NOTES]:
        lines.append(_ik3(found, e))
        elements = sorted({(n[4], n[5]) for n in found if n[4] and n[5]},
                          key=lambda pair: (_number(pair[0]), pair[1]))
        lines += [e.join(["IK4", element, "", code]) for element, code in elements]
    return lines


def _ik3(found: list[tuple[str, ...]], e: str) -> str:
    """The IK3 of one segment's notes. IK304 is its segment-level finding (out of
    sequence, over its repeats...) when it has one, else 8 (data element errors, the
    IK4s say which). IK303 is the loop's id where the guide names one (not the set's
    own table), cut to the 4 characters element 447 allows ("2010BA" is sent as
    "2010"; the analyst's text keeps the whole id)."""
    seg_id, position, loop = found[0][:3]
    code = next((n[3] for n in found if n[3] != "8"), "8")
    return e.join(["IK3", seg_id, position, "" if loop == "ST" else loop[:4], code]
                  ).rstrip(e)


def _number(value: str) -> int:
    return int(value) if value.isdecimal() else 0


def build_ta1(interchange: Interchange, code: str, note: str) -> str:
    """An interchange holding only a TA1 (TA104 `code`, TA105 `note`) for `interchange`."""
    d = answer_delimiters(interchange.delimiters)
    e, t = d.element, d.segment
    isa = interchange.isa
    control = _control_number()
    date, hhmm = _stamp()
    out = [_isa(isa, d, control, date, hhmm),
           e.join(["TA1", isa.element(13) or "000000000", isa.element(9) or date,
                   isa.element(10) or hhmm, code, note]),
           e.join(["IEA", "0", f"{control:09d}"])]
    return t.join(out) + t


STANDARD = Delimiters("*", "^", ":", "~")


def answer_delimiters(sent: Delimiters) -> Delimiters:
    """The sender's own delimiters for our answer, unless they cannot write one: an ISA
    whose ISA16 was left empty (or repeats another delimiter) is answered with `* ^ : ~`,
    or the TA1 telling it so would be as unreadable as its own ISA."""
    used = [sent.element, sent.component, sent.segment] + ([sent.repetition]
                                                          if sent.repetition else [])
    if all(len(c) == 1 for c in used) and len(set(used)) == len(used):
        return sent
    return STANDARD


def _isa(isa: Segment, d: Delimiters, control: int, date: str, hhmm: str) -> str:
    """Our ISA answering `isa`: sender and receiver swapped, no TA1 asked (ISA14 0), the
    same test/production indicator and delimiters."""
    return d.element.join([
        "ISA", "00", _pad("", 10), "00", _pad("", 10),
        _pad(isa.element(7).strip() or "ZZ", 2), _pad(isa.element(8).strip(), 15),
        _pad(isa.element(5).strip() or "ZZ", 2), _pad(isa.element(6).strip(), 15),
        date, hhmm, d.repetition or "^", "00501", f"{control:09d}", "0",
        isa.element(15) if isa.element(15) in ("P", "T") else "P", d.component])


@dataclass
class ReadAck:
    """A partner's acknowledgement: TA104 codes, and per 999 group the AK9 code and each
    set's (ST02, IK501, IK502 codes)."""

    ta1: list[tuple[str, str, str]] = field(default_factory=list)  # (TA101, TA104, TA105)
    groups: list[tuple[str, str]] = field(default_factory=list)  # (AK102, AK901)
    sets: list[tuple[str, str, list[str]]] = field(default_factory=list)


def set_answers(interchanges: list[Interchange]) -> list[SetAnswer]:
    """Each AK2 of our own 999s read back whole (IK5 code, IK502 codes and IK3/IK4
    notes), so answers made one set at a time can be gathered into one 999 per group
    without losing why a set was refused."""
    found: list[SetAnswer] = []
    for ic in interchanges:
        for group in ic.groups:
            for tset in group.sets:
                ik3: tuple[str, ...] = ()
                for seg in tset.segments:
                    if seg.id == "AK2":
                        found.append(SetAnswer(seg.element(1), seg.element(2),
                                               seg.element(3), "A"))
                    elif not found:
                        continue
                    elif seg.id == "IK3":
                        ik3 = (seg.element(1), seg.element(2), seg.element(3) or "ST",
                               seg.element(4))
                        found[-1].segments.append((*ik3, "", ""))
                    elif seg.id == "IK4" and ik3:
                        note = (*ik3, seg.element(1), seg.element(3))
                        notes = found[-1].segments
                        if notes and notes[-1] == (*ik3, "", ""):
                            notes[-1] = note
                        else:
                            notes.append(note)
                    elif seg.id == "IK5":
                        found[-1].code = seg.element(1)
                        found[-1].errors = [x for x in seg.elements[2:] if x]
    return found


def read_ack(interchanges: list[Interchange]) -> ReadAck:
    found = ReadAck()
    for ic in interchanges:
        found.ta1 += [(s.element(1), s.element(4), s.element(5)) for s in ic.ta1]
        for group in ic.groups:
            for tset in group.sets:
                if tset.st.element(1) not in ("999", "997"):
                    continue
                ak1 = ""
                st02 = ""
                for seg in tset.segments:
                    if seg.id == "AK1":
                        ak1 = seg.element(2)
                    elif seg.id == "AK2":
                        st02 = seg.element(2)
                    elif seg.id in ("IK5", "AK5"):
                        found.sets.append((st02, seg.element(1),
                                           [x for x in seg.elements[2:] if x]))
                    elif seg.id == "AK9":
                        found.groups.append((ak1, seg.element(1)))
    return found
