"""Validation of a tokenized HL7v2 message against its version's message structure.

The rules are hl7apy's: message structures, segment groups and their cardinality, field
optionality and repetition, data types, base type lengths and code tables, for every
version it ships (2.1 to 2.8.2). What is *not* hl7apy's is the walk. Measured here (see
scripts/bench_codec.py), `hl7apy.parser.parse_message` builds an object per field,
component and subcomponent and manages ~60 ADT/s (~45/s with its validation), and its
`Validator` stops at the first error and puts field values into its messages (PHI). So
each (version, structure) and (version, segment) is compiled once from hl7apy's reference
tables into the small plans below (cached; ~25 ms the first time a version is used), and
the plans are checked against our own lazy tokens: the same rules at ~4,000 ADT/s, every
problem reported, located, and free of values.

Nothing here runs unless a channel asks for validation; routing never calls it.

Levels: "strict" reports structure, required-field, repetition and data type problems
as errors (E), which a channel rejects with AR; code-table misses, over-long values and
content beyond what the version defines stay warnings (W), as hl7apy ranks them, since
user-defined tables and lengths differ per site. "lenient" reports the same problems,
all as warnings, because the message is accepted. Z-segments are allowed anywhere and
not checked, as hl7apy treats them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any, NamedTuple

import hl7apy
from hl7apy.exceptions import ChildNotFound
from hl7apy.utils import get_date_info, get_datetime_info, get_timestamp_info

from engine.formats.hl7v2.message import Hl7Message, Segment
from engine.message import Problem

LEVELS = ("off", "lenient", "strict")

# Event -> message structure where HL7 shares one structure between events (table 0354,
# v2.4 on); hl7apy knows structures but not this map. Tried after MSH-9.3 and TYPE_EVENT.
_SHARED_STRUCTURES = {
    **dict.fromkeys(("ADT_A04", "ADT_A08", "ADT_A13"), "ADT_A01"),
    **dict.fromkeys(("ADT_A14", "ADT_A28", "ADT_A31"), "ADT_A05"),
    "ADT_A07": "ADT_A06",
    **dict.fromkeys(("ADT_A10", "ADT_A11"), "ADT_A09"),
    **dict.fromkeys(("ADT_A22", "ADT_A23", "ADT_A25", "ADT_A26", "ADT_A27", "ADT_A29",
                     "ADT_A32", "ADT_A33"), "ADT_A21"),
    **dict.fromkeys(("ADT_A34", "ADT_A35", "ADT_A36", "ADT_A46", "ADT_A47", "ADT_A48",
                     "ADT_A49"), "ADT_A30"),
    **dict.fromkeys(("ADT_A40", "ADT_A41", "ADT_A42"), "ADT_A39"),
    "ADT_A44": "ADT_A43", "ADT_A51": "ADT_A50", "ADT_A53": "ADT_A52", "ADT_A55": "ADT_A52",
    "ADT_A62": "ADT_A61",
    **{f"MDM_T{n:02d}": "MDM_T01" for n in (3, 5, 7, 9, 11)},
    **{f"MDM_T{n:02d}": "MDM_T02" for n in (4, 6, 8, 10)},
    **{f"SIU_S{n}": "SIU_S12" for n in (*range(13, 25), 26)},
    **{f"SRM_S{n:02d}": "SRM_S01" for n in range(2, 12)},
    "ORU_R31": "ORU_R30", "ORU_R32": "ORU_R30", "RDE_O25": "RDE_O11", "RRE_O26": "RRE_O12",
    **dict.fromkeys(("REF_I13", "REF_I14", "REF_I15"), "REF_I12"),
}
# v2.3 and v2.3.1 had fewer ADT structures: these events used ADT_A01 and ADT_A09.
_LEGACY_STRUCTURES = {
    **dict.fromkeys(("ADT_A05", "ADT_A14", "ADT_A28", "ADT_A31"), "ADT_A01"),
    **dict.fromkeys(("ADT_A15", "ADT_A21", "ADT_A22", "ADT_A23", "ADT_A25", "ADT_A26",
                     "ADT_A27", "ADT_A29", "ADT_A32", "ADT_A33"), "ADT_A09"),
}

# NM and SI as the standard defines them; hl7apy's Decimal() would also take "NaN", "1_0".
_NM = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)\Z")
_SI = re.compile(r"\d+\Z")


def _parses(reader: Callable[[str], Any]) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        try:
            reader(text)
        except (ValueError, TypeError, IndexError):
            return False
        return True
    return check


# Base data types whose values hl7apy checks when it parses strictly.
_CHECKS: dict[str, Callable[[str], bool]] = {
    "NM": lambda t: _NM.match(t) is not None,
    "SI": lambda t: _SI.match(t) is not None,
    "DT": _parses(get_date_info),
    "DTM": _parses(get_datetime_info),
    "TM": _parses(get_timestamp_info),
}


# -- compiled plans --------------------------------------------------------------------

class _Type(NamedTuple):
    """How to check one value of a data type: components, or a primitive check."""

    name: str
    parts: tuple[_Slot, ...] | None  # None: a primitive
    check: Callable[[str], bool] | None = None
    max_length: int | None = None


class _Slot(NamedTuple):
    """A data type where it is used: a field or component, with its label and table."""

    label: str
    type: _Type
    table: frozenset[str] | _Codes | None = None
    table_id: str = ""


class _Field(NamedTuple):
    number: int
    min: int
    max: int  # -1: unbounded
    slot: _Slot


class _SegmentRules(NamedTuple):
    fields: dict[int, _Field]  # by field number; withdrawn fields are absent
    required: tuple[_Field, ...]
    last: int  # the highest field number the version defines


class _Node(NamedTuple):
    """A child of a message or group: a segment (group None) or a segment group."""

    name: str
    min: int
    max: int
    first: frozenset[str]  # segment names that can begin it
    lead: str  # the segment to name when it is missing
    group: _Group | None = None


class _Group(NamedTuple):
    name: str
    choice: bool
    children: tuple[_Node, ...]
    ahead: tuple[frozenset[str], ...]  # ahead[i]: names that can begin children[i:]


class _Structure(NamedTuple):
    name: str
    root: _Group
    segments: frozenset[str]  # every segment the structure mentions


def _label(name: str) -> str:
    return name.lower().replace("_", " ")


@cache
def _base_types(version: str) -> dict[str, _Type]:
    """The version's base data types, with hl7apy's maximum length for each."""
    types = {}
    for name, cls in hl7apy.load_library(version).get_base_datatypes().items():
        try:
            max_length = getattr(cls(""), "max_length", None)
        except Exception:  # date, time and numeric types take no text: no length
            max_length = None
        if name == "NM":
            max_length = 16  # hl7apy's NM limit (it counts digits of the Decimal)
        types[name] = _Type(name, None, _CHECKS.get(name), max_length)
    return types


class _Codes:
    """A code table with pattern entries, such as table 0396's "HL7nnnn" and "99zzz"."""

    __slots__ = ("codes", "pattern")

    def __init__(self, codes: frozenset[str], pattern: re.Pattern[str]) -> None:
        self.codes = codes
        self.pattern = pattern

    def __contains__(self, code: object) -> bool:
        return code in self.codes or (isinstance(code, str)
                                      and self.pattern.fullmatch(code) is not None)


_PLACEHOLDER = re.compile(r"([A-Z0-9]*[A-Za-z0-9]*?)(n+|[nsxz]+)")


@cache
def _table(version: str, table_id: str | None) -> frozenset[str] | _Codes | None:
    """hl7apy's values for a table; None when it has none or lists them as open ("...")."""
    if not table_id:
        return None
    try:
        values = hl7apy.load_reference(table_id, "Table", version)[1]
    except ChildNotFound:
        return None
    if not values or any("..." in v for v in values):
        return None
    patterns = []
    for value in values:
        m = _PLACEHOLDER.fullmatch(value)
        if m and m[2] != value and m[2].islower():
            run = m[2]
            tail = rf"\d{{{len(run)}}}" if set(run) == {"n"} else "[A-Za-z0-9]+"
            patterns.append(re.escape(m[1]) + tail)
    if not patterns:
        return frozenset(values)
    return _Codes(frozenset(values), re.compile("|".join(patterns)))


def _type_of(version: str, ref: Any) -> _Type:
    """A `_Type` from an hl7apy reference: ('leaf', _, type, ...) or ('sequence', ...)."""
    datatype = ref[2] or ""
    if ref[0] == "leaf":
        return _base_types(version).get(datatype) or _Type(datatype, None)
    parts = tuple(_slot(version, child[1]) for child in ref[1])
    return _Type(datatype, parts)


def _slot(version: str, ref: Any) -> _Slot:
    table_id = ref[4] if ref[0] == "leaf" else None
    return _Slot(_label(ref[3] or ""), _type_of(version, ref), _table(version, table_id),
                 (table_id or "").removeprefix("HL7"))


@lru_cache(maxsize=4096)
def _datatype(version: str, name: str) -> _Type | None:
    """A data type by name (for OBX-5, whose type OBX-2 names), or None if unknown."""
    base = _base_types(version).get(name)
    if base is not None:
        return base
    try:
        children = hl7apy.load_reference(name, "Datatypes_Structs", version)
    except ChildNotFound:
        return None
    return _Type(name, tuple(_slot(version, child[1]) for child in children))


@lru_cache(maxsize=4096)
def _segment_rules(version: str, name: str) -> _SegmentRules | None:
    try:
        ref = hl7apy.load_reference(name, "Segment", version)
    except ChildNotFound:
        return None
    fields = []
    for child_name, child_ref, (low, high), _kind in ref[1]:
        number = int(child_name.rsplit("_", 1)[1])
        if name == "MSH" and number <= 2:
            continue  # the delimiters, already read by the tokenizer
        fields.append(_Field(number, low, high, _slot(version, child_ref)))
    last = max((f.number for f in fields), default=2 if name == "MSH" else 0)
    return _SegmentRules({f.number: f for f in fields}, tuple(f for f in fields if f.min > 0),
                         last)


def _node(version: str, name: str, ref: Any, low: int, high: int, kind: str) -> _Node:
    if kind != "GRP":
        if name == "ANYHL7SEGMENT":  # hl7apy's wildcard: a choice of every segment
            first = frozenset(c[0] for c in ref[1])
            return _Node(name, low, high, first, "", _Group(name, True, tuple(
                _Node(seg, 1, 1, frozenset((seg,)), seg) for seg in sorted(first)),
                (first, frozenset())))
        return _Node(name, low, high, frozenset((name,)), name)
    group = _group(version, name, ref)
    first: set[str] = set()
    lead = ""
    for child in group.children:
        first |= child.first
        lead = lead or child.lead
        if child.min > 0 and not group.choice:
            lead = child.lead
            break
    return _Node(name, low, high, frozenset(first), lead, group)


def _group(version: str, name: str, ref: Any) -> _Group:
    children = tuple(_node(version, n, r, lo, hi, k) for n, r, (lo, hi), k in ref[1])
    ahead = [frozenset[str]()]
    for child in reversed(children):
        ahead.append(child.first | ahead[-1])
    return _Group(name, ref[0] == "choice", children, tuple(reversed(ahead)))


@lru_cache(maxsize=1024)
def _structure(version: str, name: str) -> _Structure:
    root = _group(version, name, hl7apy.load_reference(name, "Message", version))
    names: set[str] = set()
    stack = [root]
    while stack:
        for child in stack.pop().children:
            if child.group is None:
                names.add(child.name)
            else:
                stack.append(child.group)
    return _Structure(name, root, frozenset(names))


def _supported_version(declared: str) -> str | None:
    if declared in hl7apy.SUPPORTED_LIBRARIES:
        return declared
    if declared.endswith(".0") and declared[:-2] in hl7apy.SUPPORTED_LIBRARIES:
        return declared[:-2]  # "2.3.0": some senders pad the version
    return None


@lru_cache(maxsize=4096)
def _structure_name(version: str, code: str, event: str, declared: str) -> str | None:
    """MSH-9.3 if hl7apy knows it, else derived from MSH-9.1 and MSH-9.2."""
    known = hl7apy.load_library(version).MESSAGES
    pair = f"{code}_{event}" if event else code
    candidates = (declared, pair, _SHARED_STRUCTURES.get(pair), _LEGACY_STRUCTURES.get(pair),
                  "ACK" if code == "ACK" else None)
    return next((c for c in candidates if c and c in known), None)


# -- the walk --------------------------------------------------------------------------

class _Walk:
    """One validation run: the message's segments against one compiled structure."""

    def __init__(self, message: Hl7Message, version: str, structure: _Structure,
                 strict: bool) -> None:
        self.message = message
        self.strict = strict
        self.version = version
        self.structure = structure
        self.d = message.delimiters
        self.problems: list[Problem] = []
        self.missing: list[Problem] = []
        self.misplaced: set[str] = set()
        self.seen: dict[tuple[str, str], bool] = {}
        seen: dict[str, int] = {}
        self.where: list[str] = []  # "OBX[3]" for the third OBX, "PID" for the first
        for seg in message.segments:
            seen[seg.name] = n = seen.get(seg.name, 0) + 1
            self.where.append(seg.name if n == 1 else f"{seg.name}[{n}]")
        # Z-segments may stand anywhere (hl7apy allows them everywhere): not matched.
        self.order = [i for i, s in enumerate(message.segments) if not s.name.startswith("Z")]

    def problem(self, text: str, code: str, segment: str | None, field: int | None = None,
                severity: str = "E") -> None:
        self.problems.append(Problem(text, code, segment, field, severity if self.strict else "W"))

    def run(self) -> list[Problem]:
        pos = self.match(self.structure.root, 0, frozenset())
        while pos < len(self.order):  # only foreign segments can be left over
            self.misplaced_segment(pos, None)
            pos += 1
        self.problems += [p for p in self.missing if p.segment not in self.misplaced]
        for index, seg in enumerate(self.message.segments):
            # A segment foreign to the structure was reported once; its fields are moot.
            if seg.name in self.structure.segments:
                self.check_segment(seg, self.where[index])
        return self.problems

    # structure: a greedy match of segment names against groups, as HL7 parsers do
    def name_at(self, pos: int) -> str | None:
        return self.message.segments[self.order[pos]].name if pos < len(self.order) else None

    def match(self, group: _Group, pos: int, outer: frozenset[str]) -> int:
        """Match one occurrence of `group` from `pos`; return the position after it."""
        children = group.children
        if group.choice:
            name = self.name_at(pos)
            child = next(c for c in children if name in c.first)
            return self.take(child, pos, outer)
        i = count = 0
        while i < len(children):
            child = children[i]
            name = self.name_at(pos)
            if name is not None and name in child.first and (child.max < 0 or count < child.max):
                pos = self.take(child, pos, group.ahead[i] | outer)
                count += 1
                continue
            if name is not None and name not in group.ahead[i + 1] and name not in outer:
                self.misplaced_segment(pos, child if name in child.first else None)
                pos += 1
                continue
            if count < child.min:
                self.missing_child(child)
            i, count = i + 1, 0
        return pos

    def take(self, child: _Node, pos: int, outer: frozenset[str]) -> int:
        return pos + 1 if child.group is None else self.match(child.group, pos, outer)

    def misplaced_segment(self, pos: int, repeated: _Node | None) -> None:
        seg = self.message.segments[self.order[pos]]
        s = f"{self.structure.name} (HL7 {self.version})"
        if repeated is not None:
            text = (f"segment {self.where[self.order[pos]]} repeats more often than {s} "
                    f"allows (at most {repeated.max})")
        elif seg.name in self.structure.segments:
            text = f"segment {self.where[self.order[pos]]} is out of sequence for {s}"
        else:
            text = f"segment {seg.name} is not part of message structure {s}"
        self.misplaced.add(seg.name)
        self.problem(text, "100", seg.name)

    def missing_child(self, child: _Node) -> None:
        s = f"{self.structure.name} (HL7 {self.version})"
        if child.group is None:
            text = f"required segment {child.name} is missing from {s}"
        else:
            group = child.name.removeprefix(f"{self.structure.name}_")
            text = (f"required segment group {group} (beginning with {child.lead}) "
                    f"is missing from {s}")
        self.missing.append(Problem(text, "100", child.lead or None, None,
                                    "E" if self.strict else "W"))

    # fields: optionality, repetition, data types, lengths and tables
    def check_segment(self, seg: Segment, where: str) -> None:
        rules = _segment_rules(self.version, seg.name)
        if rules is None:
            return  # not a segment of this version: the structure walk reported it
        present = len(seg)
        for rule in rules.required:
            if rule.number > present or not seg.raw(rule.number):
                self.problem(f"{where}-{rule.number} ({rule.slot.label}) is required in HL7 "
                             f"{self.version} but empty", "101", seg.name, rule.number)
        for number in range(1, present + 1):
            raw = seg.raw(number)
            rule = rules.fields.get(number) if raw else None
            if rule is None:
                continue
            slot = rule.slot
            reps = raw.split(self.d.repetition) if self.d.repetition in raw else [raw]
            if 0 <= rule.max < len(reps):
                self.problem(f"{where}-{number} ({slot.label}) repeats {len(reps)} times; "
                             f"HL7 {self.version} allows {rule.max}", "102", seg.name, number)
            if slot.type.name == "varies":
                slot = self.varies(seg, number, slot)
                if slot is None:
                    continue
            for rep in reps:
                if rep and rep != '""' and not self.passes(rep, slot, self.d.component):
                    self.check_value(rep, slot, 0, f"{where}-{number}", seg.name, number)
        if present > rules.last and any(seg.raw(n) for n in range(rules.last + 1, present + 1)):
            self.problem(f"{where} has fields beyond {seg.name}-{rules.last}, the last that HL7 "
                         f"{self.version} defines", "102", seg.name, rules.last + 1, "W")

    def varies(self, seg: Segment, number: int, slot: _Slot) -> _Slot | None:
        """OBX-5 takes the data type named in OBX-2; other 'varies' fields are not checked."""
        if seg.name != "OBX" or number != 5:
            return None
        datatype = _datatype(self.version, seg.value(2))
        return None if datatype is None else slot._replace(type=datatype)

    def check_value(self, text: str, slot: _Slot, level: int, path: str, segment: str,
                    field: int) -> None:
        """Check one value at `level` (0 field repetition, 1 component, 2 subcomponent)."""
        kind = slot.type
        if kind.parts is None or level >= 2:
            self.check_primitive(text, slot, level, path, segment, field)
            return
        separator = self.d.component if level == 0 else self.d.subcomponent
        pieces = text.split(separator) if separator in text else [text]
        parts = kind.parts
        if len(pieces) > len(parts) and any(pieces[len(parts):]):
            self.problem(f"{path} ({slot.label}) has {len(pieces)} components; {kind.name} "
                         f"defines {len(parts)}", "102", segment, field, "W")
        below = self.d.subcomponent if level == 0 else None
        for n, (piece, part) in enumerate(zip(pieces, parts, strict=False), start=1):
            if piece and piece != '""' and not self.passes(piece, part, below):
                self.check_value(piece, part, level + 1, f"{path}.{n}", segment, field)

    def passes(self, text: str, slot: _Slot, separator: str | None) -> bool:
        """True for a primitive value with nothing to report: the common case, kept cheap
        so that only values with a problem (or with components) take the long way."""
        kind = slot.type
        return (kind.parts is None and (separator is None or separator not in text)
                and (kind.check is None or self.valid(kind, text))
                and (kind.max_length is None or len(text) <= kind.max_length)
                and (slot.table is None or text in slot.table))

    def valid(self, kind: _Type, text: str) -> bool:
        """The type's check, once per distinct value in this message (an ORU repeats its
        timestamps in every OBX); nothing is kept once the message is done."""
        key = (kind.name, text)
        ok = self.seen.get(key)
        if ok is None:
            ok = self.seen[key] = kind.check is None or kind.check(text)
        return ok

    def check_primitive(self, text: str, slot: _Slot, level: int, path: str, segment: str,
                        field: int) -> None:
        kind = slot.type
        separator = (self.d.component, self.d.subcomponent)[level] if level < 2 else ""
        if separator and separator in text:
            self.problem(f"{path} ({slot.label}) has components, but {kind.name} is a "
                         f"primitive data type", "102", segment, field, "W")
            text = text.split(separator, 1)[0]
        if not text or text == '""' or kind.parts is not None:
            return  # a composite below subcomponents: HL7 has no separator left to split
        if kind.check is not None and not self.valid(kind, text):
            self.problem(f"{path} ({slot.label}) is not a valid {kind.name}", "102",
                         segment, field)
        if kind.max_length is not None and len(text) > kind.max_length:
            self.problem(f"{path} ({slot.label}) is longer than {kind.max_length} "
                         f"characters, the maximum for {kind.name}", "102", segment, field,
                         "W")
        if slot.table is not None and text not in slot.table:
            self.problem(f"{path} ({slot.label}) holds a code that is not in HL7 table "
                         f"{slot.table_id}", "103", segment, field, "W")


def validate(message: Hl7Message, level: str) -> list[Problem]:
    """Every way `message` departs from its declared version's structure (see module doc).

    `level` is "off" (nothing is checked, nothing is loaded), "lenient" or "strict". The
    problems name segments, fields and rules, never values, so they can go into ACKs and
    logs. An unsupported version (203) or message type (200) is one problem on its own.
    """
    if level not in LEVELS:
        raise ValueError(f"validation level must be one of {', '.join(LEVELS)}, not {level!r}")
    if level == "off":
        return []
    severity = "E" if level == "strict" else "W"
    msh = message.segments[0]
    declared = message.version.strip()
    version = _supported_version(declared)
    if version is None:
        known = ", ".join(sorted(hl7apy.SUPPORTED_LIBRARIES, key=lambda v: v.split(".")))
        what = f"HL7 version {declared}" if declared else "a missing HL7 version"
        return [Problem(f"{what} cannot be validated (known: {known})", "203", "MSH", 12,
                        severity)]
    code, event = msh.value(9, 1).strip(), msh.value(9, 2).strip()
    name = _structure_name(version, code, event, msh.value(9, 3).strip())
    if name is None:
        kind = f"{code}^{event}" if event else code or "(none)"
        return [Problem(f"message type {kind} has no message structure in HL7 {version}",
                        "200", "MSH", 9, severity)]
    return _Walk(message, version, _structure(version, name), level == "strict").run()
