"""Shorthand for writing definitions: R(...) a required segment, S(...) a situational
one, and the qualifier values as a string "IL" or tuple."""

from __future__ import annotations

from engine.formats.x12.structure import DATE, UNBOUNDED, Loop, Seg

N = UNBOUNDED  # "repeats without limit" (the guides' >1)


def _q(qualifiers: str | tuple[str, ...]) -> tuple[str, ...]:
    return (qualifiers,) if isinstance(qualifiers, str) else tuple(qualifiers)


def R(seg_id: str, max: int = 1, q: str | tuple[str, ...] = (), at: int = 1,
      required: tuple[int, ...] = (), codes: tuple = (), formats: tuple = ()) -> Seg:
    return Seg(seg_id, "R", max, _q(q), at, required, codes, formats)


def S(seg_id: str, max: int = 1, q: str | tuple[str, ...] = (), at: int = 1,
      required: tuple[int, ...] = (), codes: tuple = (), formats: tuple = ()) -> Seg:
    return Seg(seg_id, "S", max, _q(q), at, required, codes, formats)


def HL(level: str | tuple[str, ...]) -> Seg:
    """The HL opening a hierarchical level: HL03 is its level code."""
    return Seg("HL", "R", 1, _q(level), 3, (1, 3))


def L(loop_id: str, name: str, trigger: Seg, usage: str = "S", max: int = 1,
      *body: Seg | Loop) -> Loop:
    return Loop(loop_id, name, trigger, usage, max, tuple(body))


def ST(st01: str, *body: Seg | Loop) -> Loop:
    """The set's table: ST, its segments and loops (SE is read by the envelope)."""
    return Loop("ST", f"Transaction set {st01}", Seg("ST", "R", 1, (st01,), 1, (1, 2)),
                "R", 1, tuple(body))


def DMG(usage: str = "S", required: tuple[int, ...] = ()) -> Seg:
    """A person's demographics: a D8 birth date (DMG02) and a gender code (DMG03),
    checked in every set because a Patient is built from them and a value that cannot
    be read is left out of it (so the 999 and the analyst hear of it)."""
    return Seg("DMG", usage, 1, required=required,
               codes=((1, ("D8",)), (3, ("F", "M", "U"))), formats=((2, DATE),))
