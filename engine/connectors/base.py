"""The two shapes every connector takes.

A Source binds something (a port, a folder) and calls `deliver(raw, meta)` for each
message; `deliver` returns only after the durable commit, with the Receipt whose reply
the source writes back. A Destination sends one Outbound and answers with a Delivery;
it never sleeps or retries by itself: the queue's RetryPolicy decides.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec

from engine.events import Event
from engine.message import Delivery, Outbound, Parsed, Receipt, SourceMeta

Deliver = Callable[[bytes, SourceMeta], Awaitable[Receipt]]


class ReplyReader(Protocol):
    """What a destination asks the codec: what does this acknowledgement mean?"""

    def read_reply(self, reply: bytes, sent: Outbound) -> Delivery: ...


class ReplyWriter(Protocol):
    """What a source asks the codec when it must answer without the channel (framing
    errors, oversize frames): the standard's rejection for these bytes."""

    def reply(self, raw: bytes, parsed: Parsed | None, outcome: object) -> bytes: ...


class Source(Protocol):
    """A listener may also offer `take_over(other) -> bool`: serve, once started, the
    socket of the source it replaces in a swap (engine.channel_swap), when `other`
    listens at the same address, so the swap refuses no connection."""

    def resources(self) -> list[str]:
        """What this source binds, such as "tcp:127.0.0.1:2575", so validation can catch
        two channels on one port."""
        ...

    async def start(self, deliver: Deliver) -> None:
        """Bind and begin accepting; returns once listening."""
        ...

    async def stop(self) -> None:
        """Stop accepting, let in-flight messages finish and their replies go out."""
        ...

    def describe(self) -> dict[str, object]:
        """Address and connected peers, for the status page; no content."""
        ...


class Destination(Protocol):
    @property
    def address(self) -> str:
        """Where it delivers (URL, host:port, folder), for the audit trail's peer."""
        ...

    async def open(self) -> None: ...

    async def send(self, outbound: Outbound) -> Delivery: ...

    async def healthcheck(self) -> str | None:
        """None when the receiver looks reachable, else why not."""
        ...

    async def close(self) -> None: ...


class DestinationContext(msgspec.Struct, frozen=True):
    """What a destination may know of the channel that owns it."""

    channel: str
    reply_reader: ReplyReader | None = None
    # The file extension of a standard's content type (".hl7"), as its codec names it;
    # None when no codec writes that type. Handed in by the runtime (the registry), so a
    # connector knows no standard and never imports a codec.
    extension_for: Callable[[str], str | None] | None = None


class SourceContext(msgspec.Struct, frozen=True):
    """What a source may use of the engine besides `deliver`: the channel's name, the
    engine's users (to check bearer tokens) and the audit trail (for refusals and for
    requests that carry no message, such as a subscription's heartbeat)."""

    channel: str
    users: Any = None  # engine.security.users.UserStore
    record: Callable[[Event], Awaitable[None]] | None = None
    # the content type of the channel's replies (its codec's), for a source whose
    # transport labels what it sends back (the http source); handed in by the runtime
    content_type: str = "application/octet-stream"
    # Several worker processes of one engine listen on the same port (SO_REUSEPORT: the
    # kernel spreads connections over them); never otherwise, so that a second engine
    # started by mistake fails to bind instead of quietly taking half the traffic.
    shared_port: bool = False
    # the version each resource id is at (engine.store.fhir_versions.FhirVersions), for
    # a FHIR source, which assigns meta.versionId as a FHIR server does
    versions: Any = None
    # the channel's validation (off, lenient, strict), for what only the source can see
    # (the FHIR source: a JSON key sent twice, which decoding drops)
    validation: str = "off"
