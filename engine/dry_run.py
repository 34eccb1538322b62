"""A channel run dry: a message taken through one channel's own steps, as the daemon
would take it, to see the answer the sender would get, with nothing stored, queued or
sent (`conduit ack --channel`).

Why the real Channel and not a re-creation of it: the answer depends on every step
before it (the codec's parse and the channel's validation, the filter, the mapping with
the channel's strictness, the conformance gates, a batch's or a split Bundle's one
reply) and on how the commit step turns the routed status and problems into the codec's
reply. A copy of those steps would drift from them; so the channel is built from its
configuration as engine.runtime builds it, and only what would make a message durable
or leave the process is replaced by stand-ins that keep nothing:

- the message store, the queue, the writer and the vault (nothing is written, no
  patient pseudonym is made, no destination is woken);
- the duplicate check, which needs the store's record of what was taken on: it is
  turned off (`duplicate_window: 0`), so a resend is answered as a new message. The
  engine answers a resend of a message it took on within the window with a plain
  acceptance (HL7v2 AA/CA), and does not process it again.

What only the running engine can know is said by `limits` (a respond: channel's answer
from its destination, an X12 partner's control numbers, a store that cannot take the
message).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

import msgspec

from engine import registry
from engine.channel import Channel
from engine.config.schema import ChannelConfig
from engine.connectors.mllp_framing import KEPT_OF_OVERSIZE
from engine.errors import ConduitError
from engine.formats.base import opening
from engine.mapping import MappingCatalog
from engine.message import MessageStatus, SourceMeta

DUPLICATES_NOT_CHECKED = ("duplicates are not checked (that needs the engine's message "
                          "store): a resend is answered as a new message")


@dataclasses.dataclass(frozen=True)
class Answer:
    """What the channel made of one message (or envelope): its status and the replies
    it would write back, in order (one frame each)."""

    status: MessageStatus
    replies: tuple[bytes, ...]


class _Nowhere:
    """Store, queue, writer and vault in one: accepts every write and keeps nothing,
    and knows no earlier message (so no resend, no original to correlate with)."""

    def add_message(self, uow: Any, row: dict[str, Any], raw: bytes) -> None:
        return None

    def add_output(self, uow: Any, message_id: str, mapping: str, content_type: str,
                   content: bytes) -> str:
        return f"{message_id}-dry"

    def original_of(self, *args: Any) -> None:
        return None

    def get(self, message_id: str) -> None:
        return None

    def recent_control_ids(self, channel: str, since: float) -> list[Any]:
        return []

    def taken_with_control_ids(self, channel: str, keys: list[Any], since: float
                               ) -> dict[Any, Any]:
        return {}

    def put(self, uow: Any, destination: str, message_id: str, output_id: str | None,
            now: float) -> None:
        return None

    async def commit(self, uow: Any) -> None:
        return None

    def submit(self, uow: Any) -> None:
        return None

    def pseudonym(self, identifier: str | None) -> None:
        return None


@dataclasses.dataclass
class _Destination:
    """A destination as routing sees it (its name and queue key), never started."""

    name: str
    key: str

    def notify(self) -> None:
        return None


class _NoSource:
    """The channel is handed each message directly; no listener is opened."""

    async def start(self, deliver: Any) -> None:
        return None

    async def stop(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"type": "dry run"}


def dry_channel(config: ChannelConfig, catalog: MappingCatalog,
                validation: str | None = None) -> Channel:
    """The channel of `config` with nothing durable behind it and its duplicate check
    off; `validation` replaces the channel's level (`conduit ack --validate`)."""
    changes: dict[str, Any] = {"duplicate_window": 0}
    if validation is not None:
        changes["validation"] = validation
    config = msgspec.structs.replace(config, **changes)
    nowhere: Any = _Nowhere()
    destinations: Any = [_Destination(d.name, f"{config.name}/{d.name}")
                         for d in config.destinations]
    source: Any = _NoSource()
    mapping = catalog.get(config.mapping) if config.mapping else None
    if config.mapping and mapping is None:  # the engine would not start such a channel
        raise ConduitError(f"channel {config.name}: {catalog.unknown(config.mapping)}")
    return Channel(config, codec=registry.codec_for(config), mapping=mapping, source=source,
                   workers=destinations, store=nowhere, queue=nowhere, writer=nowhere,
                   vault=nowhere, delivers=False)


def frames(config: ChannelConfig, raw: bytes) -> list[bytes]:
    """What the channel's source hands it for a file: HL7v2 messages one by one (a
    sender sends each in its own MLLP frame, as `conduit send` does) unless the file is
    a batch (FHS/BHS, sent whole); any other standard's file as it is (an X12
    interchange, a FHIR Bundle, a SCRIPT message: the channel opens envelopes itself)."""
    codec = registry.CODECS[config.format]()
    if config.format == "hl7v2" and opening(raw, 3) not in (b"FHS", b"BHS"):
        return codec.file_messages(raw)
    return [raw]


def _meta(config: ChannelConfig, frame: bytes) -> tuple[bytes, SourceMeta]:
    """The frame and its SourceMeta as the channel's source would give them: an MLLP
    frame over the source's limit is cut to the prefix the listener keeps, and refused."""
    transport = type(config.source).__struct_config__.tag
    limit = getattr(config.source, "max_message_size", None)
    if transport == "mllp" and limit is not None and len(frame) > int(limit):
        return frame[:KEPT_OF_OVERSIZE], SourceMeta("mllp", "dry run", len(frame), True)
    return frame, SourceMeta(str(transport), "dry run", len(frame))


async def _answer_all(channel: Channel, config: ChannelConfig, raws: Sequence[bytes]
                      ) -> list[Answer]:
    answers = []
    for frame in raws:
        payload, meta = _meta(config, frame)
        receipt = await channel.deliver(payload, meta)
        answers.append(Answer(receipt.status, receipt.replies))
    return answers


def channel_acknowledgements(config: ChannelConfig, catalog: MappingCatalog, raw: bytes,
                             validation: str | None = None) -> list[Answer]:
    """The answers channel `config` would give for the messages of a file, as it gives
    them: parsed and validated, filtered, mapped and checked by its own steps, and
    answered by its codec from the status and problems routing found."""
    channel = dry_channel(config, catalog, validation)
    return asyncio.run(_answer_all(channel, config, frames(config, raw)))


def limits(config: ChannelConfig) -> list[str]:
    """What this dry run cannot know about the channel, in words for the analyst."""
    said = [DUPLICATES_NOT_CHECKED]
    if config.respond is not None:
        said.append(f"this channel answers a message it takes on with "
                    f"{config.respond.destination}'s own answer (respond:), which only the "
                    "running engine gets; shown is the acknowledgement it answers otherwise")
    if getattr(config, "x12", None) is not None:
        said.append("no X12 control number is taken for the partner's envelope")
    return said
