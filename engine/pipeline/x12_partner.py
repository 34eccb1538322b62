"""X12 trading partners, a channel step both ways.

Out: a channel with an `x12:` block sends its X12 (a mapping's application/edi-x12
output, or an X12 message passed through) under a new ISA/GS naming us and the
partner, numbered with the next control number the store keeps for the partner
(engine.store.control_numbers), and records each set sent in x12_sent, in the same unit
of work as the output. Routing runs synchronously inside the unit of work, so the
number is taken before it (`before_routing`, on a thread) and handed to it: a message
then filtered, skipped or failed leaves a gap in the partner's numbers, which is
harmless (partners refuse repeated numbers, not missing ones). Whatever the channel
sends as received (`send: received`) goes out as it came.

In: when an X12 channel receives a 999/997 or a TA1, the sets it speaks of are found in
x12_sent by the partner's id (the acknowledgement's ISA06 is our ISA08) with AK102 (our
GS06) and AK202 (our ST02), or TA101 (our ISA13), and marked accepted, accepted with
errors or rejected, with the codes; one partner-acknowledged event on each set's message
and one on the acknowledgement itself, which also names what it matched none of (an
acknowledgement for something we never sent is stored like any message, and flagged).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import sqlalchemy as sa

from engine.config.x12 import X12PartnerConfig
from engine.errors import MappingError, ParseError, StoreError
from engine.events import Event, Kind
from engine.formats.x12 import partner_ack
from engine.formats.x12.build import reenvelope
from engine.formats.x12.interchange import read_interchanges
from engine.formats.x12.message import X12Message
from engine.formats.x12.tokens import decode
from engine.mapping_base import Mapping
from engine.message import Parsed
from engine.store import control_numbers, x12_sent
from engine.store.writer import UnitOfWork

log = logging.getLogger("conduit.x12")

X12 = "application/edi-x12"
ACKNOWLEDGEMENTS = ("999", "997", "TA1")
ENVELOPE_REF = "x12-envelope"  # the "mapping" of a passed-through message re-enveloped
_MAX_NOTES = 20


class X12Partner:
    def __init__(self, channel: str, config: X12PartnerConfig | None, db: sa.Engine
                 ) -> None:
        self.channel = channel
        self.config = config
        self._db = db

    async def before_routing(self, uow: UnitOfWork, parsed: Parsed, hop: dict[str, Any],
                             mapping: Mapping | None) -> int | None:
        """For an acknowledgement from a partner: record what it says. For a message
        that will go out as X12 under our envelope: the control number it gets."""
        if parsed.standard == "x12" and parsed.message_type in ACKNOWLEDGEMENTS:
            await self._acknowledged(uow, parsed, hop)
            return None
        if self.config is None:
            return None
        emits = mapping.emits if mapping is not None else (
            X12 if parsed.standard == "x12" else None)
        if emits != X12:
            return None
        try:
            return await asyncio.to_thread(control_numbers.take, self._db,
                                           self.config.receiver)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"cannot take an X12 control number for "
                             f"{self.config.receiver}: {type(exc).__name__}") from exc

    # -- out -----------------------------------------------------------------------------

    def received(self, parsed: Parsed) -> bytes:
        """The X12 text of a parsed set, passed through (its original ISA and GS)."""
        body = parsed.body
        assert isinstance(body, X12Message)
        d = body.isa.delimiters
        e = d.element
        parts = [body.isa.text(), body.gs.text(), *(s.text() for s in body.segments),
                 f"GE{e}1{e}{body.gs.element(6)}", f"IEA{e}1{e}{body.isa.element(13)}"]
        return (d.segment.join(parts) + d.segment).encode()

    def seal(self, uow: UnitOfWork, hop: dict[str, Any], content: bytes, control: int
             ) -> bytes:
        """`content` under our envelope with `control`, each of its sets recorded as
        sent; MappingError when it is not X12 that can be re-enveloped (no value is
        quoted: only positions and codes)."""
        config = self.config
        assert config is not None
        try:
            text = reenvelope(decode(content), sender=config.sender_pair,
                              receiver=config.receiver_pair, control_number=control,
                              usage=config.usage, ack_requested=config.ack_requested,
                              application_sender=config.application_sender,
                              application_receiver=config.application_receiver)
            interchanges, _ = read_interchanges(text)
        except (ValueError, ParseError) as exc:
            raise MappingError(f"X12 output cannot be sent to {config.receiver}: "
                               f"{exc}") from None
        if sum(len(ic.groups) for ic in interchanges) > 1:
            # Each further group would need a GS06 of its own, which the next
            # interchanges would repeat: one control number is taken per message.
            raise MappingError(f"X12 output for {config.receiver} holds several functional "
                               "groups; a partner channel sends one group per message")
        now = time.time()
        for ic in interchanges:
            for group in ic.groups:
                for tset in group.sets:
                    uow.insert(x12_sent.x12_sent, x12_sent.row(
                        partner=config.receiver, interchange=ic.isa.element(13),
                        group_control=group.gs.element(6), set_control=tset.st.element(2),
                        message_id=hop["message_id"], channel=self.channel, now=now))
        return text.encode()

    # -- in ------------------------------------------------------------------------------

    async def _acknowledged(self, uow: UnitOfWork, parsed: Parsed, hop: dict[str, Any]
                            ) -> None:
        body = parsed.body
        if not isinstance(body, X12Message):
            return
        partner_id = body.isa.element(6).strip()
        partner = f"{body.isa.element(5).strip()}:{partner_id}"
        found = partner_ack.read(body.segments)
        groups = sorted({v.group_control for v in (*found.sets, *found.groups)} - {""})
        interchanges = sorted({v.interchange for v in found.interchanges})
        try:
            rows = await asyncio.to_thread(x12_sent.find, self._db, partner_id, groups,
                                           interchanges)
        except sa.exc.SQLAlchemyError:
            log.exception("channel %s: cannot look up what was sent to %s", self.channel,
                          partner)
            rows = []
        now = time.time()
        marked, unknown = self._mark(uow, rows, found, hop["message_id"], now)
        uow.record(Event(kind=Kind.PARTNER_ACKNOWLEDGED, detail={
            "partner": partner, "type": parsed.message_type, "matched": len(marked),
            **({"unknown": unknown[:20]} if unknown else {})}, **hop))
        if unknown:
            log.warning("channel %s: %s from %s for X12 we did not send: %s", self.channel,
                        parsed.message_type, partner, ", ".join(unknown[:20]))

    def _mark(self, uow: UnitOfWork, rows: list[Any], found: partner_ack.PartnerAck,
              ack_id: str, now: float) -> tuple[list[int], list[str]]:
        """Record each verdict on the newest matching row; what matched nothing is
        returned as "group/set" (or "ISA13" for a TA1)."""
        by_set: dict[tuple[str, str], Any] = {}
        by_group: dict[str, list[Any]] = {}
        by_interchange: dict[str, list[Any]] = {}
        for r in rows:  # newest first: keep the newest of each (group, set)
            if (r.group_control, r.set_control) not in by_set:
                by_set[(r.group_control, r.set_control)] = r
                by_group.setdefault(r.group_control, []).append(r)
                by_interchange.setdefault(r.interchange, []).append(r)
        marked: list[int] = []
        unknown: list[str] = []

        def mark(r: Any, state: str, code: str, errors: list[str], notes: list[str]) -> None:
            marked.append(r.id)
            uow.execute(x12_sent.verdict(r.id, state, {
                "code": code, "errors": errors, "notes": notes[:_MAX_NOTES],
                "ack": ack_id}, now))
            uow.record(Event(kind=Kind.PARTNER_ACKNOWLEDGED, channel=r.channel,
                             message_id=r.message_id, detail={
                                 "state": state, "code": code, "errors": errors,
                                 "partner": r.partner, "ack": ack_id}))

        for v in found.sets:
            r = by_set.get((v.group_control, v.set_control))
            if r is None:
                unknown.append(f"{v.group_control}/{v.set_control}")
            elif v.state is not None:
                mark(r, v.state, v.code, v.errors, v.notes)
        answered = {(v.group_control, v.set_control) for v in found.sets}
        for g in found.groups:
            sent = by_group.get(g.group_control)
            if not sent:
                if not any(v.group_control == g.group_control for v in found.sets):
                    unknown.append(f"{g.group_control}/*")
                continue
            if g.state is None:  # P: only the sets' own IK5s say anything
                continue
            for r in sent:
                if (r.group_control, r.set_control) not in answered and r.id not in marked:
                    mark(r, g.state, g.code, g.errors, [])
        for t in found.interchanges:
            sent = by_interchange.get(t.interchange)
            if not sent:
                unknown.append(t.interchange)
            elif t.state == "rejected":  # TA1 A/E: the 999 will say more
                for r in sent:
                    if r.id not in marked:
                        mark(r, "rejected", f"TA1 {t.code}", [t.note] if t.note else [], [])
        return marked, unknown


def for_channel(name: str, config: Any, db: sa.Engine) -> X12Partner | None:
    """The partner step of a channel that sends X12 to a partner (`x12:`) or reads X12
    (and so may receive partners' acknowledgements); None for any other."""
    block = getattr(config, "x12", None)
    if block is None and getattr(config, "format", None) != "x12":
        return None
    return X12Partner(name, block, db)
