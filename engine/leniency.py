"""Lenient conversion: a field that cannot be read becomes a located warning, not a
failed message.

Real senders leave required-looking fields empty, invent units and send dates with odd
zones. A mapping built for them runs its conversion under `lenient()`: the shared readers
(dates, numbers, codes) call `tolerate` where a value cannot be read, which notes a
warning and lets the conversion go on without that one value; `guard` does the same for
a whole segment whose converter gives up (an AL1 without an allergen), so the rest of
the message is still mapped. Outside `lenient()` (every mapping version released before
it, and strict channels) `tolerate` raises as before, so their outputs do not change.

Warnings name places, never values: they go to the audit trail and the analyst's page.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import TypeVar

import msgspec

from engine.errors import MappingError

T = TypeVar("T")


class Note(msgspec.Struct, frozen=True):
    """One thing a conversion could not read: where (`OBX[3]-5`, `SCH-11`) and why."""

    at: str
    text: str

    def __str__(self) -> str:
        return f"{self.at}: {self.text}" if self.at else self.text


class Notes:
    """The warnings of one conversion, located by the segment being converted."""

    def __init__(self) -> None:
        self.warnings: list[Note] = []
        self._where: list[tuple[str, int]] = []  # (segment name, 1-based occurrence)

    def warn(self, error: MappingError) -> None:
        note = Note(self._locate(error.field), error.message)
        if note not in self.warnings:
            self.warnings.append(note)

    def _locate(self, field: str | None) -> str:
        """`OBX-5` as `OBX[3]-5` while the third OBX is being converted (the first
        occurrence keeps the plain form analysts know)."""
        if not field:
            return self._where[-1][0] if self._where else ""
        for name, occurrence in reversed(self._where):
            located = field[len(name):len(name) + 1] == "["  # already says which
            if field.startswith(name) and occurrence > 1 and not located:
                return f"{name}[{occurrence}]{field[len(name):]}"
        return field


_current: contextvars.ContextVar[Notes | None] = contextvars.ContextVar(
    "conduit_lenient_notes", default=None)


@contextlib.contextmanager
def lenient() -> Iterator[Notes]:
    """Convert leniently within the block; the Notes it yields collect the warnings."""
    notes = Notes()
    token = _current.set(notes)
    try:
        yield notes
    finally:
        _current.reset(token)


def is_lenient() -> bool:
    return _current.get() is not None


def tolerate(error: MappingError, fallback: T = None) -> T:  # type: ignore[assignment]
    """Where a value cannot be read: note `error` and return `fallback` under a lenient
    conversion, else raise it (the strict rule every earlier version keeps)."""
    notes = _current.get()
    if notes is None:
        raise error
    notes.warn(error)
    return fallback


def notice(error: MappingError) -> None:
    """Where a value was read only in part (a time of day without a zone, kept as its
    date): note `error` under a lenient conversion; strictly nothing, since the part
    read is the rule every earlier version keeps."""
    notes = _current.get()
    if notes is not None:
        notes.warn(error)


@contextlib.contextmanager
def at(segment: str, occurrence: int) -> Iterator[None]:
    """Warnings raised within the block are located in this segment occurrence."""
    notes = _current.get()
    if notes is None:
        yield
        return
    notes._where.append((segment, occurrence))
    try:
        yield
    finally:
        notes._where.pop()


def guard(segment: str, occurrence: int, convert: Callable[[], T]) -> T | None:
    """Run one segment's converter; under a lenient conversion a MappingError it raises
    drops only what that segment would have made, with a warning, and the message goes
    on. Strictly, it raises."""
    with at(segment, occurrence):
        try:
            return convert()
        except MappingError as exc:
            return tolerate(exc)
