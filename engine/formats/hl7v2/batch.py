"""HL7v2 batches (v2.5 chapter 2.10.3): split a batch into messages, answer it as a batch.

    [FHS]                 file header (file control id FHS-11)
    { [BHS]               batch header (batch control id BHS-11)
      { [MSH ...] }       zero or more messages
      [BTS] }             batch trailer (BTS-1: how many messages the batch holds)
    [FTS]                 file trailer (FTS-1: how many batches the file holds)

A batch arrives as one MLLP frame or as one file. Splitting keeps each message's bytes
as sent (segment endings normalised to \\r), so every message then goes through the
codec on its own, with its own MSH-18. Splitting is done on bytes, which is safe for
every ASCII-compatible set of table 0211 (none uses CR or LF inside a multi-byte
character); UTF-16/32 batches are split as text and each message is re-encoded in the
same set, with a byte-order mark.

Counts are checked, not trusted: a BTS-1 or FTS-1 that disagrees with what arrived
becomes a Problem on the batch (a lost or duplicated message is exactly what the counts
exist to catch).

The acknowledgement of a batch (`build_batch_reply`) is itself a batch: BHS/BTS, and
FHS/FTS when the input had a file header, swapping sending and receiving application
and facility, a fresh control id in BHS-11/FHS-11 and the answered batch's control id in
BHS-12/FHS-12 (the standard's "reference batch control id": "echoed back in BHS-12 if
an answering batch is needed"). BTS-1 counts the ACKs the reply batch holds and FTS-1
its batches. Which messages get an ACK inside it:

- original mode: the standard lets the receiver acknowledge every message, or only the
  ones in error ("errors processed on an exception basis"), in which case an empty
  acknowledgement batch means every message was accepted. Every message by default;
  `errors_only=True` for the exception-basis style.
- enhanced mode: each message's MSH-15 already decided (the codec's `reply` returns
  b"" when no commit ACK is wanted, e.g. ER on success), so a batch of MSH-15=ER
  messages naturally gets an acknowledgement batch of its errors only.
The reply batch is produced even when it holds no ACK, so a sender waiting on an MLLP
frame always gets an answer, and it says "all implicitly accepted" in standard terms.
"""

from __future__ import annotations

import re
import time

import msgspec

from engine.errors import ParseError
from engine.formats.hl7v2.ack import new_control_id
from engine.formats.hl7v2.charsets import (
    declared_codec,
    decode_text,
    encode_text,
    is_wide,
    sniff_wide,
)
from engine.formats.hl7v2.escape import DEFAULT, Delimiters, escape
from engine.formats.hl7v2.message import Segment, read_header
from engine.message import Problem

_LINES = re.compile(rb"\r\n|\r|\n")
_TRAILERS = (b"BTS", b"FTS")
_WHITESPACE = b" \t\n\r\x0b\x0c"  # what bytes.strip() strips: blank lines are skipped


class BatchHeader(msgspec.Struct, frozen=True):
    """What an FHS or BHS says about its file or batch (values unescaped)."""

    segment: str  # "FHS" or "BHS"
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    created: str = ""
    name: str = ""  # FHS-9 / BHS-9 name/id/type
    comment: str = ""  # FHS-10 / BHS-10
    control_id: str = ""  # FHS-11 / BHS-11
    reference_control_id: str = ""  # FHS-12 / BHS-12
    text: str = ""  # the segment as sent, for echoing fields with components
    delimiters: Delimiters = DEFAULT  # as its -1 and -2 declare them


class BatchGroup(msgspec.Struct):
    """One BHS..BTS batch: its header (None when the input had no BHS), its messages in
    order, and what its trailer declared (None when there was no BTS-1)."""

    header: BatchHeader | None
    messages: list[bytes]
    declared_count: int | None = None


class Batch(msgspec.Struct):
    """A split batch or batch file: the file header, its batches, and what is wrong with
    the envelope (counts that disagree, segments outside any message)."""

    file_header: BatchHeader | None
    groups: list[BatchGroup]
    problems: list[Problem]
    delimiters: Delimiters = DEFAULT
    encoding: str = ""  # the Python codec replies are written in ("" = UTF-8)
    declared_batches: int | None = None  # FTS-1

    @property
    def messages(self) -> list[bytes]:
        """Every message of every batch, in order (what `replies` must line up with)."""
        return [m for group in self.groups for m in group.messages]


def split_batch(raw: bytes) -> Batch | None:
    """Split `raw` into a Batch, or None when it is a single message (see `is_batch`; the
    common case costs a couple of substring searches). Raises ParseError only when a file
    or batch header's delimiters are unreadable; everything else wrong with the envelope
    is a Problem on the Batch."""
    if raw[:3] == b"MSH" and not _looks_like_batch(raw):
        return None  # the common case, decided in about a microsecond
    wide = sniff_wide(raw)
    if is_wide(wide):
        try:
            text = raw.decode(wide)
        except UnicodeDecodeError:
            return None  # not decodable as a wide batch: the codec will reject it
        family = "utf-16" if wide.startswith("utf-16") else "utf-32"
        batch = _split(text.encode("utf-8"))
        if batch is not None:
            for group in batch.groups:
                group.messages = [m.decode("utf-8").encode(family) for m in group.messages]
            batch.encoding = family
        return batch
    return _split(raw)


def _split(raw: bytes) -> Batch | None:
    body = raw[3:] if raw[:3] == b"\xef\xbb\xbf" else raw
    body = body.lstrip(_WHITESPACE + b"\x00")
    if not _looks_like_batch(body):
        return None
    lines = [line for line in _LINES.split(body) if line.strip()]
    if not is_batch(lines):
        return None
    first_msh = next((line for line in lines if line[:3] == b"MSH"), b"")
    declared = declared_codec(first_msh)
    # The bytes here are one per character (wide batches were transcoded to UTF-8), so
    # a declared UTF-16/32 is read as undeclared, as decode_text does.
    encoding = "" if is_wide(declared) else declared
    problems: list[Problem] = []
    file_header: BatchHeader | None = None
    groups: list[BatchGroup] = []
    delimiters = _envelope_delimiters(lines, encoding)
    declared_batches: int | None = None
    current: BatchGroup | None = None
    message: list[bytes] | None = None
    closed = False  # the current group's BTS has been read

    def finish_message() -> None:
        nonlocal message
        if message is not None and current is not None:
            current.messages.append(b"\r".join(message) + b"\r")
        message = None

    for line in lines:
        name = line[:3]
        if name in (b"FHS", b"BHS"):
            finish_message()
            header = _read_header(line, encoding)
            if name == b"FHS":
                if file_header is not None or groups:
                    problems.append(Problem("FHS is not at the start of the file",
                                            code="100", segment="FHS"))
                file_header = header
                continue
            current = BatchGroup(header, [])
            groups.append(current)
            closed = False
        elif name == b"MSH":
            finish_message()
            if current is None or closed:
                current = BatchGroup(None, [])
                groups.append(current)
                closed = False
            message = [line]
        elif name == b"BTS":
            finish_message()
            if current is None:
                current = BatchGroup(None, [])
                groups.append(current)
            current.declared_count = _count(line, "BTS", problems, delimiters, encoding)
            closed = True
        elif name == b"FTS":
            finish_message()
            declared_batches = _count(line, "FTS", problems, delimiters, encoding)
        elif message is not None:
            message.append(line)
        else:
            problems.append(Problem(
                f"segment {_name(line)} is outside any message (a message starts at MSH)",
                code="100", segment=_name(line) or None))
    finish_message()
    _check_counts(groups, declared_batches, problems)
    return Batch(file_header, groups, problems, delimiters, encoding, declared_batches)


def is_batch(lines: list[bytes]) -> bool:
    """What makes the (non-blank) lines a batch rather than one message: they start with
    FHS or BHS, hold two or more MSH segments, or end in a BTS/FTS trailer (one of the
    last two lines, trailers being last). A BTS in the middle of a lone message is just a
    segment of that message."""
    if not lines:
        return False
    if lines[0][:3] in (b"FHS", b"BHS"):
        return True
    if any(line[:3] in _TRAILERS for line in lines[-2:]):
        return True
    return sum(1 for line in lines if line[:3] == b"MSH") > 1


def _looks_like_batch(body: bytes) -> bool:
    """False only when `is_batch` would be false (so a False skips the split): substring
    searches rather than a regex or a split, because this runs on every inbound frame."""
    if body[:3] in (b"FHS", b"BHS"):
        return True
    found = body.find(b"MSH", 1)
    while found > 0:
        if body[found - 1] in (13, 10):  # at the start of a segment
            return True
        found = body.find(b"MSH", found + 3)
    end = len(body.rstrip(_WHITESPACE))
    for _ in range(2):  # the last two non-blank lines
        start = max(body.rfind(b"\r", 0, end), body.rfind(b"\n", 0, end)) + 1
        if body[start : start + 3] in _TRAILERS:
            return True
        end = len(body[:start].rstrip(_WHITESPACE)) if start > 0 else 0
        if end == 0:
            break
    return False


def _envelope_delimiters(lines: list[bytes], encoding: str) -> Delimiters:
    """The delimiters of the first FHS or BHS, else of the first readable MSH, else the
    default: what BTS/FTS are read with and the reply batch is written with."""
    for line in lines:
        if line[:3] in (b"FHS", b"BHS"):
            return _read_header(line, encoding).delimiters
    for line in lines:
        if line[:3] == b"MSH":
            try:
                return read_header(_decode(line, encoding)).delimiters
            except ParseError:
                continue
    return DEFAULT


def _name(line: bytes) -> str:
    return line[:3].decode("latin-1") if line[:3].isalnum() else ""


def _decode(line: bytes, encoding: str) -> str:
    try:
        return line.decode(encoding or "utf-8")
    except (UnicodeDecodeError, LookupError):
        return line.decode("latin-1")


def _read_header(line: bytes, encoding: str) -> BatchHeader:
    text = _decode(line, encoding)
    name = text[:3]
    try:
        segment = read_header(text)
    except ParseError as exc:
        raise ParseError(f"{name}: {exc.message}", segment=name, field=exc.field,
                         code=exc.code) from exc
    header = BatchHeader(
        segment=name,
        sending_application=segment.value(3),
        sending_facility=segment.value(4),
        receiving_application=segment.value(5),
        receiving_facility=segment.value(6),
        created=segment.value(7),
        name=segment.value(9),
        comment=segment.value(10),
        control_id=segment.value(11),
        reference_control_id=segment.value(12),
        text=text,
        delimiters=segment.delimiters,
    )
    return header


def _count(line: bytes, name: str, problems: list[Problem], d: Delimiters,
           encoding: str) -> int | None:
    """BTS-1 or FTS-1 as a number; None when empty; a Problem when not a number."""
    value = Segment(_decode(line, encoding), d).value(1).strip()
    if not value:
        return None
    if not (value.isascii() and value.isdecimal()):
        problems.append(Problem(f"{name}-1 should be a count, not {value[:20]!r}",
                                code="102", segment=name, field=1))
        return None
    return int(value)


def _check_counts(groups: list[BatchGroup], declared_batches: int | None,
                  problems: list[Problem]) -> None:
    for number, group in enumerate(groups, start=1):
        held = len(group.messages)
        if group.declared_count is not None and group.declared_count != held:
            problems.append(Problem(
                f"batch {number}: BTS-1 declares {group.declared_count} messages "
                f"but the batch holds {held}",
                code="100", segment="BTS", field=1))
    if declared_batches is not None and declared_batches != len(groups):
        problems.append(Problem(
            f"FTS-1 declares {declared_batches} batches but the file holds {len(groups)}",
            code="100", segment="FTS", field=1))


def build_batch_reply(
    batch: Batch,
    replies: list[bytes],
    *,
    errors_only: bool = False,
    application: str = "CONDUIT",
) -> bytes:
    """The acknowledgement batch answering `batch` (see the module docstring).

    `replies[i]` is the codec's reply to `batch.messages[i]`; b"" means "nothing to send
    for this message" and is left out. With `errors_only`, ACKs whose MSA-1 is AA or CA
    are left out too. Problems of the batch itself are reported in the reply's BHS-10
    (and FHS-10) comment.
    """
    if len(replies) != len(batch.messages):
        raise ValueError(f"{len(replies)} replies for a batch of {len(batch.messages)} messages")
    d = batch.delimiters
    comment = escape("; ".join(p.text for p in batch.problems)[:80], d) if batch.problems else ""
    out: list[str] = []
    if batch.file_header is not None:
        out.append(_reply_header("FHS", batch.file_header.text, d, application, comment))
    index = 0
    for group in batch.groups:
        acks: list[str] = []
        for _ in group.messages:
            reply = replies[index]
            index += 1
            text = _reply_text(reply)
            if text and not (errors_only and _accepted(text, reply)):
                acks.append(text)
        source = group.header.text if group.header is not None else _first_msh(group, batch)
        out.append(_reply_header("BHS", source, d, application, comment))
        out.extend(acks)
        out.append(f"BTS{d.field}{len(acks)}")
    if not batch.groups:
        source = batch.file_header.text if batch.file_header is not None else ""
        out += [_reply_header("BHS", source, d, application, comment), f"BTS{d.field}0"]
    if batch.file_header is not None:
        out.append(f"FTS{d.field}{max(len(batch.groups), 1)}")
    return encode_text("\r".join(out) + "\r", batch.encoding, errors="replace")


def _reply_text(reply: bytes) -> str:
    if not reply:
        return ""
    text = decode_text(reply).lstrip("\ufeff")
    return text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")


def _accepted(text: str, reply: bytes) -> bool:
    """Whether an ACK's MSA-1 is AA or CA (read without a full parse)."""
    for line in text.split("\r"):
        if line[:3] == "MSA" and len(line) > 6:
            return line[4:6] in ("AA", "CA")
    return False


def _first_msh(group: BatchGroup, batch: Batch) -> str:
    """Where a headerless batch's reply takes its applications from: the file header,
    else the batch's first message."""
    if batch.file_header is not None:
        return batch.file_header.text
    if not group.messages:
        return ""
    raw = group.messages[0]
    return _decode(raw.split(b"\r", 1)[0], declared_codec(raw))


def _reply_header(name: str, source: str, d: Delimiters, application: str,
                  comment: str) -> str:
    """FHS or BHS of the reply: applications and facilities swapped from `source` (the
    answered header, or an MSH), fresh control id, the answered control id in -12."""
    segment: Segment | None = None
    if source:
        try:
            segment = read_header(source)
        except ParseError:
            segment = None

    def raw(field: int) -> str:
        if segment is None:
            return ""
        value = segment.raw(field)
        return value if segment.delimiters == d or not value else escape(
            segment.value(field), d)

    answered = raw(11) if segment is not None and segment.name in ("FHS", "BHS") else ""
    fields = [
        name,
        d.encoding_characters.replace("\x00", ""),
        raw(5) or escape(application, d),
        raw(6),
        raw(3),
        raw(4),
        time.strftime("%Y%m%d%H%M%S%z"),
        "",
        "",
        comment,
        new_control_id(),
        answered,
    ]
    return d.field.join(fields).rstrip(d.field)
