"""The NCPDP SCRIPT codec (2017071, and 2023011 where it only differs in what its
version attributes say): XML read safely (xml.py), routed by its Header, checked for
what each message type requires (rules.py), answered with Status or Error (replies.py).

Routing fields of a message (`parse`):
- message_type: the Body's element (NewRx, CancelRx, RxFill, Status ...); a name the
  engine does not know is kept as sent and routed unmapped;
- control_id: Header/MessageID (unique per sender; correlation is by it);
- sender Header/From, receiver Header/To (with their Qualifier as "value^qualifier");
- patient_id: the patient's first identifier (MedicalRecordIdentificationNumberEHR,
  else another under Patient/HumanPatient/Identification, or NonHumanPatient's for a
  veterinarian's patient), else None;
- version: TransactionVersion ("2017071").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from engine.errors import ParseError
from engine.formats.base import Envelope, opening
from engine.formats.diff import Change, diff_values
from engine.formats.ncpdp.message import PATH, ScriptMessage
from engine.formats.ncpdp.replies import (
    RESPONSES,
    build_error,
    build_status,
    is_answer,
    read_answer,
)
from engine.formats.ncpdp.rules import check
from engine.formats.ncpdp.xml import parse_xml
from engine.message import Delivery, Outbound, Outcome, Parsed, Problem, ProblemKind, Verdict

__all__ = ["NcpdpCodec"]

# The root element Message (any prefix) after the prolog: the XML declaration, comments
# and processing instructions; or a DOCTYPE naming Message, so a billion-laughs or XXE
# payload is known as SCRIPT (and refused by `parse` with Error 900), not taken for
# another standard.
_ROOT = re.compile(rb"^(?:<\?xml[^>]*\?>\s*)?(?:(?:<!--.*?-->|<\?.*?\?>)\s*)*"
                   rb"(?:<!DOCTYPE\s+|<)(?:[\w.-]+:)?Message[\s>/\[]", re.DOTALL)
_UTF16 = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be",
          b"<\x00": "utf-16-le", b"\x00<": "utf-16-be"}
# Error codes (NCPDP SCRIPT transport): 900 transaction rejected, 601 receiver unable to
# process, 602 receiver system error (the sender may try again).
_ERROR_CODES = {ProblemKind.NOT_STORED: "602", ProblemKind.UNREADABLE: "602",
                ProblemKind.MAPPING_FAILED: "601", ProblemKind.FILTER_FAILED: "601"}


class NcpdpCodec:
    """NCPDP SCRIPT XML e-prescribing messages."""

    name = "ncpdp"
    content_type = "application/xml"
    extensions: tuple[str, ...] = (".xml",)
    streams = False

    def detect(self, raw: bytes) -> bool:
        """An XML document whose root element is Message (any prefix), in UTF-8 or
        UTF-16 (with or without its byte-order mark)."""
        head = opening(raw, 4096)
        encoding = _UTF16.get(raw[:2])
        if encoding is not None:
            text = raw[:8192].decode(encoding, "replace").lstrip("\ufeff \t\r\n")
            head = text.encode("utf-8", "replace")[:4096]
        return _ROOT.match(head) is not None

    def require(self, must_have: Mapping[str, Sequence[str]]) -> None:
        """SCRIPT's required elements are the standard's (rules.py); nothing to keep."""

    def field_path_error(self, path: str) -> str | None:
        if PATH.match(path.strip()):
            return None
        return (f"`{path}` is not a SCRIPT element path; write e.g. Header/MessageID, "
                "NewRx/Patient/HumanPatient/Name/LastName or Header/To@Qualifier")

    def field(self, parsed: Parsed, path: str) -> str:
        return parsed.body.value(path) if isinstance(parsed.body, ScriptMessage) else ""

    def problem(self, kind: ProblemKind, text: str) -> Problem:
        return Problem(text, code=_ERROR_CODES.get(kind, "900"))

    def parse(self, raw: bytes) -> Parsed:
        root, namespace = parse_xml(raw)
        if root.tag != "Message":
            raise ParseError(f"the root element is {root.tag}, not Message", code="900",
                             segment="Message")
        message = ScriptMessage(root, namespace)
        if message.header is None or message.body is None:
            raise ParseError("a SCRIPT Message holds a Header and a Body with one message",
                             code="900", segment="Message")
        return Parsed(
            standard=self.name,
            message_type=message.message_type,
            control_id=message.value("Header/MessageID"),
            version=message.version,
            sender=_party(message, "From"),
            receiver=_party(message, "To"),
            patient_id=_patient_id(message),
            body=message,
            relates_to=message.value("Header/RelatesToMessageID")[:64],
        )

    def validate(self, parsed: Parsed, level: str) -> list[Problem]:
        """What the message type requires (rules.py): errors in strict mode, warnings in
        lenient."""
        if not isinstance(parsed.body, ScriptMessage):
            return []
        severity = "E" if level == "strict" else "W"
        return [Problem(text, code="900", segment=where, severity=severity)
                for where, text in check(parsed.body)]

    def file_messages(self, raw: bytes) -> list[bytes]:
        return [raw]

    def split(self, raw: bytes) -> Envelope | None:
        return None

    def envelope_reply(self, envelope: Envelope, replies: Sequence[bytes]) -> bytes:
        raise NotImplementedError("SCRIPT has no envelopes")

    def reply(self, raw: bytes, parsed: Parsed | None, outcome: Outcome) -> bytes:
        """Status 000 for a message taken on; Error (900 refused, 601/602 not processed)
        with what was wrong otherwise; nothing for a Status, Error or Verify (answers
        are not answered)."""
        message = parsed.body if parsed is not None and isinstance(
            parsed.body, ScriptMessage) else _reread(raw)
        answer = message.message_type in RESPONSES if message is not None \
            else is_answer(raw)  # too broken to parse: known by its Body's first element
        if answer:
            return b""
        if outcome.verdict is Verdict.ACCEPTED:
            return build_status(message, raw)
        problems = outcome.problems or (Problem("the message was not taken on",
                                                code="601"),)
        return build_error(message, raw, problems)

    def replies(self, raw: bytes, parsed: Parsed | None, outcome: Outcome
                ) -> tuple[bytes, ...]:
        answer = self.reply(raw, parsed, outcome)
        return (answer,) if answer else ()

    def read_reply(self, reply: bytes, sent: Outbound) -> Delivery:
        return read_answer(reply)

    def diff(self, a: bytes, b: bytes) -> list[Change]:
        """Element by element by path (namespaces, prefixes, whitespace and attribute
        order never differ)."""
        return diff_values(_leaves(self.parse(a).body), _leaves(self.parse(b).body))


def _reread(raw: bytes) -> ScriptMessage | None:
    """The message a channel refused after parsing it (validation: it answers without
    the parse), read again so its Error goes back To its From, in its version and
    namespace, and an answer refused is still not answered; None when unreadable."""
    try:
        root, namespace = parse_xml(raw)
    except ParseError:
        return None
    message = ScriptMessage(root, namespace)
    return message if root.tag == "Message" and message.header is not None else None


def _party(message: ScriptMessage, which: str) -> str:
    value = message.value(f"Header/{which}")
    qualifier = message.value(f"Header/{which}@Qualifier")
    return f"{value}^{qualifier}" if qualifier else value


def _patient_id(message: ScriptMessage) -> str | None:
    base = "Body/" + message.message_type + "/Patient/"
    ids = message.find(base + "HumanPatient/Identification")
    if ids is None:  # an animal, for a veterinarian
        ids = message.find(base + "NonHumanPatient/Identification")
    if ids is None:
        return None
    preferred = ids.find("MedicalRecordIdentificationNumberEHR")
    chosen = preferred if preferred is not None else next(iter(ids), None)
    text = (chosen.text or "").strip() if chosen is not None else ""
    return text or None


def _leaves(message: ScriptMessage) -> dict[str, str]:
    """Every element's text and attribute by path, a repeated element numbered [n]."""
    out: dict[str, str] = {}
    stack = [(message.root, "Message")]
    while stack:
        element, path = stack.pop()
        if element.text and element.text.strip():
            out[path] = element.text.strip()
        for name, value in element.attrib.items():
            out[f"{path}@{name}"] = value
        seen: dict[str, int] = {}
        for child in element:
            if not isinstance(child.tag, str):
                continue
            seen[child.tag] = seen.get(child.tag, 0) + 1
            stack.append((child, f"{path}/{child.tag}[{seen[child.tag]}]"))
    return out
