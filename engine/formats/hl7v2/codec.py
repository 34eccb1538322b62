"""The HL7v2 codec: bytes to `Parsed` with routing fields, and ACKs both ways.

Acknowledgement modes (see ack.py): `reply` is what goes back on the connection the
message came in on, right after the durable commit: the AA/AE/AR ACK in original mode,
the CA/CE/CR commit ACK in enhanced mode (or b"" when MSH-15 says none is wanted).
`application_reply` is the enhanced-mode application ACK (AA/AE/AR), built once the
message has been processed, and b"" in original mode or when MSH-16 wants none.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from engine.errors import ParseError
from engine.formats.base import Envelope, opening
from engine.formats.diff import Change, diff_values
from engine.formats.hl7v2.ack import ack_types, build_ack, read_ack, wanted
from engine.formats.hl7v2.batch import Batch, build_batch_reply, split_batch
from engine.formats.hl7v2.charsets import decode_text, encode_text, reply_codec
from engine.formats.hl7v2.escape import unescape
from engine.formats.hl7v2.message import FIELD_PATH, Hl7Message, Segment, read_header
from engine.formats.hl7v2.split import split_messages
from engine.formats.hl7v2.tables import identifier_rank
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
)

__all__ = ["Hl7v2Codec", "decode_text"]


def _first_subcomponent(text: str, sub: str) -> str:
    return text.split(sub, 1)[0] if sub in text else text


def _patient_identifier(message: Hl7Message) -> str | None:
    """PID-3's record number, the identifier the Patient is keyed on
    (`tables.identifier_rank`: MR, then MRN, PI, ...; an SSN or licence only when
    nothing else is sent; the first of equals), else PID-2: what the message's patient
    pseudonym, and so audit searches and the accounting of disclosures, go by.

    Read from PID-3's raw text rather than through Repetition objects: this runs for
    every message, and only the identifier it returns needs unescaping."""
    pid = None
    for segment in message.segments:  # PID is near the top; cheaper than the index
        if segment.name == "PID":
            pid = segment
            break
    if pid is None:
        return None
    d = pid.delimiters
    best, best_rank = "", 1 << 30
    for rep in pid.raw(3).split(d.repetition):
        comps = rep.split(d.component)
        ident = _first_subcomponent(comps[0], d.subcomponent)
        if not ident:
            continue
        kind = unescape(_first_subcomponent(comps[4], d.subcomponent), d) \
            if len(comps) > 4 else ""
        rank = identifier_rank(kind)
        if rank == 0:
            return unescape(ident, d)
        if rank < best_rank:
            best, best_rank = ident, rank
    if best:
        return unescape(best, d)
    return pid.value(2) or None  # PID-2 external id, used by older senders


_ACK_CODES = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})
_ERROR_CODE = re.compile(r"\d{1,4}|unspecified")  # HL7 table 0357, or none given


class Hl7v2Codec:
    """HL7 version 2 in ER7 (pipe) encoding."""

    name = "hl7v2"
    content_type = "x-application/hl7-v2+er7"
    extensions: tuple[str, ...] = (".hl7",)
    streams = False

    def detect(self, raw: bytes) -> bool:
        """A message (MSH), a file (FHS) or a batch (BHS) header first."""
        return opening(raw, 3) in (b"MSH", b"FHS", b"BHS")

    def require(self, must_have: Mapping[str, Sequence[str]]) -> None:
        """HL7v2 channels have no must-have elements of their own; nothing to keep."""

    def field_path_error(self, path: str) -> str | None:
        if FIELD_PATH.match(path.strip()):
            return None
        return (f"`{path}` is not an HL7 field path; write e.g. MSH-9.1, PID-3[2].4 or "
                "OBX[2]-5")

    def problem(self, kind: ProblemKind, text: str) -> Problem:
        """Everything the engine finds itself is table 0357's 207, application internal
        error."""
        return Problem(text, code="207")

    def replies(self, raw: bytes, parsed: Parsed | None, outcome: Outcome
                ) -> tuple[bytes, ...]:
        """Original mode: the one ACK. Enhanced mode: the commit ACK and/or the
        application ACK, as MSH-15/16 ask (both known at commit, since the message was
        mapped and queued before it was committed). Nothing for an ACK: acknowledgements
        are not acknowledged (a peer that acknowledged ours in turn would answer for
        ever)."""
        if parsed is not None and parsed.message_type.partition("^")[0] == "ACK":
            return ()
        replies = (self.reply(raw, parsed, outcome),
                   self.application_reply(raw, parsed, outcome))
        return tuple(r for r in replies if r)

    def file_messages(self, raw: bytes) -> list[bytes]:
        """Every message of a file, envelope segments dropped and segments ended by \r,
        each in the file's own encoding (a Latin-1 file stays Latin-1 on the wire)."""
        encoding = "utf-8"
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "latin-1"
        return [m.encode(encoding) for m in split_messages(decode_text(raw))]

    def split(self, raw: bytes) -> Batch | None:
        """`split_batch`, under the contract's name."""
        return split_batch(raw)

    def envelope_reply(self, envelope: Envelope, replies: Sequence[bytes]) -> bytes:
        """`batch_reply` with every ACK in it."""
        assert isinstance(envelope, Batch), "an envelope of this codec's own `split`"
        return build_batch_reply(envelope, list(replies))

    def diff(self, a: bytes, b: bytes) -> list[Change]:
        """Field by field, by HL7 path (`PID[1]-5[1].2.1`): line endings and delimiters
        never differ, a changed component always does."""
        return diff_values(fields(a.decode("utf-8", "replace")),
                           fields(b.decode("utf-8", "replace")))

    def parse(self, raw: bytes) -> Parsed:
        text = decode_text(raw)
        if "\x00" in text[:4096]:
            raise ParseError("message holds binary (NUL) bytes; HL7v2 is text", code="102")
        message = Hl7Message.parse(text)
        msh = message.segments[0]
        code = msh.value(9, 1)
        if not code:
            raise ParseError("message type is missing", segment="MSH", field=9, code="101")
        control_id = msh.value(10)
        if not control_id:
            raise ParseError("message control id is missing", segment="MSH", field=10, code="101")
        event = msh.value(9, 2)
        return Parsed(
            standard=self.name,
            message_type=f"{code}^{event}" if event else code,
            control_id=control_id,
            version=msh.value(12),
            sender=f"{msh.value(3)}^{msh.value(4)}",
            receiver=f"{msh.value(5)}^{msh.value(6)}",
            patient_id=_patient_identifier(message),
            body=message,
        )

    def reply(self, raw: bytes, parsed: Parsed | None, outcome: Outcome) -> bytes:
        """The acknowledgement to write back on the inbound connection after the commit:
        AA/AE/AR in original mode; in enhanced mode the CA/CE/CR commit ACK when MSH-15
        asks for one under this outcome, else b"" (send nothing). `parsed` is None when
        the message did not parse; its MSH is then salvaged if it can be."""
        msh = parsed.body.segments[0] if parsed is not None else _salvage_msh(raw)
        types = ack_types(msh)
        if types is None:
            return self._encode(build_ack(msh, outcome), msh, raw)
        if not wanted(types[0], outcome.verdict):
            return b""
        return self._encode(build_ack(msh, outcome, commit=True), msh, raw)

    def application_reply(self, raw: bytes, parsed: Parsed | None, outcome: Outcome) -> bytes:
        """Enhanced mode's application ACK (AA/AE/AR) once the message has been
        processed, when MSH-16 asks for one under this outcome; b"" otherwise, and always
        in original mode (where `reply` already was the application ACK)."""
        msh = parsed.body.segments[0] if parsed is not None else _salvage_msh(raw)
        types = ack_types(msh)
        if types is None or not wanted(types[1], outcome.verdict):
            return b""
        return self._encode(build_ack(msh, outcome), msh, raw)

    @staticmethod
    def _encode(text: str, msh: Segment | None, raw: bytes) -> bytes:
        """An ACK in the answered message's character set. When that set cannot carry
        the text: Latin-1 if it can (the message declared a set it did not use and was
        read as Latin-1, so echoing its fields in Latin-1 gives back the bytes it sent),
        else "?" for what cannot be written (only our own error texts get there)."""
        codec = reply_codec(msh.delimiters.encoding, raw) if msh is not None else ""
        try:
            return encode_text(text, codec)
        except UnicodeEncodeError:
            try:
                return text.encode("latin-1")
            except UnicodeEncodeError:
                return encode_text(text, codec, errors="replace")

    def read_reply(self, reply: bytes, sent: Outbound) -> Delivery:
        """What a receiving system's ACK means for the queue: AA/CA sent, AE/CE retry,
        AR/CR permanent failure; an unreadable or mismatched ACK is retried."""
        try:
            ack = read_ack(Hl7Message.parse(decode_text(reply)))
        except ParseError as exc:
            return Retry(f"unreadable acknowledgement: {exc}")
        if ack is None:
            return Retry("acknowledgement has no MSA segment")
        # A reason is logged and audited: what the receiver wrote is quoted only where it
        # is one of HL7's codes, never a field that may hold the patient (a receiver whose
        # ACK has its fields out of place puts an MRN where the code should be).
        code = ack.code if ack.code in _ACK_CODES else ""
        if sent.control_id and ack.control_id and ack.control_id != sent.control_id:
            return Retry("acknowledgement is for another control id, not ours", code=code)
        errors = [e if _ERROR_CODE.fullmatch(e) else "other" for e in ack.errors]
        detail = f" (ERR {', '.join(errors)})" if errors else ""
        if code in ("AA", "CA"):
            return Sent(code)
        if code in ("AE", "CE"):
            return Retry(f"receiver answered {code}{detail}", code=code)
        if code in ("AR", "CR"):
            return Fail(f"receiver answered {code}{detail}", code=code)
        return Retry("acknowledgement code (MSA-1) is not an HL7 ACK code")

    def validate(self, parsed: Parsed, level: str) -> list[Problem]:
        """Problems with the message's structure for its declared version (hl7apy's rule
        tables over our own tokenizer); never on the routing path."""
        from engine.formats.hl7v2.validation import validate  # hl7apy loads slowly

        return validate(parsed.body, level)

    def field(self, parsed: Parsed, path: str) -> str:
        return parsed.body.value(path)

    def split_batch(self, raw: bytes) -> Batch | None:
        """The messages of a batch (FHS/BHS...BTS/FTS, or several MSH in one frame or
        file), or None when `raw` is a single message: a cheap test, fine to call on
        every inbound frame.

        Contract for the channel: commit, parse and `reply` to each of
        `batch.messages` exactly as if it had arrived alone, collecting the replies in
        order (b"" where `reply` returned b""), then write `batch_reply(batch, replies)`
        back as the one answer to the frame or file. `batch.problems` lists what is wrong
        with the envelope itself (BTS-1/FTS-1 counts that disagree with what arrived,
        segments outside any message); a batch whose counts disagree has lost or gained
        messages on the way, so the standard's advice is to reject it as a whole: reply
        `Outcome(Verdict.REJECTED, tuple(batch.problems))` to each message and do not
        process them. Raises ParseError only when a header's own delimiters are
        unreadable (reply to `raw` as to an unparseable message then)."""
        return split_batch(raw)

    def batch_reply(self, batch: Batch, replies: list[bytes], *,
                    errors_only: bool = False) -> bytes:
        """The acknowledgement batch for `batch`: BHS/BTS (FHS/FTS when the input had a
        file header) around the non-empty `replies`, BHS-12/FHS-12 naming the answered
        batch's control id and BTS-1 counting the ACKs inside. `errors_only` leaves out
        AA/CA ACKs (original mode's "errors on an exception basis" option); enhanced-mode
        messages have already chosen through MSH-15. Raises ValueError when `replies`
        does not line up with `batch.messages`."""
        return build_batch_reply(batch, replies, errors_only=errors_only)


def fields(text: str) -> dict[str, str]:
    """An HL7v2 message as {path: value} for every valued leaf, e.g. PID[1]-5[1].2.1."""
    message = Hl7Message.parse(text)
    seen: dict[str, int] = {}
    leaves: dict[str, str] = {}
    for seg in message:
        seen[seg.name] = seen.get(seg.name, 0) + 1
        prefix = f"{seg.name}[{seen[seg.name]}]"
        for field in range(1, len(seg) + 1):
            if seg.name == "MSH" and field in (1, 2):
                continue
            for r, rep in enumerate(seg.repetitions(field), start=1):
                for c, comp in enumerate(rep.components(), start=1):
                    subs = comp.split(message.delimiters.subcomponent) if comp else []
                    for s in range(1, len(subs) + 1):
                        value = rep.value(c, s)
                        if value:
                            leaves[f"{prefix}-{field}[{r}].{c}.{s}"] = value
    return leaves


def _salvage_msh(raw: bytes) -> Segment | None:
    """Read just the MSH of a message that failed to parse, so the ACK can still echo its
    control id, version, applications, character set and acknowledgement types; None
    when there is no usable MSH."""
    text = decode_text(raw).lstrip("\ufeff \t\r\n\x00")
    if not text.startswith("MSH"):
        return None
    try:
        return read_header(text)
    except ParseError:
        return None
