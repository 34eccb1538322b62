"""Channel to channel, inside one engine: a destination that hands its output to another
channel's inbox, and the source that is that inbox.

The receiving channel stores the message durably before the sending destination counts
it as sent, exactly as an MLLP peer's ACK would, so chaining channels (HL7v2 to FHIR,
then FHIR to HL7v2) loses nothing between them.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from engine.config.base import DestinationBase, SourceBase
from engine.connectors.base import Deliver, DestinationContext
from engine.message import Delivery, Fail, MessageStatus, Outbound, Retry, Sent, SourceMeta

_INBOXES: dict[str, Deliver] = {}  # inbox name -> the receiving channel's deliver

_NAME = r"^[a-z0-9][a-z0-9_-]*$"


class ChannelSourceConfig(SourceBase, tag="channel"):
    inbox: Annotated[str, Meta(pattern=_NAME,
                               description="name other channels send to (type: channel)")]

    def resources(self) -> list[str]:
        return [f"inbox:{self.inbox}"]


class ChannelSource:
    def __init__(self, config: ChannelSourceConfig) -> None:
        self.config = config

    def resources(self) -> list[str]:
        return self.config.resources()

    async def start(self, deliver: Deliver) -> None:
        _INBOXES[self.config.inbox] = deliver

    async def stop(self) -> None:
        _INBOXES.pop(self.config.inbox, None)

    def describe(self) -> dict[str, object]:
        return {"address": f"inbox:{self.config.inbox}", "peers": []}


class ChannelDestinationConfig(DestinationBase, tag="channel"):
    inbox: Annotated[str, Meta(pattern=_NAME,
                               description="the inbox of the channel to hand messages to")]


class ChannelDestination:
    def __init__(self, config: ChannelDestinationConfig, context: DestinationContext) -> None:
        self.config = config
        self._from = context.channel

    @property
    def address(self) -> str:
        return f"inbox:{self.config.inbox}"

    async def open(self) -> None:
        return None

    async def send(self, outbound: Outbound) -> Delivery:
        deliver = _INBOXES.get(self.config.inbox)
        if deliver is None:
            return Retry(f"no started channel has inbox {self.config.inbox}")
        try:
            receipt = await deliver(outbound.content, SourceMeta(
                "channel", f"channel:{self._from}", len(outbound.content)))
        except Exception as exc:  # its bug is a failed attempt here, never a crash
            return Retry(f"the receiving channel failed ({type(exc).__name__})")
        if not receipt.message_id:
            return Retry("the receiving channel could not store the message")
        receipt.replied()
        if receipt.status is MessageStatus.REJECTED:
            return Fail("the receiving channel rejected the message", code=receipt.status)
        return Sent(receipt.status.value)

    async def healthcheck(self) -> str | None:
        return None if self.config.inbox in _INBOXES else "receiving channel not started"

    async def close(self) -> None:
        return None
