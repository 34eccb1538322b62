"""The X12 5010 codec: interchanges in, transaction sets out, 999/TA1 answers both ways.

Routing fields of a transaction set (`parse`):
- message_type: ST01 ("270", "835"...); an 837 is told apart by its implementation
  convention (ST03, else GS08): X222 "837P", X223 "837I", X224 "837D"; a 277 by
  X214 as "277CA" (the claim acknowledgement, routed apart from a claim status 277).
- control_id: "ISA13-GS06-ST02". ST02 alone is unique only within its group and senders
  reuse 0001 in every interchange, so it cannot tell duplicates; ISA13 is the sender's
  interchange number, unique per sender, and GS06 makes the set's number unique inside
  it. The whole triple is what a duplicate check per sender needs.
- sender "ISA06^GS02", receiver "ISA08^GS03" (ISA ids unpadded).
- patient_id: NM109 of the patient (NM1*QC) where it has one, else of the subscriber
  (NM1*IL), the member id; None when neither has one.
- version "005010" (GS08's first six characters).

A file or frame may hold several interchanges, groups and sets: `split` gives each set
as its own interchange (the original ISA and GS, trailers fitted), so each is parsed and
answered alone; `envelope_reply` gathers the answers into one 999 per group (see ack.py
for when the engine answers at all).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from engine.errors import ParseError
from engine.formats.base import Envelope, opening
from engine.formats.diff import Change, diff_values
from engine.formats.x12.ack import SetAnswer, build_999, build_ta1, read_ack, set_answers
from engine.formats.x12.interchange import (
    Group,
    Interchange,
    LazySets,
    TransactionSet,
    X12Envelope,
    problems_of,
    read_envelopes,
    read_interchanges,
    wrap,
)
from engine.formats.x12.message import PATH, X12Message, build_loops
from engine.formats.x12.pyx12_check import element_issues
from engine.formats.x12.sets import supported
from engine.formats.x12.structure import OUT_OF_SEQUENCE, Issue
from engine.formats.x12.tokens import Segment, decode, fixed_isa, routing_header
from engine.message import (
    Delivery,
    Fail,
    Outbound,
    Outcome,
    Parsed,
    Problem,
    ProblemKind,
    Retry,
    Sent,
    Verdict,
)

__all__ = ["X12Codec"]

# Above this size an interchange is checked in one streaming pass and its sets read one
# at a time (memory stays flat on a 100 MB batch); below it, read whole (faster).
STREAM_ABOVE = 8 * 1024 * 1024
_837 = {"X222": "837P", "X223": "837I", "X224": "837D"}
_ACKS = ("999", "997", "TA1")
# GS01 functional identifier -> the transaction set such a group holds
_SET_OF_GROUP = {"HS": "270", "HB": "271", "HR": "276", "HN": "277", "HI": "278",
                 "BE": "834", "HP": "835", "HC": "837", "FA": "999"}
# IK502 codes for what the engine finds itself: a truncated set lost its trailer (2);
# anything else is reported as "one or more segments in error" (5), the 999 having no
# code for application-level failures.
_PROBLEM_CODES = {ProblemKind.TRUNCATED: "2"}
_IK5_CODES = frozenset({"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12",
                        "13", "15", "16", "17", "19", "23", "24", "25", "26", "27", "I5",
                        "I6"})


def _read(raw: bytes) -> list[Interchange]:
    return read_interchanges(decode(raw))[0]


class X12Codec:
    """ASC X12 5010 (the HIPAA transactions)."""

    name = "x12"
    content_type = "application/edi-x12"
    extensions: tuple[str, ...] = (".x12", ".edi")
    streams = True  # split reads a large interchange from a buffer set by set

    def detect(self, raw: bytes) -> bool:
        """An ISA first, after an optional BOM and whitespace, or after one short
        routing line (tokens.routing_header)."""
        return opening(raw, 3) == b"ISA" or routing_header(raw) > 0

    def require(self, must_have: Mapping[str, Sequence[str]]) -> None:
        """No must-have elements of X12's own yet; nothing to keep."""

    def field_path_error(self, path: str) -> str | None:
        if PATH.match(path.strip()):
            return None
        return (f"`{path}` is not an X12 field path; write e.g. ST01, BHT03, NM1[IL].09, "
                "CLM05-1 or HL[22]/NM1[IL]09")

    def field(self, parsed: Parsed, path: str) -> str:
        return parsed.body.value(path) if isinstance(parsed.body, X12Message) else ""

    def problem(self, kind: ProblemKind, text: str) -> Problem:
        """The IK502 code of a problem the engine found itself (see _PROBLEM_CODES)."""
        return Problem(text, code=_PROBLEM_CODES.get(kind, "5"))

    def validate(self, parsed: Parsed, level: str) -> list[Problem]:
        """The set against its guide's structure (sets/): each issue a Problem carrying
        its IK3/IK4 coordinates, an error in strict mode and a warning in lenient (the
        999 then says E, accepted with errors noted). Envelope and counts are checked
        by `parse`. A set without a definition has nothing to check here. In strict
        mode pyx12's map for the set adds element data types, lengths, dates and full
        code lists (pyx12_check; deduplicated against ours there)."""
        body = parsed.body
        if not isinstance(body, X12Message):
            return []
        unsupported = _unsupported(body)
        if unsupported is not None:
            return [unsupported]
        strict = level == "strict"
        issues = body.issues + (element_issues(body) if strict else [])
        # a routing line before the ISA is told, never refused (the 999 does not say it)
        skipped = [Problem(f"{body.skipped} bytes before the ISA (one line, a VAN or "
                           "clearinghouse routing header?) were read past",
                           code="5", segment="ISA", severity="W")] if body.skipped else []
        return skipped + [Problem(issue.text, code="5", segment=issue.segment,
                        field=issue.element or None, severity=_severity(issue, strict),
                        where=(issue.segment, str(issue.position), issue.loop, issue.code,
                               str(issue.element or ""), issue.element_code))
                for issue in issues]

    # -- reading -------------------------------------------------------------------------

    def parse(self, raw: bytes) -> Parsed:
        """The first transaction set of `raw`, with its routing fields; ParseError when
        the interchange, its group or the set is broken (code: TA105, AK9 or IK502). One
        short routing line before the ISA is read past (body.skipped says how much)."""
        skipped = routing_header(raw)
        text = decode(raw[skipped:])
        if "\x00" in text[:4096]:
            raise ParseError("binary (NUL) bytes; X12 is text", code="024", segment="ISA")
        try:
            interchanges, _ = read_interchanges(text)
        except ParseError as exc:
            at = text.find("ISA", 0, 4096)
            if exc.code != "022" or at <= 0 or not text[:at].strip():
                raise
            raise ParseError(f"{len(text[:at].encode())} bytes come before the first ISA; "
                             "only one routing line of at most 512 bytes is read past",
                             segment="ISA", code="022") from None
        first = interchanges[0]
        if first.codes:
            raise ParseError(first.notes[0], segment="ISA", code=first.codes[0])
        groups = [g for g in first.groups if g.sets]
        if not groups and first.ta1:
            return self._interchange_ack(first)
        if not groups:
            raise ParseError("interchange holds no transaction set", segment="GS",
                             code="024")
        group = groups[0]
        if group.codes:
            raise ParseError(group.notes[0], segment="GS", code=group.codes[0])
        tset = group.sets[0]
        if tset.codes:
            raise ParseError(tset.notes[0], segment="SE", code=tset.codes[0])
        isa, gs, st = first.isa, group.gs, tset.st
        body = X12Message(isa, gs, tset.segments, build_loops(tset.segments),
                          skipped=skipped)
        kind = st.element(1)
        if kind == "837":
            convention = st.element(3) or gs.element(8)
            kind = next((v for k, v in _837.items() if k in convention), "837")
        elif kind == "277" and "X214" in (st.element(3) or gs.element(8)):
            kind = "277CA"
        patient = body.value("NM1[QC]09") or body.value("NM1[IL]09")
        return Parsed(
            standard=self.name,
            message_type=kind,
            control_id=f"{isa.element(13)}-{gs.element(6)}-{st.element(2)}",
            version=gs.element(8)[:6],
            sender=f"{isa.element(6).strip()}^{gs.element(2)}",
            receiver=f"{isa.element(8).strip()}^{gs.element(3)}",
            patient_id=patient or None,
            body=body,
        )

    def _interchange_ack(self, ic: Interchange) -> Parsed:
        """An interchange of TA1s only (a partner's interchange acknowledgement): type
        TA1, its TA1 segments as the body's segments."""
        isa = ic.isa
        body = X12Message(isa, Segment(["GS"], isa.delimiters), list(ic.ta1))
        return Parsed(standard=self.name, message_type="TA1", control_id=isa.element(13),
                      version=isa.element(12), sender=isa.element(6).strip(),
                      receiver=isa.element(8).strip(), body=body)

    def file_messages(self, raw: bytes) -> list[bytes]:
        """Each transaction set of a file as its own interchange; the file as it is when
        it holds one set or its envelope is broken (so `parse` names what is wrong)."""
        try:
            envelope = self.split(raw)
        except ParseError:
            return [raw]
        if envelope is None or envelope.problems:
            return [raw]
        return list(envelope.messages)

    def split(self, raw: bytes) -> X12Envelope | None:
        """None for one interchange of one group of one set with a sound envelope; else
        every set, each wrapped alone, with the interchange- and group-level problems
        (TA105 or AK9 codes), which refuse the whole. A set's own problems (SE count or
        control number) are found again when it is parsed, so a bad set is refused alone
        and its group answered P. Each set keeps a routing line sent before the ISA, so
        each is read (and warned about) as the file was."""
        skipped = routing_header(raw)
        header = bytes(raw[:skipped])
        if len(raw) > STREAM_ABOVE:
            buffer = memoryview(raw)[skipped:] if skipped else raw
            interchanges, _ = read_envelopes(buffer)
            return X12Envelope(interchanges, LazySets(buffer, interchanges, header),
                               problems_of(interchanges))
        text = decode(raw[skipped:])
        interchanges, _ = read_interchanges(text)
        problems = problems_of(interchanges)
        sets = [(ic, g, s) for ic in interchanges for g in ic.groups for s in g.sets]
        if len(sets) <= 1 and not problems:  # one set, or a TA1 alone
            return None
        messages = [header + wrap(ic, g, s).encode("utf-8") for ic, g, s in sets]
        return X12Envelope(interchanges, messages, problems)

    # -- answering -----------------------------------------------------------------------

    def reply(self, raw: bytes, parsed: Parsed | None, outcome: Outcome) -> bytes:
        """The answer to one interchange of one set: a TA1 (R) alone when the interchange
        is broken (also when its delimiters cannot be used: read at the ISA's fixed
        offsets); else a 999 for the set (with a TA1 A first when ISA14 = 1). b"" for a
        999 or TA1 (acknowledgements are not acknowledged) and for what has no ISA."""
        raw = raw[routing_header(raw):]
        try:
            interchanges = _read(raw)
        except ParseError as exc:
            fixed = fixed_isa(decode(raw))
            if fixed is None:
                return b""
            note = exc.code if len(exc.code) == 3 and exc.code.isdecimal() else "024"
            return build_ta1(Interchange(fixed), "R", note).encode("utf-8")
        return self._answer(interchanges, [outcome]).encode("utf-8")

    def replies(self, raw: bytes, parsed: Parsed | None, outcome: Outcome
                ) -> tuple[bytes, ...]:
        """The one answer of `reply` (the TA1 the sender asked for rides in the same
        interchange as the 999)."""
        reply = self.reply(raw, parsed, outcome)
        return (reply,) if reply else ()

    def envelope_reply(self, envelope: Envelope, replies: Sequence[bytes]) -> bytes:
        """One answer per interchange: a TA1 R when the interchange is broken, else one
        999 per group with each set's IK5 taken from its own reply (A when it had none),
        AK9 A/E/P/R and counts from what arrived."""
        assert isinstance(envelope, X12Envelope), "an envelope of this codec's own `split`"
        outcomes: list[Outcome | SetAnswer | str] = []
        for reply in replies:
            try:
                found = set_answers(_read(reply)) if reply else []
            except ParseError:
                found = []
            outcomes.append(found[0] if found else "A")
        return self._answer(envelope.interchanges, outcomes).encode("utf-8")

    def _answer(self, interchanges: list[Interchange],
                outcomes: Sequence[Outcome | SetAnswer | str]) -> str:
        out: list[str] = []
        queue = list(outcomes)
        for ic in interchanges:
            sets = [s for g in ic.groups for s in g.sets]
            mine, queue = queue[:len(sets)], queue[len(sets):]
            if ic.codes:
                out.append(build_ta1(ic, "R", ic.codes[0]))
                continue
            if not ic.groups or any(s.st.element(1) in _ACKS for s in sets) or ic.ta1:
                continue
            answers = []
            groups = []
            index = 0
            for group in ic.groups:
                group_answers = []
                for tset in group.sets:
                    given = mine[index] if index < len(mine) else "A"
                    index += 1
                    group_answers.append(_set_answer(tset, given, group))
                groups.append((group, group_answers))
                answers += group_answers
            out.append(build_999(ic, groups, ta1=ic.isa.element(14) == "1"))
        return "".join(out)

    def read_reply(self, reply: bytes, sent: Outbound) -> Delivery:
        """A partner's TA1/999 for what we sent: TA1 R, IK5/AK9 R (or M, W, X) fail for
        good; A and E (accepted, errors noted: the partner must not be sent it again)
        are sent; an AK9 P counts by our own set's IK5, and without one for our set is
        retried, as is anything unreadable or for another set."""
        try:
            found = read_ack(_read(reply))
        except ParseError as exc:
            return Retry(f"unreadable acknowledgement: {exc.message}")
        for _, code, note in found.ta1:
            if code == "R":
                return Fail(f"partner refused the interchange (TA1 R, note {note[:3]})",
                            code="R")
        ours = sent.control_id.rsplit("-", 1)[-1] if sent.control_id else ""
        sets = [s for s in found.sets if not ours or s[0] == ours]
        if not sets and found.sets and ours:
            return Retry("999 is for another transaction set, not ours")
        if sets:
            _, code, errors = sets[0]
            detail = f" (IK5 {', '.join(e for e in errors if e in _IK5_CODES)})" \
                if errors else ""
            if code in ("A", "E"):
                return Sent(code)
            if code in ("R", "M", "W", "X"):
                return Fail(f"partner rejected the transaction set{detail}", code=code)
        if found.groups:
            code = found.groups[0][1]
            if code in ("A", "E"):
                return Sent(code)
            if code in ("R", "M", "W", "X"):
                return Fail(f"partner rejected the functional group (AK9 {code})", code=code)
            return Retry(f"partner answered AK9 {code} without our set's IK5")
        if found.ta1 and all(c in ("A", "E") for _, c, _ in found.ta1):
            return Sent(found.ta1[0][1])
        return Retry("no TA1 or 999 in the answer")

    def diff(self, a: bytes, b: bytes) -> list[Change]:
        """Element by element of the first set, by X12 path (`NM1[2].09`, `CLM[1].05-1`):
        delimiters and line breaks never differ, a changed element always does."""
        return diff_values(self.parse(a).body.leaves(), self.parse(b).body.leaves())


def _unsupported(body: X12Message) -> Problem | None:
    """A set whose ST01 the engine supports no guide for is refused in strict and lenient
    mode alike (IK5 R): answering it A or E would say it was checked. IK502 6 for an id
    that is not an X12 one (three digits), 1 (transaction set not supported) otherwise.
    The text names the id, which is not PHI."""
    st = body.segments[0]
    st01 = st.element(1)
    if st.id != "ST" or supported(st01):  # a partner's TA1 has no set to judge
        return None
    if not (len(st01) == 3 and st01.isdecimal()):
        return Problem(f"ST01 {st01[:10]!r} is not an X12 transaction set identifier",
                       code="6", segment="ST", field=1, severity="E")
    return Problem(f"transaction set {st01} is not supported: the engine has no guide to "
                   "read it against", code="1", segment="ST", field=1, severity="E")


def _severity(issue: Issue, strict: bool) -> str:
    """E refuses the set in strict mode; W notes it (IK5 E). A segment read into its
    own loop out of the guide's order (IK3 7) is only noted, even in strict mode: its
    data is read whole and where it belongs, and payers take such files."""
    return "E" if strict and issue.code != OUT_OF_SEQUENCE else "W"


def _set_answer(tset: TransactionSet, given: Outcome | SetAnswer | str,
                group: Group) -> SetAnswer:
    """What the 999 says of one set: `given` is its outcome, the answer already made
    for it alone (a set of a batch), or a bare IK5 code."""
    st = tset.st
    errors: list[str]
    notes: list[tuple[str, ...]] = []
    if isinstance(given, SetAnswer):
        code, errors, notes = given.code, list(given.errors), list(given.segments)
        if code != "A" and not errors:
            errors = ["5"]
    elif isinstance(given, str):
        code, errors = given, ([] if given == "A" else ["5"])
    else:
        notes = [p.where for p in given.problems if len(p.where) == 6]
        if given.verdict is Verdict.ACCEPTED:
            code, errors = ("E", ["5"]) if notes else ("A", [])
        else:
            # not processed (its mapping failed, say): stored for the analyst, but for the
            # sender refused, to be sent again corrected; E would tell it the set is taken
            code = "R"
            errors = list(dict.fromkeys(  # not an envelope's TA105/AK9 codes ("4": GE02)
                p.code for p in given.problems
                if p.code in _IK5_CODES and p.segment not in ("ISA", "GS"))) or ["5"]
    if tset.codes:  # the set's own envelope is broken: say so whatever the outcome
        code, errors = "R", list(tset.codes)
    elif group.codes:
        code, errors = "R", errors or ["5"]
    # AK201 is mandatory: a set without ST01 is named by its group's kind (GS01)
    st01 = st.element(1) or _SET_OF_GROUP.get(group.gs.element(1), "")
    return SetAnswer(st01, st.element(2), st.element(3), code,
                     errors if code != "A" else [], notes if code != "A" else [])
