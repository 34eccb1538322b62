"""Reading what a FHIR server answers to the engine: OperationOutcomes and the entries of
a transaction-response or batch-response Bundle, summarised without PHI.

A server's `diagnostics` and `details.text` are free text that may quote the patient
back ("MRN123 SMITH already exists"), so a summary keeps only what the spec makes
coded: severity, the issue type code, and FHIRPath expressions (or locations) that look
like paths and nothing else. The full answer travels sealed, for the analyst.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import msgspec

_SEVERITIES = ("fatal", "error", "warning", "information")
_CODE = re.compile(r"[a-z][a-z-]{0,39}\Z")
# Element paths with indexes (Patient.identifier[0].value, Bundle.entry[2].resource):
# no quotes, spaces or operators, so no literal value can ride along.
_PATH = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\[\d+\])?(?:\.[A-Za-z][A-Za-z0-9_]*(?:\[\d+\])?)*"
                   r"\Z")
_MAX_PATH = 120


class EntryFailure(NamedTuple):
    """One failing entry of a transaction-response: 1-based position, HTTP status and the
    PHI-free summary of its OperationOutcome ("" when it has none)."""

    position: int
    status: int
    summary: str


def decode(body: bytes) -> dict[str, Any] | None:
    """The answer as a JSON object, or None when it is not one."""
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, dict) else None


def outcome_summary(resource: dict[str, Any] | None) -> str:
    """'2 issues (error: required at Patient.identifier)' for an OperationOutcome; ""
    for anything else."""
    if not resource or resource.get("resourceType") != "OperationOutcome":
        return ""
    issues = [i for i in resource.get("issue") or [] if isinstance(i, dict)]
    if not issues:
        return "no issues"
    worst = next((i for i in issues if i.get("severity") in ("fatal", "error")), issues[0])
    count = f"{len(issues)} issue{'s' if len(issues) != 1 else ''}"
    return f"{count} ({_issue(worst)})"


def _issue(issue: dict[str, Any]) -> str:
    severity = issue.get("severity")
    code = issue.get("code")
    text = (severity if severity in _SEVERITIES else "issue") + ": "
    text += code if isinstance(code, str) and _CODE.match(code) else "unknown"
    where = _first_path(issue.get("expression")) or _first_path(issue.get("location"))
    return text + (f" at {where}" if where else "")


def _first_path(paths: Any) -> str:
    for path in paths if isinstance(paths, list) else []:
        if isinstance(path, str) and len(path) <= _MAX_PATH and _PATH.match(path):
            return path
    return ""


def is_response_bundle(resource: dict[str, Any] | None) -> bool:
    return bool(resource) and resource.get("resourceType") == "Bundle" and resource.get(
        "type") in ("transaction-response", "batch-response")


def failed_entries(bundle: dict[str, Any]) -> list[EntryFailure]:
    """The entries of a transaction-response or batch-response whose status is 400 or
    more (an entry without a readable status counts as failed with status 0)."""
    failures = []
    for position, entry in enumerate(bundle.get("entry") or [], start=1):
        response = entry.get("response") if isinstance(entry, dict) else None
        if not isinstance(response, dict):
            failures.append(EntryFailure(position, 0, "no response"))
            continue
        status = _status(response.get("status"))
        if status == 0 or status >= 400:
            outcome = response.get("outcome")
            failures.append(EntryFailure(position, status, outcome_summary(
                outcome if isinstance(outcome, dict) else None)))
    return failures


def _status(value: Any) -> int:
    """'201 Created' -> 201; 0 when it does not start with a status code."""
    m = re.match(r"\s*(\d{3})\b", value) if isinstance(value, str) else None
    return int(m[1]) if m else 0


def entries_summary(failures: list[EntryFailure], total: int) -> str:
    """'1 of 3 entries failed (entry 2: 422, 1 issue (error: required at ...))'."""
    first = failures[0]
    what = f"entry {first.position}: {first.status or 'no status'}"
    if first.summary:
        what += f", {first.summary}"
    return f"{len(failures)} of {total} entries failed ({what})"
