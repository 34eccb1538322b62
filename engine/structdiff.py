"""Structural differences between two outputs, by path: what `conduit test` prints on a
mismatch, what `conduit mapping diff` shows between versions, and what shadow mode
counts per FHIR path.

An output of a standard is compared by its codec's `diff`, by the standard's own paths
(so a reordered key or a different line ending is never a difference and a changed
component always is); other JSON as values; anything else as a whole.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import msgspec

_INDEX = re.compile(r"\[\d+\]")
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


def diff_outputs(old: bytes, new: bytes, content_type: str) -> list[Change]:
    """Differences between two outputs of one content type: by the paths of its
    standard's codec when it has one, as JSON values for other JSON, else whole."""
    from engine.registry import codec_for_content  # the registry wires what uses this

    codec = codec_for_content(content_type)
    if codec is not None:
        return codec.diff(old, new)
    if "json" in content_type:
        return diff_values(msgspec.json.decode(old), msgspec.json.decode(new))
    return [] if old == new else [Change("(content)", old.decode("utf-8", "replace"),
                                          new.decode("utf-8", "replace"))]


def general_path(path: str) -> str:
    """A path without list positions, so differences count per element kind:
    entry[0].resource.name[1].given[0] -> entry.resource.name.given."""
    return _INDEX.sub("", path)
