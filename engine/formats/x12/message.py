"""A parsed X12 transaction set: its segments, its envelope, its HL hierarchy, and the
field paths filters and mappings read it by.

Field paths: `SEG[SELECTOR]ELEMENT[-COMPONENT]`, an optional "." before the element,
optionally under an HL level as `HL[CODE]/...`:

- `ST01`, `BHT03`, `ISA06`, `GS08`: element 01 of the first ST (ISA and GS are the
  set's envelope);
- `NM1[IL].09` / `NM1[IL]09`: the first NM1 whose element 01 is IL (a qualifier);
- `NM1[2]09`: the second NM1 (a selector of digits only is an occurrence, 1-based);
- `CLM05-1`: component 1 of CLM05 (first repetition);
- `HL[22]/NM1[IL]09`: the member id of the first subscriber (HL03 = 22) loop, read from
  that HL's own segments only.

The HL view (`loops`) is the generic hierarchy every HIPAA set with HL segments shares:
each HL with its HL01 id, HL02 parent, HL03 level code, its own segments (up to the next
HL) and its children. The loops of the implementation guide (2000A, 2010BA, 2300...) are
`tree`, read by the set's structure definition (structure.py, sets/) on first use, with
the structure problems found on the way in `issues`; both are None/empty for a set the
engine has no definition for (it is still read, routed and answered).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.formats.x12.sets import definition_for
from engine.formats.x12.structure import Issue, Node, SetDefinition, read_structure
from engine.formats.x12.tokens import Delimiters, Segment

PATH = re.compile(r"^(?:HL\[(?P<hl>[A-Z0-9]+)\]/)?(?P<seg>[A-Z][A-Z0-9]{1,2})"
                  r"(?:\[(?P<sel>[A-Z0-9]+)\])?\.?(?P<el>\d{2})(?:-(?P<comp>\d{1,2}))?$")


@dataclass
class HlLoop:
    id: str  # HL01
    parent: str  # HL02, "" at the top
    level: str  # HL03: 20 information source, 21 receiver, 22 subscriber, 23 dependent...
    segments: list[Segment] = field(default_factory=list)  # HL itself first
    children: list[HlLoop] = field(default_factory=list)

    def find(self, seg_id: str, qualifier: str = "") -> Segment | None:
        for seg in self.segments:
            if seg.id == seg_id and (not qualifier or seg.element(1) == qualifier):
                return seg
        return None


@dataclass
class X12Message:
    """One transaction set and the envelope it came in."""

    isa: Segment
    gs: Segment
    segments: list[Segment]  # ST..SE inclusive
    loops: list[HlLoop] = field(default_factory=list)  # every HL, in order
    skipped: int = 0  # bytes of a routing header read past before the ISA (tokens.py)
    _structure: tuple[Node | None, list[Issue]] | None = field(default=None, repr=False)

    @property
    def convention(self) -> str:
        """The implementation convention: ST03, else GS08 ("005010X222A1")."""
        return self.segments[0].element(3) or self.gs.element(8)

    @property
    def definition(self) -> SetDefinition | None:
        return definition_for(self.segments[0].element(1), self.convention)

    def _read_structure(self) -> tuple[Node | None, list[Issue]]:
        if self._structure is None:
            definition = self.definition
            self._structure = (None, []) if definition is None else \
                read_structure(definition, self.segments)
        return self._structure

    @property
    def tree(self) -> Node | None:
        """The set's loops by its guide's structure (the root is the ST loop)."""
        return self._read_structure()[0]

    @property
    def issues(self) -> list[Issue]:
        """What the structure read found wrong (see structure.Issue)."""
        return self._read_structure()[1]

    @property
    def delimiters(self) -> Delimiters:
        return self.isa.delimiters

    @property
    def tops(self) -> list[HlLoop]:
        """The HL loops without a parent (usually the information source, 20)."""
        return [loop for loop in self.loops if not loop.parent]

    def hl(self, level: str) -> list[HlLoop]:
        """Every HL loop of a level code (22 subscriber, 23 dependent/patient...)."""
        return [loop for loop in self.loops if loop.level == level]

    def find(self, seg_id: str, selector: str = "",
             segments: list[Segment] | None = None) -> Segment | None:
        pool = self.segments if segments is None else segments
        if seg_id == "ISA" and segments is None:
            return self.isa
        if seg_id == "GS" and segments is None:
            return self.gs
        count = 0
        for seg in pool:
            if seg.id != seg_id:
                continue
            if selector.isdecimal():
                count += 1
                if count == int(selector):
                    return seg
            elif not selector or seg.element(1) == selector:
                return seg
        return None

    def value(self, path: str) -> str:
        """The value at a field path (see the module docstring); "" when absent."""
        match = PATH.match(path.strip())
        if match is None:
            return ""
        pool = None
        if match["hl"]:
            loops = self.hl(match["hl"])
            if not loops:
                return ""
            pool = loops[0].segments
        seg = self.find(match["seg"], match["sel"] or "", pool)
        if seg is None:
            return ""
        return seg.element(int(match["el"]), int(match["comp"] or 0)).strip() \
            if seg.id == "ISA" else seg.element(int(match["el"]), int(match["comp"] or 0))

    def leaves(self) -> dict[str, str]:
        """Every valued element of the set by path, e.g. NM1[2].09 or CLM[1].05-1 (and
        [r] after the element for a second repetition on): what `diff` compares."""
        seen: dict[str, int] = {}
        out: dict[str, str] = {}
        d = self.delimiters
        for seg in self.segments:
            seen[seg.id] = seen.get(seg.id, 0) + 1
            prefix = f"{seg.id}[{seen[seg.id]}]"
            for index in range(1, len(seg.elements)):
                raw = seg.elements[index]
                reps = raw.split(d.repetition) if d.repetition else [raw]
                for r, rep in enumerate(reps, start=1):
                    where = f"{prefix}.{index:02d}" + (f"[{r}]" if r > 1 else "")
                    comps = rep.split(d.component)
                    if len(comps) == 1:
                        if rep:
                            out[where] = rep
                        continue
                    for c, comp in enumerate(comps, start=1):
                        if comp:
                            out[f"{where}-{c}"] = comp
        return out


def build_loops(segments: list[Segment]) -> list[HlLoop]:
    """The HL hierarchy: each HL with the segments up to the next HL, linked by HL02."""
    loops: list[HlLoop] = []
    by_id: dict[str, HlLoop] = {}
    current: HlLoop | None = None
    for seg in segments:
        if seg.id == "HL":
            current = HlLoop(seg.element(1), seg.element(2), seg.element(3), [seg])
            loops.append(current)
            by_id[current.id] = current
            parent = by_id.get(current.parent)
            if parent is not None:
                parent.children.append(current)
        elif seg.id == "SE":
            current = None
        elif current is not None:
            current.segments.append(seg)
    return loops
