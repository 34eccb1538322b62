"""Structural differences between two outputs, by path: what `conduit test` prints on a
mismatch, what `conduit mapping diff` shows between versions, and what shadow mode
counts per FHIR path.

An output of a standard is compared by its codec's `diff`, by the standard's own paths
(so a reordered key or a different line ending is never a difference and a changed
component always is); other JSON as values; anything else as a whole. The leaf-by-leaf
comparison the codecs use, and `Change` itself, live in `engine.formats.diff` and are
imported from there, not from here; this module sits above the registry and picks the
codec.
"""

from __future__ import annotations

import re

import msgspec

from engine.formats.diff import Change, diff_values
from engine.registry import codec_for_content

__all__ = ["diff_outputs", "general_path"]

_INDEX = re.compile(r"\[\d+\]")


def diff_outputs(old: bytes, new: bytes, content_type: str) -> list[Change]:
    """Differences between two outputs of one content type: by the paths of its
    standard's codec when it has one, as JSON values for other JSON, else whole."""
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
