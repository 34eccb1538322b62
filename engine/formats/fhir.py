"""The FHIR R4 codec (JSON): resources and Bundles in, routing fields out, and
OperationOutcome as the acknowledgement.

Decoding is msgspec's, the fast path DESIGN.md measures; validation against the models
of fhir.resources is for channels that ask for it, not every message. JSON numbers with a
fraction or exponent decode as `decimal.Decimal`, never float: a FHIR decimal's digits are
its precision ("7.20" must reach a mapping as 7.20, not 7.2).
"""

from __future__ import annotations

import decimal
from typing import Any

import msgspec

from engine.errors import ParseError
from engine.message import (
    Delivery,
    Fail,
    Outbound,
    Outcome,
    Parsed,
    Problem,
    Retry,
    Sent,
    Verdict,
)

CONTENT_TYPE = "application/fhir+json"
_decode = msgspec.json.Decoder(float_hook=decimal.Decimal).decode
_SEVERITY = {"E": "error", "W": "warning", "I": "information", "F": "fatal"}


def _patient_identifier(resource: dict[str, Any]) -> str | None:
    """The first identifier of the Patient the message is about, if it carries one."""
    patients = [resource] if resource.get("resourceType") == "Patient" else [
        e.get("resource") or {} for e in resource.get("entry") or []
        if isinstance(e, dict) and (e.get("resource") or {}).get("resourceType") == "Patient"
    ]
    for patient in patients:
        for ident in patient.get("identifier") or []:
            if isinstance(ident, dict) and ident.get("value"):
                return str(ident["value"])
    return None


class FhirCodec:
    name = "fhir"
    content_type = CONTENT_TYPE

    def parse(self, raw: bytes) -> Parsed:
        try:
            resource = _decode(raw)
        except msgspec.DecodeError as exc:
            raise ParseError(f"not valid JSON: {exc}", code="102") from None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise ParseError("not a FHIR resource: no resourceType", code="101")
        kind = resource["resourceType"]
        if kind == "Bundle" and resource.get("type"):
            kind = f"Bundle/{resource['type']}"
        ident = resource.get("identifier")
        control = resource.get("id") or (ident.get("value") if isinstance(ident, dict) else "")
        return Parsed(standard=self.name, message_type=str(kind)[:40],
                      control_id=str(control or "")[:64], version="R4",
                      patient_id=_patient_identifier(resource), body=resource)

    def reply(self, raw: bytes, parsed: Parsed | None, outcome: Outcome) -> bytes:
        """An OperationOutcome saying what became of the resource."""
        issues = [{"severity": _SEVERITY.get(p.severity, "error"), "code": "processing",
                   "diagnostics": p.text} for p in outcome.problems]
        if outcome.verdict is Verdict.ACCEPTED and not issues:
            issues = [{"severity": "information", "code": "informational",
                       "diagnostics": "accepted"}]
        return msgspec.json.encode({"resourceType": "OperationOutcome", "issue": issues})

    def read_reply(self, reply: bytes, sent: Outbound) -> Delivery:
        """An OperationOutcome received back: errors fail, anything else is delivered."""
        try:
            body = _decode(reply)
        except msgspec.DecodeError:
            return Retry("unreadable reply")
        issues = body.get("issue", []) if isinstance(body, dict) else []
        if any(i.get("severity") in ("error", "fatal") for i in issues if isinstance(i, dict)):
            return Fail("receiver answered with an error OperationOutcome")
        return Sent("ok")

    def validate(self, parsed: Parsed, level: str) -> list[Problem]:
        """Structural validation of FHIR resources comes with the FHIR source."""
        return []

    def field(self, parsed: Parsed, path: str) -> str:
        """A dotted path into the resource (`resourceType`, `meta.source`,
        `identifier.0.value`); FHIRPath comes with the FHIR source."""
        value: Any = parsed.body
        for part in path.split("."):
            if isinstance(value, list):
                value = value[int(part)] if part.isdigit() and int(part) < len(value) else None
            elif isinstance(value, dict):
                value = value.get(part)
            else:
                return ""
        return "" if value is None or isinstance(value, dict | list) else str(value)


