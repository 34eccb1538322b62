"""HL7v2 acknowledgements: building the ACK we send and reading the ACK we receive.

An ACK echoes the version and control id of the message it answers, swaps sending and
receiving application and facility, and carries one ERR segment per problem. ERR is
laid out as the answered version expects: ERR-1 (ELD) before v2.5, ERR-2/3/4/8 from v2.5.
"""

from __future__ import annotations

import os
import time

from engine.formats.hl7v2.escape import DEFAULT, Delimiters, escape
from engine.formats.hl7v2.message import Hl7Message, Segment
from engine.message import Outcome, Problem, Verdict

_ORIGINAL_CODES = {Verdict.ACCEPTED: "AA", Verdict.ERROR: "AE", Verdict.REJECTED: "AR"}
DEFAULT_VERSION = "2.5"


def _version_tuple(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in version.split("."):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts) or (2, 5)


def _ack_control_id() -> str:
    # 20 characters: the limit of MSH-10 up to v2.5.
    return f"{time.time_ns() // 1_000_000:013d}{os.urandom(4).hex()[:7]}"


def build_ack(
    msh: Segment | None,
    outcome: Outcome,
    *,
    application: str = "CONDUIT",
) -> str:
    """The ACK answering a message whose MSH is `msh` (None when none could be read)."""
    d = msh._d if msh is not None else DEFAULT
    def get(field: int, comp: int = 1) -> str:
        return msh.value(field, comp) if msh is not None else ""

    def raw(field: int) -> str:
        return msh.raw(field) if msh is not None else ""

    version = get(12) or DEFAULT_VERSION
    vt = _version_tuple(version)
    trigger = get(9, 2)
    if vt < (2, 3):
        msg_type = "ACK"
    elif vt < (2, 3, 1) or not trigger:
        msg_type = f"ACK{d.component}{trigger}" if trigger else "ACK"
    else:
        msg_type = f"ACK{d.component}{trigger}{d.component}ACK"
    code = _ORIGINAL_CODES[outcome.verdict]
    f = d.field
    msh_fields = [
        "MSH",
        d.encoding_characters.replace("\x00", ""),
        raw(5) or escape(application, d),
        raw(6),
        raw(3),
        raw(4),
        time.strftime("%Y%m%d%H%M%S%z"),
        "",
        msg_type,
        _ack_control_id(),
        raw(11) or "P",
        raw(12) or DEFAULT_VERSION,
    ]
    charset = raw(18)
    if charset:
        msh_fields += ["", "", "", "", "", charset]
    segments = [f.join(msh_fields)]
    msa = ["MSA", code, raw(10)]
    if outcome.problems and outcome.verdict is not Verdict.ACCEPTED:
        msa.append(escape(outcome.problems[0].text[:80], d))
    segments.append(f.join(msa))
    segments.extend(_err_segment(p, d, vt) for p in outcome.problems)
    return "\r".join(segments) + "\r"


def _err_segment(problem: Problem, d: Delimiters, vt: tuple[int, ...]) -> str:
    c, s, f = d.component, d.subcomponent, d.field
    text = escape(problem.text, d)
    seg = problem.segment or ""
    field = str(problem.field) if problem.field is not None else ""
    if vt < (2, 5):
        # ERR-1 ELD: segment ^ sequence ^ field position ^ code&text&HL70357
        code = f"{problem.code}{s}{text}{s}HL70357"
        return f"ERR{f}{seg}{c}{'1' if seg else ''}{c}{field}{c}{code}"
    location = f"{seg}{c}{'1' if seg else ''}{c}{field}" if seg else ""
    code = f"{problem.code}{c}{_CODE_NAMES.get(problem.code, '')}{c}HL70357"
    # ERR-2 location, ERR-3 code, ERR-4 severity, ERR-8 user message
    return f.join(["ERR", "", location, code, problem.severity, "", "", "", text])


# HL7 table 0357, message error condition codes.
_CODE_NAMES = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "104": "Value too long",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}


class AckReading:
    """What an ACK says: MSA-1 code, MSA-2 control id, and the error codes/text of ERR."""

    __slots__ = ("code", "control_id", "errors")

    def __init__(self, code: str, control_id: str, errors: list[str]) -> None:
        self.code = code
        self.control_id = control_id
        self.errors = errors


def read_ack(message: Hl7Message) -> AckReading | None:
    """Read MSA and ERR of an acknowledgement; None when it has no MSA."""
    msa = message.segment("MSA")
    if msa is None:
        return None
    errors = []
    for err in message.all("ERR"):
        code = err.value(3, 1) or err.value(1, 4)
        errors.append(code or "unspecified")
    return AckReading(msa.value(1).upper(), msa.value(2), errors)
