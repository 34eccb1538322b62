"""The envelope step: what arrived as one and is taken on as several messages, and the
one reply for the whole.

Two things make envelopes today, behind one interface (`Opened`): the codec's `split`
(an HL7 batch or batch file, later an X12 interchange) and the channel's splitter
(`split:`, engine.pipeline.splitting: one message per FHIR Bundle entry of a type).
Either way the channel takes every part on its own path (parse, validate, duplicates,
filters, routing), then asks the envelope for the one reply. The all-or-nothing rule is
here, once (`Opened.refusal`): an envelope that is itself wrong (an HL7 batch whose
trailer counts another number of messages, a Bundle whose `entry` is no list of
objects) is refused whole, and so is an atomic one (a FHIR transaction) one of whose
parts is refused or fails; a refused envelope is kept as one rejected message and
nothing of it is queued.

Why the splitter is not inside the FHIR codec: a codec is built from the registry
without a channel's configuration, and splitting is a channel's choice (`split:
{resource: Patient}`: which entries become messages, and a rule run before the
channel's filters), not the standard's; its parts also carry more than a codec's
`Envelope` does (each part's audit detail, a control id from its content, its entry
index). Folding it into the codec would make the codec configurable per channel, a
design decision for the Codec contract left to a later issue; the channel sees no
difference, since both come through `Envelopes.open`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

import msgspec

from engine.errors import ParseError
from engine.formats.base import Codec, Envelope
from engine.message import (
    MessageStatus,
    Outcome,
    PartReceipt,
    Problem,
    Receipt,
    SourceMeta,
    Verdict,
)
from engine.pipeline.splitting import Split, Splitter

# Worst last: the status an envelope is reported with.
_SEVERITY = [MessageStatus.ACCEPTED, MessageStatus.DUPLICATE, MessageStatus.FILTERED,
             MessageStatus.ERROR, MessageStatus.REJECTED]

# An atomic envelope is refused whole when one of its parts ends so.
FAILED = (MessageStatus.ERROR, MessageStatus.REJECTED)


@dataclasses.dataclass(frozen=True, slots=True)
class Part:
    """One message of an envelope, as the channel takes it on."""

    raw: bytes
    meta: SourceMeta
    received: dict[str, Any] | None = None  # added to its "received" audit detail
    control_id: str = ""  # replaces the codec's ("" keeps it)


class Opened(Protocol):
    """An envelope opened into its parts."""

    parts: Iterable[Part]  # read once; a large batch's are made one at a time
    atomic: bool  # the parts stand or fall together

    def refusal(self, outcomes: Sequence[tuple[MessageStatus, tuple[Problem, ...]]]
                ) -> tuple[Problem, ...]:
        """Why the whole envelope is refused (empty when its parts are taken): what is
        wrong with the envelope itself (`outcomes` then empty, no part is prepared), or,
        for an atomic one, the problems of every part that failed (`outcomes`, each
        part's status and problems, in order)."""
        ...

    def refused(self, receipt: Receipt, problems: tuple[Problem, ...]) -> Receipt:
        """The answer to a refused envelope, from the receipt of it kept whole."""
        ...

    def receipt(self, receipts: Sequence[Receipt], replies: Sequence[bytes]) -> Receipt:
        """One receipt for the parts taken on, with the one reply for the whole."""
        ...


def _refusal(problems: Sequence[Problem], atomic: bool,
             outcomes: Sequence[tuple[MessageStatus, tuple[Problem, ...]]],
             locate: Any = None) -> tuple[Problem, ...]:
    """The all-or-nothing rule, for every kind of envelope."""
    if problems:
        return tuple(problems)
    if atomic and any(status in FAILED for status, _ in outcomes):
        return tuple(locate(i, p) if locate else p for i, (status, found)
                     in enumerate(outcomes) if status in FAILED for p in found)
    return ()


def combine(receipts: Sequence[Receipt], reply: bytes) -> Receipt:
    """One receipt for the messages of an envelope: the worst status, the first stored
    message's id, each message's own receipt as a part (a file source tells a file partly
    taken from one refused), one reply; acknowledging it acknowledges each."""

    def replied() -> None:
        for receipt in receipts:
            receipt.replied()

    worst = max((r.status for r in receipts), key=_SEVERITY.index,
                default=MessageStatus.ACCEPTED)
    first = next((r.message_id for r in receipts if r.message_id), "")
    parts = tuple(PartReceipt(i, r.message_id, r.status, r.problems)
                  for i, r in enumerate(receipts))
    return Receipt(first, worst, (reply,), replied, parts=parts)


class _Batch:
    """An envelope of the codec's own (an HL7 batch): parts independent, replied to with
    the codec's envelope reply."""

    atomic: bool = False

    def __init__(self, codec: Codec, envelope: Envelope, meta: SourceMeta) -> None:
        self._codec = codec
        self._envelope = envelope
        self._meta = meta

    @property
    def parts(self) -> Iterator[Part]:
        meta = self._meta
        return (Part(m, SourceMeta(meta.transport, meta.peer, len(m),
                                   tls_subject=meta.tls_subject))
                for m in self._envelope.messages)

    def refusal(self, outcomes: Sequence[tuple[MessageStatus, tuple[Problem, ...]]]
                ) -> tuple[Problem, ...]:
        return _refusal(self._envelope.problems, self.atomic, outcomes)

    def refused(self, receipt: Receipt, problems: tuple[Problem, ...]) -> Receipt:
        rejected = Outcome(Verdict.REJECTED, problems)
        replies = [self._codec.reply(m, None, rejected) for m in self._envelope.messages]
        return Receipt(receipt.message_id, MessageStatus.REJECTED,
                       (self._codec.envelope_reply(self._envelope, replies),),
                       receipt.on_replied)

    def receipt(self, receipts: Sequence[Receipt], replies: Sequence[bytes]) -> Receipt:
        return combine(receipts, self._codec.envelope_reply(self._envelope, replies))


class _Bundle:
    """A Bundle the channel's splitter split: a transaction's parts stand or fall
    together; replied to with one OperationOutcome, and a PartReceipt per part."""

    def __init__(self, splitter: Splitter, split: Split, meta: SourceMeta) -> None:
        self._splitter = splitter
        self._split = split
        self.atomic = split.atomic
        self.parts = [Part(raw, _part_meta(meta, split.index(i), len(raw)), detail, control_id)
                      for i, (raw, detail, control_id) in enumerate(zip(
                          split.messages, split.details, split.control_ids, strict=True))]

    def refusal(self, outcomes: Sequence[tuple[MessageStatus, tuple[Problem, ...]]]
                ) -> tuple[Problem, ...]:
        return _refusal(self._split.problems, self.atomic, outcomes,
                        lambda i, p: located(self._split.index(i), p))

    def refused(self, receipt: Receipt, problems: tuple[Problem, ...]) -> Receipt:
        return receipt  # the codec's own answer to the Bundle kept whole

    def receipt(self, receipts: Sequence[Receipt], replies: Sequence[bytes]) -> Receipt:
        reply = self._splitter.reply(self._split, list(replies),
                                     [r.message_id for r in receipts])
        parts = tuple(PartReceipt(self._split.index(i), r.message_id, r.status, r.problems)
                      for i, r in enumerate(receipts))
        problems = tuple(located(part.index, p) for part in parts for p in part.problems)
        return msgspec.structs.replace(combine(receipts, reply), parts=parts,
                                       problems=problems)


class Envelopes:
    """The envelope step of a channel: its codec's envelopes, and its splitter's."""

    def __init__(self, codec: Codec, splitter: Splitter | None) -> None:
        self.codec = codec
        self.splitter = splitter

    def open(self, raw: bytes, meta: SourceMeta) -> Opened | None:
        """The envelope `raw` is, or None for one message (also for a truncated one: the
        codec then says what is wrong with it)."""
        if not isinstance(raw, bytes) and (self.splitter is not None
                                           or not self.codec.streams):
            raw = bytes(raw)
        if meta.truncated:
            return None
        if self.splitter is not None:
            split = self.splitter.split(raw)
            if split is not None:
                return _Bundle(self.splitter, split, meta)
        try:
            envelope = self.codec.split(raw)
        except ParseError:
            return None  # read as one message: the codec then says what is wrong
        return _Batch(self.codec, envelope, meta) if envelope is not None else None

    def splits(self, raw: bytes) -> bool:
        """Whether `raw` is a Bundle this channel would split (under `*` a stored part
        may itself be a Bundle, taken whole, so there nothing is refused)."""
        return (self.splitter is not None and self.splitter.resource != "*"
                and self.splitter.split(raw) is not None)


def located(index: int, problem: Problem) -> Problem:
    """A part's problem as one of the whole Bundle's: located at its entry."""
    where = f"Bundle.entry[{index}].resource"
    segment = problem.segment
    if segment and segment[:1].isupper() and "." in segment:
        where += segment[segment.index("."):]  # Patient.identifier -> ...resource.identifier
    return msgspec.structs.replace(problem, segment=where, field=None)


def _part_meta(meta: SourceMeta, index: int, size: int) -> SourceMeta:
    """The source's facts for one part of a split Bundle: its own size, the changes the
    source made to its entry, and those to the whole body (a conversion from XML)."""
    prefix = f"Bundle.entry[{index}]."
    return msgspec.structs.replace(meta, size=size, changes=tuple(
        c for c in meta.changes if c.startswith(prefix) or not c.startswith("Bundle.")))
