"""HL7v2 acknowledgements: building the ACK we send and reading the ACK we receive.

An ACK echoes the version and control id of the message it answers, swaps sending and
receiving application and facility, and carries one ERR segment per problem. ERR is
laid out as the answered version expects: ERR-1 (ELD) before v2.5, ERR-2/3/4/8 from v2.5.
MSA-3 (text message) is written only before v2.7, which withdrew it. MSH-15 and MSH-16
of an ACK are always empty: an acknowledgement is never itself acknowledged.

Acknowledgement modes (v2.5 chapter 2.9): when MSH-15 (accept acknowledgement type) and
MSH-16 (application acknowledgement type) are both empty the message is in original mode
and gets one application ACK (AA/AE/AR). When either is valued it is in enhanced mode:
a commit ACK (CA/CE/CR) when MSH-15 asks for one under the outcome, and separately an
application ACK (AA/AE/AR) when MSH-16 does. Table 0155: AL always, NE never, ER only
on error or reject, SU only on success. The standard requires both fields in enhanced
mode; an empty or unknown one is read as AL, erring on the side of answering.
"""

from __future__ import annotations

import os
import time

from engine.formats.hl7v2.escape import DEFAULT, Delimiters, escape
from engine.formats.hl7v2.message import FIELD_PATH, Hl7Message, Segment
from engine.message import Outcome, Problem, Verdict

APPLICATION_CODES = {Verdict.ACCEPTED: "AA", Verdict.ERROR: "AE", Verdict.REJECTED: "AR"}
COMMIT_CODES = {Verdict.ACCEPTED: "CA", Verdict.ERROR: "CE", Verdict.REJECTED: "CR"}
DEFAULT_VERSION = "2.5"


def ack_types(msh: Segment | None) -> tuple[str, str] | None:
    """MSH-15 and MSH-16 when the message is in enhanced mode; None in original mode."""
    if msh is None:
        return None
    accept, application = msh.value(15).strip().upper(), msh.value(16).strip().upper()
    if not accept and not application:
        return None
    return accept, application


def wanted(condition: str, verdict: Verdict) -> bool:
    """Whether table 0155 `condition` asks for an acknowledgement of this verdict."""
    if condition == "NE":
        return False
    if condition == "ER":
        return verdict is not Verdict.ACCEPTED
    if condition == "SU":
        return verdict is Verdict.ACCEPTED
    return True  # AL, and empty or unknown values (see the module docstring)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in version.split("."):
        if not (piece.isascii() and piece.isdecimal()):
            break
        parts.append(int(piece))
    return tuple(parts) or (2, 5)


def new_control_id() -> str:
    """A fresh control id for what we originate (ACKs, batch headers).

    20 characters: the limit of MSH-10 and BHS-11 up to v2.5; time first, so they sort."""
    return f"{time.time_ns() // 1_000_000:013d}{os.urandom(4).hex()[:7]}"


def build_ack(
    msh: Segment | None,
    outcome: Outcome,
    *,
    application: str = "CONDUIT",
    commit: bool = False,
) -> str:
    """The ACK answering a message whose MSH is `msh` (None when none could be read):
    an application ACK (AA/AE/AR), or with `commit` an enhanced-mode commit ACK
    (CA/CE/CR). Whether one is wanted at all is the caller's question (`wanted`)."""
    d = msh.delimiters if msh is not None else DEFAULT

    def get(field: int, comp: int = 1) -> str:
        return msh.value(field, comp) if msh is not None else ""

    def raw(field: int) -> str:
        return msh.raw(field) if msh is not None else ""

    version = get(12) or DEFAULT_VERSION
    vt = _version_tuple(version)
    trigger = escape(get(9, 2), d)  # read decoded, so written escaped again
    if vt < (2, 3):
        msg_type = "ACK"
    elif vt < (2, 3, 1) or not trigger:
        msg_type = f"ACK{d.component}{trigger}" if trigger else "ACK"
    else:
        msg_type = f"ACK{d.component}{trigger}{d.component}ACK"
    code = (COMMIT_CODES if commit else APPLICATION_CODES)[outcome.verdict]
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
        new_control_id(),
        raw(11) or "P",
        raw(12) or DEFAULT_VERSION,
    ]
    charset = raw(18)
    if charset:
        msh_fields += ["", "", "", "", "", charset]
    segments = [f.join(msh_fields)]
    msa = ["MSA", code, raw(10)]
    if outcome.problems and outcome.verdict is not Verdict.ACCEPTED and vt < (2, 7):
        msa.append(escape(outcome.problems[0].text[:80], d))
    segments.append(f.join(msa))
    segments.extend(_err_segment(p, d, vt) for p in outcome.problems)
    return "\r".join(segments) + "\r"


def _err_segment(problem: Problem, d: Delimiters, vt: tuple[int, ...]) -> str:
    c, s, f = d.component, d.subcomponent, d.field
    text = escape(problem.text, d)
    seg = problem.segment or ""
    field = str(problem.field) if problem.field is not None else ""
    sequence = "1" if seg else ""
    located = FIELD_PATH.match(problem.where[0]) if not seg and len(problem.where) == 1 \
        else None
    if located and located["field"] and not (located["rep"] or located["comp"]):
        # a mapping's field, "PID-3" or "OBX[3]-5"
        seg, sequence, field = located["seg"], located["segrep"] or "1", located["field"]
    if vt < (2, 5):
        # ERR-1 ELD: segment ^ sequence ^ field position ^ code&text&HL70357 (just the
        # code when the message declares no subcomponent separator)
        code = f"{problem.code}{s}{text}{s}HL70357" if s not in ("", "\x00") else problem.code
        return f"ERR{f}{seg}{c}{sequence}{c}{field}{c}{code}"
    location = f"{seg}{c}{sequence}{c}{field}" if seg else ""
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
