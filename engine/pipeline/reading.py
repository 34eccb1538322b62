"""Reading, a channel step: a message's bytes parsed and validated by the channel's codec,
and the audit details of what was read.

A message over the source's size limit (truncated), one the codec cannot parse, and a
codec that raises (a bug is a rejection, never a crash) each become a Problem in the
standard's own vocabulary; validation at the channel's level refuses on errors (strict)
or reports warnings (lenient). A reprocess reads a stored message the same way, except
that a Bundle the channel splits is refused (`whole=False`): mapped as one message it
would send its first Patient only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec

from engine.errors import ParseError
from engine.formats.base import Codec
from engine.message import Parsed, Problem, ProblemKind, SourceMeta

log = logging.getLogger("conduit.channel")


class Reader:
    def __init__(self, channel: str, codec: Codec, validation: str,
                 splits: Callable[[bytes], bool] = lambda raw: False) -> None:
        self.channel = channel
        self.codec = codec
        self.validation = validation
        self._splits = splits

    def read(self, raw: bytes, meta: SourceMeta, trace: Any, control_id: str = "",
             whole: bool = True) -> tuple[Parsed | None, Problem | None]:
        """The parsed message, or the problem that refuses it; `control_id` replaces the
        codec's (a split part's identity); not `whole`, a Bundle the channel splits is
        refused."""
        with trace.step("parse"):
            parsed, problem = self._parse(raw, meta)
            if parsed is not None and control_id:
                parsed = msgspec.structs.replace(parsed, control_id=control_id)
            if parsed is not None and not whole and self._splits(raw):
                parsed, problem = None, self.codec.problem(
                    ProblemKind.NOT_REPROCESSABLE, "a Bundle this channel splits cannot be "
                    "reprocessed as one message; have the sender send it again")
            trace.parsed(parsed, problem)
        return parsed, problem

    def _parse(self, raw: bytes, meta: SourceMeta) -> tuple[Parsed | None, Problem | None]:
        if meta.truncated:
            return None, self.codec.problem(
                ProblemKind.TRUNCATED, f"message of {meta.size} bytes is over this "
                "channel's limit; only its first bytes were kept")
        try:
            return self.codec.parse(raw), None
        except ParseError as exc:
            return None, Problem(exc.message, exc.code, exc.segment, exc.field)
        except Exception as exc:  # a codec bug is a rejection, never a crash
            log.exception("channel %s: codec %s failed on a message", self.channel,
                          self.codec.name)
            return None, self.codec.problem(ProblemKind.UNREADABLE,
                                            f"unreadable message ({type(exc).__name__})")

    def validate(self, parsed: Parsed) -> tuple[tuple[Problem, ...], tuple[Problem, ...]]:
        """Structure validation as the channel asks: (problems that refuse the message,
        warnings for an accepted one). Lenient accepts and reports every problem as a
        warning; strict refuses on any error, naming segment, field and rule; off checks
        nothing."""
        if self.validation == "off":
            return (), ()
        problems = tuple(self.codec.validate(parsed, self.validation))
        if any(p.severity in ("E", "F") for p in problems):
            errors = tuple(p for p in problems if p.severity in ("E", "F"))
            return errors + tuple(p for p in problems if p not in errors), ()
        return (), problems


def received_detail(meta: SourceMeta, received: dict[str, Any] | None) -> dict[str, Any]:
    """The "received" audit detail: transport, size, the client, what the source set."""
    detail: dict[str, Any] = {"transport": meta.transport, "size": meta.size,
                              **(received or {})}
    if meta.tls_subject:
        detail["client"] = meta.tls_subject
    if meta.changes:  # what the source itself set before storing (e.g. lastUpdated)
        detail["set"] = list(meta.changes)
    return detail


def parsed_detail(parsed: Parsed, warnings: tuple[Problem, ...]) -> dict[str, Any]:
    """The "parsed" audit detail."""
    detail: dict[str, Any] = {"standard": parsed.standard, "type": parsed.message_type,
                              "control_id": parsed.control_id, "version": parsed.version}
    if warnings:
        detail["warnings"] = len(warnings)
    return detail


def problem_detail(problem: Problem) -> dict[str, Any]:
    """The "rejected" audit detail."""
    detail: dict[str, Any] = {"code": problem.code, "reason": problem.text}
    if problem.segment:
        detail["segment"] = problem.segment
    if problem.field is not None:
        detail["field"] = problem.field
    return detail
