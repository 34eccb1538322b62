"""The FHIR R4 codec (JSON): resources and Bundles in, routing fields out, and
OperationOutcome as the acknowledgement.

Decoding is msgspec's, the fast path DESIGN.md measures; validation against the models
of fhir.resources is for channels that ask for it, not every message. JSON numbers with a
fraction or exponent decode as `decimal.Decimal`, never float: a FHIR decimal's digits are
its precision ("7.20" must reach a mapping as 7.20, not 7.2).

Problems of FHIR content carry a FHIR issue type in `code` and a FHIRPath expression in
`segment` (see fhir_validation); problems the engine itself finds (`problem`) and the
parser's carry HL7 table 0357 codes, as they always have in stored audit details, which
`reply` translates to issue types.
"""

from __future__ import annotations

import decimal
import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from engine.errors import ParseError
from engine.formats import fhir_validation
from engine.formats.base import opening
from engine.formats.diff import Change, diff_values
from engine.message import (
    Delivery,
    Fail,
    Outbound,
    Outcome,
    Parsed,
    Problem,
    ProblemKind,
    Retry,
    Sent,
    Verdict,
)

if TYPE_CHECKING:
    from engine.formats.base import Envelope

CONTENT_TYPE = "application/fhir+json"
# FHIR JSON for every module that reads or writes it: numbers with a fraction keep their
# digits both ways (decimal.Decimal in, the same digits out).
_decode_json = msgspec.json.Decoder(float_hook=decimal.Decimal).decode
encode_json = msgspec.json.Encoder(decimal_format="number").encode
_BOM = b"\xef\xbb\xbf"


def decode_json(raw: bytes) -> Any:
    """FHIR JSON, a leading UTF-8 byte order mark ignored (RFC 8259 allows it; older .NET
    clients send one)."""
    return _decode_json(raw[3:] if raw[:3] == _BOM else raw)
_SEVERITY = {"E": "error", "W": "warning", "I": "information", "F": "fatal"}
# HL7 table 0357 codes (what the channel uses for its own problems) as FHIR issue types.
_ISSUE_TYPES = {"100": "structure", "101": "required", "102": "structure", "103": "value",
                "200": "not-supported", "207": "processing"}
_MAX_CONTROL_ID = 64  # the store's column


def _patient_identifier(resource: dict[str, Any]) -> str | None:
    """The first identifier of the Patient the message is about, if it carries one."""
    entries = resource.get("entry")
    patients = [resource] if resource.get("resourceType") == "Patient" else [
        e["resource"] for e in (entries if isinstance(entries, list) else [])
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
        and e["resource"].get("resourceType") == "Patient"
    ]
    for patient in patients:
        identifiers = patient.get("identifier")
        for ident in identifiers if isinstance(identifiers, list) else []:
            if isinstance(ident, dict) and ident.get("value"):
                return str(ident["value"])
    return None


class FhirCodec:
    name = "fhir"
    content_type = CONTENT_TYPE
    extensions: tuple[str, ...] = (".json",)
    streams = False

    def __init__(self) -> None:
        self.must_have: Mapping[str, Sequence[str]] = {}

    def require(self, must_have: Mapping[str, Sequence[str]]) -> None:
        """Elements this channel requires per resource type ({"Patient": ["identifier",
        "name.family"]}), checked by `validate` beside the base structure."""
        self.must_have = dict(must_have)

    def detect(self, raw: bytes) -> bool:
        """A JSON object or array first (FHIR XML is recognised by the registry, and not
        read yet outside the FHIR source, which converts it)."""
        return opening(raw, 1) in (b"{", b"[")

    def file_messages(self, raw: bytes) -> list[bytes]:
        """A file holds one resource (a Bundle is one)."""
        return [raw]

    def split(self, raw: bytes) -> Envelope | None:
        """None: a Bundle is one message unless its channel says `split:` (a choice of the
        channel, made by engine.pipeline.splitting, not of the standard)."""
        return None

    def envelope_reply(self, envelope: Envelope, replies: Sequence[bytes]) -> bytes:
        raise NotImplementedError("FHIR has no envelope of its own; `split` gives None")

    def field_path_error(self, path: str) -> str | None:
        return None  # any dotted path may name an element

    def problem(self, kind: ProblemKind, text: str) -> Problem:
        """Table 0357's 207, as stored so far; `reply` says it as a `processing` issue."""
        return Problem(text, code="207")

    def replies(self, raw: bytes, parsed: Parsed | None, outcome: Outcome
                ) -> tuple[bytes, ...]:
        return (self.reply(raw, parsed, outcome),)

    def diff(self, a: bytes, b: bytes) -> list[Change]:
        """Resources compared as JSON values: key order and formatting never differ."""
        return diff_values(msgspec.json.decode(a), msgspec.json.decode(b))

    def parse(self, raw: bytes) -> Parsed:
        try:
            resource = decode_json(raw)
        except msgspec.DecodeError as exc:
            raise ParseError(f"not valid JSON: {exc}", code="102") from None
        except UnicodeDecodeError:
            raise ParseError("not valid JSON: the bytes are not UTF-8", code="102") from None
        except RecursionError:
            raise ParseError("not valid JSON here: nested too deeply", code="102") from None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise ParseError("not a FHIR resource: no resourceType", code="101")
        kind = resource["resourceType"]
        if kind == "Bundle" and resource.get("type"):
            kind = f"Bundle/{resource['type']}"
        return Parsed(standard=self.name, message_type=str(kind)[:40],
                      control_id=control_id(resource), version="R4",
                      patient_id=_patient_identifier(resource), body=resource)

    def reply(self, raw: bytes, parsed: Parsed | None, outcome: Outcome) -> bytes:
        """An OperationOutcome saying what became of the resource."""
        issues = [issue(p) for p in outcome.problems]
        if outcome.verdict is Verdict.ACCEPTED and not issues:
            issues = [{"severity": "information", "code": "informational",
                       "diagnostics": "accepted"}]
        return msgspec.json.encode({"resourceType": "OperationOutcome", "issue": issues})

    def read_reply(self, reply: bytes, sent: Outbound) -> Delivery:
        """An OperationOutcome received back: errors fail, anything else is delivered."""
        try:
            body = decode_json(reply)
        except msgspec.DecodeError:
            return Retry("unreadable reply")
        issues = body.get("issue", []) if isinstance(body, dict) else []
        if any(i.get("severity") in ("error", "fatal") for i in issues if isinstance(i, dict)):
            return Fail("receiver answered with an error OperationOutcome")
        return Sent("ok")

    def validate(self, parsed: Parsed, level: str) -> list[Problem]:
        """Structure by the fhir.resources R4B models (a Bundle with its entries) and the
        channel's must-have elements: warnings under `lenient`, errors under `strict`."""
        return fhir_validation.validate_resource(parsed.body, level, self.must_have)

    def field(self, parsed: Parsed, path: str) -> str:
        """A dotted path into the resource (`resourceType`, `meta.source`,
        `identifier.0.value`); FHIRPath comes with the FHIR source."""
        value: Any = parsed.body
        for part in path.split("."):
            if isinstance(value, list):
                value = value[int(part)] if part.isdecimal() and int(part) < len(value) else None
            elif isinstance(value, dict):
                value = value.get(part)
            else:
                return ""
        return "" if value is None or isinstance(value, dict | list) else str(value)


def issue(problem: Problem) -> dict[str, Any]:
    """One OperationOutcome.issue: severity, FHIR issue type, text and, where known, the
    FHIRPath expression of the element."""
    code = problem.code
    if code not in fhir_validation.ISSUE_TYPES:
        code = _ISSUE_TYPES.get(code, code if code.replace("-", "").isalpha() else "processing")
    out: dict[str, Any] = {"severity": _SEVERITY.get(problem.severity, "error"), "code": code,
                           "diagnostics": problem.text}
    if problem.segment and problem.segment[:1].isupper():
        out["expression"] = [problem.segment]
    return out


def control_id(resource: dict[str, Any]) -> str:
    """What the channel's duplicate check keys on: the resource's id (a Bundle's identifier)
    and its version, versionId or else lastUpdated, so a resent version is a duplicate and
    a new version of the same resource is not. "" (never a duplicate) without an id."""
    ident = resource.get("identifier")
    base = resource.get("id") or (ident.get("value") if isinstance(ident, dict) else "")
    if not base or not isinstance(base, str | int):
        return ""
    meta = resource["meta"] if isinstance(resource.get("meta"), dict) else {}
    version = meta.get("versionId") or meta.get("lastUpdated") or resource.get("timestamp")
    control = f"{base}@{version}" if isinstance(version, str) and version else str(base)
    if len(control) > _MAX_CONTROL_ID:
        digest = hashlib.sha256(control.encode()).hexdigest()
        control = f"{str(base)[:_MAX_CONTROL_ID - 25]}@{digest[:24]}"
    return control
