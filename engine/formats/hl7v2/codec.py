"""The HL7v2 codec: bytes to `Parsed` with routing fields, and ACKs both ways."""

from __future__ import annotations

from engine.errors import ParseError
from engine.formats.hl7v2.ack import build_ack, read_ack
from engine.formats.hl7v2.message import Hl7Message, Segment, read_delimiters
from engine.message import Delivery, Fail, Outbound, Outcome, Parsed, Retry, Sent

# MSH-18 values (HL7 table 0211) and the Python codecs that read them.
_CHARSETS = {
    "": "utf-8",
    "ASCII": "ascii",
    "8859/1": "latin-1",
    "8859/2": "iso8859-2",
    "8859/5": "iso8859-5",
    "8859/7": "iso8859-7",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UNICODE UTF-16": "utf-16",
    "UNICODE": "utf-16",
}


def decode_text(raw: bytes) -> str:
    """Decode a message using the character set it declares in MSH-18.

    Undeclared or wrong (many senders declare ASCII and send Latin-1) falls back to
    Latin-1, which maps every byte, so a bad byte never makes a message unreadable.
    """
    charset = ""
    if raw[:3] == b"MSH" and len(raw) > 4:
        first_line = raw.split(b"\r", 1)[0].split(b"\n", 1)[0]
        parts = first_line.split(raw[3:4])
        if len(parts) > 17:
            charset = parts[17].split(raw[4:5] or b"^")[0].decode("latin-1").strip().upper()
    encoding = _CHARSETS.get(charset, "utf-8")
    try:
        return raw.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return raw.decode("latin-1")


def _patient_identifier(message: Hl7Message) -> str | None:
    """PID-3's medical record number (identifier type MR), else its first identifier."""
    pid = message.segment("PID")
    if pid is None:
        return None
    reps = pid.repetitions(3)
    for rep in reps:
        if rep.value(5).upper() == "MR" and rep.value(1):
            return rep.value(1)
    for rep in reps:
        if rep.value(1):
            return rep.value(1)
    return pid.value(2) or None  # PID-2 external id, used by older senders


class Hl7v2Codec:
    """HL7 version 2 in ER7 (pipe) encoding."""

    name = "hl7v2"
    content_type = "x-application/hl7-v2+er7"

    def parse(self, raw: bytes) -> Parsed:
        if b"\x00" in raw[:4096]:
            raise ParseError("message holds binary (NUL) bytes; HL7v2 is text", code="102")
        message = Hl7Message.parse(decode_text(raw))
        msh = message.segments[0]
        if not msh.value(9, 1):
            raise ParseError("message type is missing", segment="MSH", field=9, code="101")
        if not msh.value(10):
            raise ParseError("message control id is missing", segment="MSH", field=10, code="101")
        return Parsed(
            standard=self.name,
            message_type=message.message_type,
            control_id=message.control_id,
            version=message.version,
            sender=f"{msh.value(3)}^{msh.value(4)}",
            receiver=f"{msh.value(5)}^{msh.value(6)}",
            patient_id=_patient_identifier(message),
            body=message,
        )

    def reply(self, raw: bytes, parsed: Parsed | None, outcome: Outcome) -> bytes:
        msh = parsed.body.segments[0] if parsed is not None else _salvage_msh(raw)
        return build_ack(msh, outcome).encode("utf-8")

    def read_reply(self, reply: bytes, sent: Outbound) -> Delivery:
        """What a receiving system's ACK means for the queue: AA/CA sent, AE/CE retry,
        AR/CR permanent failure; an unreadable or mismatched ACK is retried."""
        try:
            ack = read_ack(Hl7Message.parse(decode_text(reply)))
        except ParseError as exc:
            return Retry(f"unreadable acknowledgement: {exc}")
        if ack is None:
            return Retry("acknowledgement has no MSA segment")
        if sent.control_id and ack.control_id and ack.control_id != sent.control_id:
            return Retry(
                f"acknowledgement is for control id {ack.control_id}, not ours", code=ack.code
            )
        detail = f" (ERR {', '.join(ack.errors)})" if ack.errors else ""
        if ack.code in ("AA", "CA"):
            return Sent(ack.code)
        if ack.code in ("AE", "CE"):
            return Retry(f"receiver answered {ack.code}{detail}", code=ack.code)
        if ack.code in ("AR", "CR"):
            return Fail(f"receiver answered {ack.code}{detail}", code=ack.code)
        return Retry(f"acknowledgement code {ack.code!r} is not an HL7 ACK code", code=ack.code)

    def field(self, parsed: Parsed, path: str) -> str:
        return parsed.body.value(path)


def _salvage_msh(raw: bytes) -> Segment | None:
    """Read just the MSH of a message that failed to parse, so the ACK can still echo its
    control id, version and applications; None when there is no usable MSH."""
    text = decode_text(raw).lstrip("\ufeff \t\r\n\x00")
    if not text.startswith("MSH"):
        return None
    try:
        d = read_delimiters(text)
    except ParseError:
        return None
    line = text.replace("\r\n", "\r").replace("\n", "\r").split("\r", 1)[0]
    return Segment(line, d)
