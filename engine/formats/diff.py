"""Differences between two JSON-like values, leaf by leaf and named by path: what a
codec's `diff` returns, in its standard's own paths.

A codec's building block, so it lives with the codecs: it was part of
`engine/structdiff.py`, which also picks the codec for a content type through the
registry, and a codec importing it closed an import loop (registry -> codec ->
structdiff -> registry). `engine.structdiff` builds on this module.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

_MISSING = object()


class Change(NamedTuple):
    path: str
    old: Any  # _MISSING when added
    new: Any  # _MISSING when removed

    @property
    def kind(self) -> str:
        if self.old is _MISSING:
            return "added"
        if self.new is _MISSING:
            return "removed"
        return "changed"

    def describe(self) -> str:
        if self.kind == "added":
            return f"+ {self.path}: {_show(self.new)}"
        if self.kind == "removed":
            return f"- {self.path}: {_show(self.old)}"
        return f"~ {self.path}: {_show(self.old)} -> {_show(self.new)}"


def _show(value: Any) -> str:
    text = msgspec.json.encode(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def diff_values(old: Any, new: Any, path: str = "") -> list[Change]:
    """Every leaf that differs between two JSON-like values."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[Change] = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            changes += diff_values(old.get(key, _MISSING), new.get(key, _MISSING), sub)
        return changes
    if isinstance(old, list) and isinstance(new, list):
        changes = []
        for i in range(max(len(old), len(new))):
            changes += diff_values(old[i] if i < len(old) else _MISSING,
                                   new[i] if i < len(new) else _MISSING, f"{path}[{i}]")
        return changes
    if old is _MISSING and new is _MISSING:
        return []
    if old != new or type(old) is not type(new):
        return [Change(path or "(root)", old, new)]
    return []
