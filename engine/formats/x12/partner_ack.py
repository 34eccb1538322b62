"""What a trading partner's 999 (or 997) and TA1 say about each thing we sent, in the
terms we find it by: the functional group (AK102 = our GS06), the transaction set
(AK202 = our ST02), the interchange (TA101 = our ISA13).

Only codes and positions are read: IK501/IK502 and AK901/AK905 codes, IK3 segment id,
position and error code, IK4 element position and error code. IK404 (a copy of the bad
value) and CTX segments can hold claim data and are never read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.formats.x12.tokens import Segment

# IK501 / AK901 / TA104 codes and the state of what we sent: accepted, accepted with
# errors noted (the partner keeps it: never send it again), rejected (997's M, W, X
# are rejections too); AK9 P (partially accepted) says nothing of a set on its own.
STATES = {"A": "accepted", "E": "accepted-with-errors", "R": "rejected", "M": "rejected",
          "W": "rejected", "X": "rejected"}


@dataclass
class SetVerdict:
    """The partner's word on one of our sets (`set_control` given) or on a whole group
    (`set_control` "": the AK9, for the sets without an AK2 of their own)."""

    group_control: str  # AK102
    set_control: str  # AK202, "" for the group's AK9
    code: str  # IK501 or AK901
    errors: list[str] = field(default_factory=list)  # IK502..IK506 or AK905..AK909
    notes: list[str] = field(default_factory=list)  # "IK3 CLM 12 8", "IK4 CLM05-3 7"

    @property
    def state(self) -> str | None:
        return STATES.get(self.code)


@dataclass
class InterchangeVerdict:
    interchange: str  # TA101
    code: str  # TA104
    note: str  # TA105

    @property
    def state(self) -> str | None:
        return STATES.get(self.code)


@dataclass
class PartnerAck:
    sets: list[SetVerdict] = field(default_factory=list)
    groups: list[SetVerdict] = field(default_factory=list)
    interchanges: list[InterchangeVerdict] = field(default_factory=list)


def _codes(seg: Segment, start: int, count: int) -> list[str]:
    return [c for c in (seg.element(i) for i in range(start, start + count)) if c][:count]


def _ik4(seg: Segment, ik3: str) -> str:
    position = seg.element(1, 1)
    component = seg.element(1, 2)
    where = f"{ik3}{position.zfill(2)}" + (f"-{component}" if component else "")
    return f"IK4 {where} {seg.element(3)}".strip()


def read(segments: Iterable[Segment]) -> PartnerAck:
    """The verdicts in the segments of a 999/997 set (or TA1 segments)."""
    found = PartnerAck()
    group = ""
    current: SetVerdict | None = None
    ik3 = ""
    for seg in segments:
        sid = seg.id
        if sid == "TA1":
            found.interchanges.append(InterchangeVerdict(seg.element(1), seg.element(4),
                                                         seg.element(5)))
        elif sid == "AK1":
            group, current = seg.element(2), None
        elif sid == "AK2":
            current = SetVerdict(group, seg.element(2), "")
            ik3 = ""
        elif sid in ("IK3", "AK3") and current is not None:
            ik3 = seg.element(1)
            current.notes.append(f"IK3 {ik3} {seg.element(2)} {seg.element(4)}".strip())
        elif sid in ("IK4", "AK4") and current is not None:
            current.notes.append(_ik4(seg, ik3))
        elif sid in ("IK5", "AK5") and current is not None:
            current.code = seg.element(1)
            current.errors = _codes(seg, 2, 5)
            found.sets.append(current)
            current = None
        elif sid == "AK9":
            found.groups.append(SetVerdict(group, "", seg.element(1), _codes(seg, 5, 5)))
    return found
