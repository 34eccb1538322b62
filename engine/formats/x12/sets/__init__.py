"""Structure definitions per transaction set, one module per set family (x270.py holds
270 and 271, ...), each exporting DEFINITIONS. Found by walking the package, so a new
set is a new module and nothing else."""

from __future__ import annotations

import importlib
import pkgutil

from engine.formats.x12.structure import SetDefinition


def _load() -> dict[tuple[str, str], SetDefinition]:
    found: dict[tuple[str, str], SetDefinition] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for definition in getattr(module, "DEFINITIONS", ()):
            found[(definition.st01, definition.convention)] = definition
    return found


_BY_KEY = _load()


def definition_for(st01: str, convention: str) -> SetDefinition | None:
    """The definition of a set by ST01 and its convention (ST03, else GS08): an exact
    match first, then the one definition of that ST01 whose convention's guide number
    (X279, X222...) the given one carries, so an errata suffix (A1) does not matter."""
    exact = _BY_KEY.get((st01, convention))
    if exact is not None:
        return exact
    for (kind, known), definition in _BY_KEY.items():
        if kind == st01 and known[:10] and known[6:10] in convention:
            return definition
    candidates = [d for (kind, _), d in _BY_KEY.items() if kind == st01]
    return candidates[0] if len(candidates) == 1 else None


def known_sets() -> list[SetDefinition]:
    return sorted(_BY_KEY.values(), key=lambda d: (d.st01, d.convention))


# HIPAA 5010 sets the engine has no loops for but takes, routes and answers all the same
# (payment order 820, attachments 275, application advice 824, the acknowledgements):
# real X12 sets a partner may send, whose guide the engine does not check.
UNCHECKED = frozenset({"275", "820", "824", "997", "999"})


def supported(st01: str) -> bool:
    """Whether the engine takes a set of this ST01: one it has a definition of, or a
    HIPAA set it passes on unchecked. Any other (an 850 purchase order, a misspelt id)
    cannot be read against any guide."""
    return st01 in UNCHECKED or any(kind == st01 for kind, _ in _BY_KEY)
