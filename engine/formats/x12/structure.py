"""Loop structure of X12 transaction sets: definitions written from the public facts of
the 5010 implementation guides (CMS and payer companion guides, public examples), a
reader that places each segment of a set in its loop, and the structure problems it
finds on the way (999 IK3/IK4 codes).

A definition is a tree of `Loop`s. A loop opens on its trigger segment (an id and, for
segments that repeat with different meanings, the qualifier values of one element:
NM1*IL opens 2010BA, HL with HL03 = 22 opens 2000B) and holds its own segments and child
loops in the order the guide gives them. The reader walks a set once: each segment is
matched in the open loop at or after the last matched place, else in the loops around
it (which closes the inner ones), the way the guides' loop rules read. A segment that an
open loop has a place for earlier (a claim's CAS after its DTM) is read into that loop
and reported out of sequence (IK3 7), never taken as the start of a new loop. A segment
that fits nowhere is kept in the loop it came in and reported (IK3 2 unexpected, or 1
when no loop of the set knows its id); it is never dropped, so a mapping still sees it.

What is checked: required segments and loops present (IK3 3), segment and loop repeat
limits (IK3 5 and 4), mandatory elements present (IK4 1), element values in the code
lists a definition gives (IK4 7), and the amounts and dates a mapping reads (IK4 6 a
decimal that is not one, 8 a date that is not one): a definition lists only the codes
and formats a mapping relies on, so that what a mapping has to leave out is told.
Element lengths, data types and the full code lists are pyx12's, in strict mode, for
the sets it has maps for (pyx12_check.py).

Mappings read the tree: `tree.first("2010BA").value("NM109")` is the subscriber's
member id whatever else the sender put before it.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from engine.formats.x12.tokens import Segment

UNBOUNDED = 0
OUT_OF_SEQUENCE = "7"  # IK304: segment not in proper sequence


@dataclass(frozen=True)
class Seg:
    """A segment as a loop expects it."""

    id: str
    usage: str = "S"  # R required, S situational
    max: int = 1  # repeat limit within one loop instance; 0 unbounded
    qualifiers: tuple[str, ...] = ()  # values of element `at` that identify it
    at: int = 1  # which element holds the qualifier (HL03 for HL)
    required: tuple[int, ...] = ()  # mandatory elements (IK4 1 when empty)
    codes: tuple[tuple[int, tuple[str, ...]], ...] = ()  # element -> allowed values
    formats: tuple[tuple[int, str], ...] = ()  # element -> R (a decimal) or DATE (below)

    def matches(self, segment: Segment) -> bool:
        return segment.id == self.id and (
            not self.qualifiers or segment.element(self.at) in self.qualifiers)


@dataclass(frozen=True)
class Loop:
    """A loop: opened by `trigger`, holding `body` (segments and loops) in order."""

    id: str
    name: str
    trigger: Seg
    usage: str = "S"
    max: int = 1
    body: tuple[Seg | Loop, ...] = ()

    def ids(self) -> Iterator[str]:
        yield self.trigger.id
        for item in self.body:
            if isinstance(item, Loop):
                yield from item.ids()
            else:
                yield item.id


@dataclass(frozen=True)
class SetDefinition:
    """A transaction set: ST01, the implementation convention (GS08/ST03) it is for,
    and its table as one loop opened by ST."""

    st01: str
    convention: str
    name: str
    root: Loop


@dataclass(frozen=True)
class Issue:
    """One structure problem, in 999 terms: IK3 (segment id, position in the set counting
    ST as 1, loop id, IK304 code) and, for an element, IK4 (position, IK403 code)."""

    segment: str
    position: int
    loop: str
    code: str  # IK304: 1 unrecognized, 2 unexpected, 3 required missing, 4 loop over
    #           max, 5 segment over max, 7 not in proper sequence, 8 element errors
    element: int = 0
    element_code: str = ""  # IK403: 1 mandatory missing, 7 invalid code value
    text: str = ""  # for the analyst: names, never values


@dataclass
class Node:
    """One instance of a loop in a parsed set."""

    loop: Loop
    segments: list[Segment] = field(default_factory=list)  # the trigger first
    children: list[Node] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # each segment's place in the set

    @property
    def id(self) -> str:
        return self.loop.id

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            yield from child.walk()

    def all(self, loop_id: str) -> list[Node]:
        """Every instance of a loop within this one (this one included), in order."""
        return [node for node in self.walk() if node.id == loop_id]

    def first(self, loop_id: str) -> Node | None:
        return next((node for node in self.walk() if node.id == loop_id), None)

    def kids(self, loop_id: str) -> list[Node]:
        """The direct children of one loop id (a 2110C under this 2000C, not a cousin's)."""
        return [child for child in self.children if child.id == loop_id]

    def seg(self, seg_id: str, qualifier: str = "", at: int = 1) -> Segment | None:
        return next(iter(self.segs(seg_id, qualifier, at)), None)

    def segs(self, seg_id: str, qualifier: str = "", at: int = 1) -> list[Segment]:
        """This loop's own segments of an id (and qualifier in element `at`)."""
        return [s for s in self.segments
                if s.id == seg_id and (not qualifier or s.element(at) == qualifier)]

    def value(self, path: str) -> str:
        """An element of this loop's own segments: "NM109", "REF[SY]02", "CLM05-1",
        "DTP[291]03"; "" when absent."""
        seg_id, qualifier, element, component = _split_path(path)
        segment = self.seg(seg_id, qualifier)
        return segment.element(element, component) if segment is not None else ""


def _split_path(path: str) -> tuple[str, str, int, int]:
    path = path.strip()
    qualifier = ""
    if "[" in path:
        head, rest = path.split("[", 1)
        qualifier, tail = rest.split("]", 1)
        path = head + tail.lstrip(".")
    component = 0
    if "-" in path:
        path, comp = path.split("-", 1)
        component = int(comp)
    return path[:-2], qualifier, int(path[-2:]), component


class _Open:
    """A loop instance being read: where in its body the last segment matched, and how
    often each body item has been used in it."""

    __slots__ = ("counts", "index", "node")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.index = 0
        self.counts: dict[int, int] = {}


def read_structure(definition: SetDefinition, segments: list[Segment]
                   ) -> tuple[Node, list[Issue]]:
    """Place each segment of a set (ST..SE) in its loop; the tree and what is wrong."""
    issues: list[Issue] = []
    known = set(definition.root.ids()) | {"SE"}
    root = Node(definition.root, [segments[0]], positions=[1])
    stack = [_Open(root)]
    for position, segment in enumerate(segments[1:], start=2):
        if segment.id == "SE":
            break
        if not _place(stack, segment, position, issues):
            code = "2" if segment.id in known else "1"
            issues.append(Issue(segment.id, position, stack[-1].node.id, code,
                                text=f"{segment.id} at position {position} "
                                     f"{'is not expected' if code == '2' else 'is unknown'}"
                                     f" in loop {stack[-1].node.id}"))
            stack[-1].node.segments.append(segment)
            stack[-1].node.positions.append(position)
    while stack:
        _close(stack.pop(), issues)
    for node in root.walk():
        for segment, position in zip(node.segments, node.positions, strict=True):
            _check_elements(node, segment, position, issues)
    _check_hierarchy(root, issues)
    return root, issues


def _check_hierarchy(root: Node, issues: list[Issue]) -> None:
    """HL01 numbers each level once, and HL02 names a level read before it: a parent
    that does not exist would hang a patient under nobody (IK4 7 on the element)."""
    seen: set[str] = set()
    levels = sorted((position, node.id, segment) for node in root.walk()
                    for segment, position in zip(node.segments, node.positions, strict=True)
                    if segment.id == "HL")
    for position, loop, segment in levels:
        number, parent = segment.element(1), segment.element(2)
        if number and number in seen:
            issues.append(Issue("HL", position, loop, "8", 1, "7",
                                text=f"HL01 at position {position} repeats an earlier "
                                     f"level's number in loop {loop}"))
        if parent and parent not in seen:
            issues.append(Issue("HL", position, loop, "8", 2, "7",
                                text=f"HL02 at position {position} names a parent level "
                                     f"that comes nowhere before it in loop {loop}"))
        seen.add(number)


def _place(stack: list[_Open], segment: Segment, position: int, issues: list[Issue]
           ) -> bool:
    """Put one segment in its loop: where the guide's order expects it next, else in an
    open loop that has a place for it earlier (out of sequence, IK3 7), else in a loop
    whose opening segment is missing. The order matters: a segment an open loop knows
    is never taken as the start of a loop of its own (a claim's CAS after its DTM is
    still the claim's, not a service line without its SVC)."""
    return (_follow(stack, segment, position, issues)
            or _out_of_sequence(stack, segment, position, issues)
            or _imply(stack, segment, position, issues))


def _follow(stack: list[_Open], segment: Segment, position: int, issues: list[Issue]
            ) -> bool:
    """Match in the innermost open loop first, then outwards, closing what is left."""
    for depth in range(len(stack) - 1, -1, -1):
        current = stack[depth]
        body = current.node.loop.body
        for index in range(current.index, len(body)):
            item = body[index]
            trigger = item.trigger if isinstance(item, Loop) else item
            if not trigger.matches(segment):
                continue
            while len(stack) > depth + 1:
                _close(stack.pop(), issues)
            _use(current, index, item, segment, position, issues)
            if isinstance(item, Loop):
                node = Node(item, [segment], positions=[position])
                current.node.children.append(node)
                stack.append(_Open(node))
            else:
                current.node.segments.append(segment)
                current.node.positions.append(position)
            return True
    return False


def _out_of_sequence(stack: list[_Open], segment: Segment, position: int,
                     issues: list[Issue]) -> bool:
    """A segment of an open loop (the innermost first) sent after segments the guide
    puts after it: kept in that loop, its place in the loop and the inner loops left as
    they are, so what follows reads on where it was. Reported as IK3 7 (segment not in
    proper sequence) unless it only swaps places with segments of its own id, which the
    X12 table holds at one position (NM1*IL before NM1*QC). A segment that would go
    over its repeat limit in the innermost loop that knows it is not taken this way, nor
    handed to a loop further out: a second claim patient more likely starts a claim
    whose CLP is missing, and a dependent's second DMG is not the subscriber's. Nor is
    a segment handed past the innermost hierarchical level (an HL loop): each level is
    another party (billing provider, subscriber, patient), and a stray PRV inside a claim
    is not the billing provider's taxonomy."""
    for depth in range(len(stack) - 1, -1, -1):
        current = stack[depth]
        body = current.node.loop.body
        for index in range(current.index - 1, -1, -1):
            item = body[index]
            if isinstance(item, Loop) or not item.matches(segment):
                continue
            if item.max and current.counts.get(index, 0) >= item.max:
                return False
            current.counts[index] = current.counts.get(index, 0) + 1
            current.node.segments.append(segment)
            current.node.positions.append(position)
            if not _same_position(body, index, current.index):
                issues.append(Issue(segment.id, position, current.node.id, OUT_OF_SEQUENCE,
                                    text=f"{segment.id} at position {position} comes "
                                         f"after segments the guide puts after it in "
                                         f"loop {current.node.id}; read into that loop"))
            return True
        if current.node.loop.trigger.id == "HL":
            return False
    return False


def _same_position(body: tuple[Seg | Loop, ...], earlier: int, last: int) -> bool:
    """Whether every item from `earlier` to `last` is a segment of one id: the guide
    splits one X12 table position by qualifier (NM1*QC, NM1*IL...), and the standard
    does not order them."""
    items = body[earlier:last + 1]
    return all(isinstance(item, Seg) and item.id == body[earlier].id for item in items)


def _imply(stack: list[_Open], segment: Segment, position: int, issues: list[Issue]
           ) -> bool:
    """A segment that belongs inside a loop whose opening segment never came (a DMG
    after a missing NM1*IL): open that loop without it, report the missing trigger once
    (IK3 3), and read on, rather than call every later segment unexpected."""
    for depth in range(len(stack) - 1, -1, -1):
        current = stack[depth]
        body = current.node.loop.body
        for index in range(current.index, len(body)):
            item = body[index]
            if not isinstance(item, Loop) or not any(
                    isinstance(inner, Seg) and inner.matches(segment) for inner in item.body):
                continue
            while len(stack) > depth + 1:
                _close(stack.pop(), issues)
            current.index = index
            current.counts[index] = current.counts.get(index, 0) + 1
            qualifier = f" ({'/'.join(item.trigger.qualifiers)})" \
                if item.trigger.qualifiers else ""
            issues.append(Issue(item.trigger.id, position, item.id, "3",
                                text=f"required segment {item.trigger.id}{qualifier} "
                                     f"opening loop {item.id} is missing"))
            node = Node(item)
            current.node.children.append(node)
            opened = _Open(node)
            stack.append(opened)
            _place(stack, segment, position, issues)
            return True
    return False


def _use(current: _Open, index: int, item: Seg | Loop, segment: Segment, position: int,
         issues: list[Issue]) -> None:
    current.index = index
    count = current.counts.get(index, 0) + 1
    current.counts[index] = count
    if item.max and count == item.max + 1:
        is_loop = isinstance(item, Loop)
        issues.append(Issue(segment.id, position, item.id if is_loop else current.node.id,
                            "4" if is_loop else "5",
                            text=f"{'loop ' + item.id if is_loop else segment.id} repeats "
                                 f"more than {item.max} time(s) in loop {current.node.id}"))


def _close(done: _Open, issues: list[Issue]) -> None:
    """Report what a closing loop instance required and did not get."""
    node = done.node
    for index, item in enumerate(node.loop.body):
        if item.usage != "R" or done.counts.get(index):
            continue
        trigger = item.trigger if isinstance(item, Loop) else item
        what = f"loop {item.id}" if isinstance(item, Loop) else f"segment {item.id}"
        qualifier = f" ({'/'.join(trigger.qualifiers)})" if trigger.qualifiers else ""
        issues.append(Issue(trigger.id, node.positions[0] if node.positions else 0,
                            node.id, "3",
                            text=f"required {what}{qualifier} is missing from loop "
                                 f"{node.id}"))


def _check_elements(node: Node, segment: Segment, position: int,
                    issues: list[Issue]) -> None:
    spec = _spec_of(node, segment)
    if spec is None:
        return
    for element in spec.required:
        if not segment.element(element):
            issues.append(Issue(segment.id, position, node.id, "8", element, "1",
                                text=f"{segment.id}{element:02d} is required in loop "
                                     f"{node.id}"))
    for element, allowed in spec.codes:
        value = segment.element(element, 1 if segment.id != "ISA" else 0)
        if value and value not in allowed:
            issues.append(Issue(segment.id, position, node.id, "8", element, "7",
                                text=f"{segment.id}{element:02d} holds a code this "
                                     f"transaction does not allow in loop {node.id}"))
    for element, kind in spec.formats:
        code = _format_error(segment, element, kind)
        if code:
            issues.append(Issue(segment.id, position, node.id, "8", element, code,
                                text=f"{segment.id}{element:02d} at position {position} "
                                     f"is not {_FORMAT_NAMES[kind]} in loop {node.id}"))


DECIMAL, DATE = "R", "DATE"
_FORMAT_NAMES = {DECIMAL: "a decimal number", DATE: "a date in the format its qualifier "
                                                    "names"}
_R = re.compile(r"-?(?:\d+\.?\d*|\.\d+)")
_DATE_FORMATS = {"D8": ("%Y%m%d",), "RD8": ("%Y%m%d", "%Y%m%d"), "DT": ("%Y%m%d%H%M",)}


def _format_error(segment: Segment, element: int, kind: str) -> str:
    """The IK403 code of an element not in its format ("" when it is, or is empty): 6
    for a decimal with a character X12's R type does not allow (a comma, a letter), 8
    for a date that is not one in the format its qualifier, the element before it, names
    (DMG01 D8 for DMG02; a qualifier outside the list is the code list's to report)."""
    value = segment.element(element).strip()
    if not value:
        return ""
    if kind == DECIMAL:
        return "" if _R.fullmatch(value) else "6"
    formats = _DATE_FORMATS.get(segment.element(element - 1).strip())
    if formats is None:
        return ""
    parts = value.split("-") if len(formats) > 1 else [value]
    if len(parts) != len(formats):
        return "8"
    try:
        for part, form in zip(parts, formats, strict=True):
            datetime.datetime.strptime(part, form)
    except ValueError:
        return "8"
    return ""


def _spec_of(node: Node, segment: Segment) -> Seg | None:
    if node.segments and segment is node.segments[0] and node.loop.trigger.matches(segment):
        return node.loop.trigger
    for item in node.loop.body:
        if isinstance(item, Seg) and item.matches(segment):
            return item
    return None
