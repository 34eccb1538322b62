"""One output through every distinct gate of a channel's destinations.

The output is parsed once and each resource validated against R4 once, however many
gates there are; only the US Core rules differ per gate. The work is bounded: a Bundle
with more entries than the gate's `max_entries` is held unvalidated (it runs on the
channel's event loop, inside routing, so no output may stall the other messages), and
at most MAX_REASONS reasons are gathered. A Bundle is checked entry by entry, so a
reason can name the entry and its resource type.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable
from typing import Any

from engine.conformance import DEFAULT_MAX_ENTRIES, r4, us_core

MAX_REASONS = 20
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]{1,63}\Z")


@dataclasses.dataclass(frozen=True, slots=True)
class Gate:
    """What a destination requires of its outputs; equal gates are checked once."""

    fhir: str = "R4"
    profiles: tuple[str, ...] = ()  # expanded US Core profile names, catalogue order
    max_entries: int = DEFAULT_MAX_ENTRIES
    # as the destination's settings name them (`us-core`), for the reasons' text only
    named: tuple[str, ...] = dataclasses.field(default=(), compare=False)

    @classmethod
    def of(cls, config: Any) -> Gate:
        """From a destination's `conformance:` settings (engine.config.conformance)."""
        return cls(config.fhir, us_core.expand(config.profiles), config.max_entries,
                   tuple(config.profiles))

    def describe(self) -> str:
        names = ", ".join(self.named or self.profiles) or "no US Core profile"
        return f"FHIR {self.fhir}, {names}"


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """A gate's answer for one output: passes when there is no reason."""

    reasons: tuple[str, ...] = ()
    more: bool = False  # there were more than MAX_REASONS; the first are kept

    @property
    def passed(self) -> bool:
        return not self.reasons


def check_all(content: bytes, gates: Iterable[Gate]) -> dict[Gate, Verdict]:
    """Each distinct gate's verdict on one output (FHIR JSON: a resource or a Bundle)."""
    distinct = list(dict.fromkeys(gates))
    if not distinct:
        return {}
    try:
        root = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return dict.fromkeys(distinct, Verdict(("output: is not FHIR JSON",)))
    if not isinstance(root, dict) or not isinstance(root.get("resourceType"), str):
        return dict.fromkeys(distinct, Verdict(("output: is not a FHIR resource",)))
    items, is_bundle = _items(root)
    checked = _R4(items, root if is_bundle else None)
    ctx = us_core.Context.of((url, res) for _, res, url in items if isinstance(res, dict))
    verdicts: dict[Gate, Verdict] = {}
    for gate in distinct:
        if root["resourceType"] == "Bundle" and len(items) > gate.max_entries:
            verdicts[gate] = Verdict((
                f"Bundle.entry: {len(items)} entries, over this gate's max_entries of "
                f"{gate.max_entries}; held unvalidated",))
            continue
        found = checked.reasons()
        for where, resource, _ in items:
            if len(found) > MAX_REASONS:
                break
            if gate.profiles and isinstance(resource, dict):
                found += us_core.reasons(resource, where, gate.profiles, ctx)
        verdicts[gate] = Verdict(tuple(found[:MAX_REASONS]), len(found) > MAX_REASONS)
    return verdicts


def warm() -> None:
    """Load the R4 models the checks use (the first use of each costs tens of ms)."""
    from fhir.resources.R4B import get_fhir_model_class

    for kind in sorted({"Bundle", *r4.REQUIRED_CODES, *(p.type for p in us_core.PROFILES)}):
        get_fhir_model_class(kind)


def _items(root: dict[str, Any]) -> tuple[list[tuple[str, Any, str | None]], bool]:
    """(where, resource, fullUrl) of every resource to check, and whether `root` is a
    Bundle whose shell is checked apart."""
    if root["resourceType"] != "Bundle":
        return [(_where(None, root), root, None)], False
    entries = root.get("entry")
    if not isinstance(entries, list):
        return [], True
    return [(_where(i, e.get("resource")), e.get("resource"), e.get("fullUrl"))
            for i, e in enumerate(entries) if isinstance(e, dict) and "resource" in e], True


def _where(index: int | None, resource: Any) -> str:
    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    named = kind if isinstance(kind, str) and _TYPE_NAME.match(kind) else None
    if index is None:
        return named or "output"
    return f"Bundle.entry[{index}].resource" + (f"({named})" if named else "")


class _R4:
    """R4 reasons of one output, worked out once for all its gates."""

    def __init__(self, items: list[tuple[str, Any, str | None]],
                 bundle: dict[str, Any] | None) -> None:
        self._items = items
        self._bundle = bundle
        self._found: list[str] | None = None

    def reasons(self) -> list[str]:
        if self._found is None:
            found: list[str] = []
            if self._bundle is not None:
                found += r4.bundle_shell_reasons(self._bundle)
            for where, resource, _ in self._items:
                if len(found) > MAX_REASONS:
                    break
                found += r4.resource_reasons(resource, where)
            self._found = found
        return list(self._found)
