"""A channel's `x12:` block: the trading-partner envelope of the X12 it sends.

With the block, whatever X12 the channel sends (a mapping's application/edi-x12 output,
or an X12 message passed through) leaves under a new ISA/GS naming us and the partner,
with the next control number the engine keeps for that partner
(engine.pipeline.x12_partner). Imports nothing of the engine, like the other config
structs.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

# qualifier:id, the ISA05/06 (or ISA07/08) pair: a 2-character qualifier (ZZ mutually
# defined, 01 DUNS, 30 federal tax id ...) and up to 15 characters of id.
PARTY = r"^[A-Z0-9]{2}:[A-Za-z0-9][A-Za-z0-9 .&/()-]{0,14}$"


class X12PartnerConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Who we are and who the partner is in the envelopes the channel sends."""

    sender: Annotated[str, Meta(pattern=PARTY, description=(
        "our ISA05:ISA06, e.g. ZZ:CONDUITHOSP"))]
    receiver: Annotated[str, Meta(pattern=PARTY, description=(
        "the partner's ISA07:ISA08, e.g. ZZ:PAYERX; control numbers are kept per "
        "receiver"))]
    application_sender: Annotated[str, Meta(max_length=15, description=(
        "GS02; default: the ISA06 id"))] = ""
    application_receiver: Annotated[str, Meta(max_length=15, description=(
        "GS03; default: the ISA08 id"))] = ""
    usage: Annotated[Literal["P", "T"], Meta(description=(
        "ISA15: P production, T test"))] = "P"
    ack_requested: Annotated[bool, Meta(description=(
        "ISA14: ask the partner for a TA1"))] = False

    @property
    def sender_pair(self) -> tuple[str, str]:
        qualifier, ident = self.sender.split(":", 1)
        return qualifier, ident

    @property
    def receiver_pair(self) -> tuple[str, str]:
        qualifier, ident = self.receiver.split(":", 1)
        return qualifier, ident
