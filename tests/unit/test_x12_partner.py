"""X12 trading partners through a real channel (engine.pipeline.x12_partner): what a
channel with an `x12:` block sends goes out under our envelope with the partner's next
persisted control number (passed through or mapped), and the partner's 999 or TA1,
fed into an X12 channel, marks what we sent accepted or rejected, with an audit event;
an acknowledgement for something we never sent is stored and flagged."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa

from engine.channel import Channel
from engine.config.schema import ChannelConfig
from engine.config.types import dec_hook
from engine.events import Kind
from engine.formats.hl7v2 import Hl7v2Codec
from engine.formats.x12 import X12Codec
from engine.formats.x12.build import interchange
from engine.formats.x12.interchange import read_interchanges
from engine.mapping import Mapping
from engine.message import MessageStatus
from engine.pipeline.x12_partner import for_channel
from engine.store import control_numbers, x12_sent
from engine.store.messages import MessageStore
from engine.store.schema import outputs, queue
from engine.store.schema import x12_sent as sent_table
from tests.unit.test_channel import Env, adt, meta

WHEN = datetime(2026, 2, 2, 8, 30, tzinfo=UTC)
PARTNER_BLOCK = {"sender": "ZZ:CONDUITHOSP", "receiver": "ZZ:PAYERX",
                 "application_sender": "HOSPBILL", "usage": "T", "ack_requested": True}


def claim(account: str, member: str) -> list[list[Any]]:
    """An 837P body for a fictional patient."""
    return [
        ["BHT", "0019", "00", f"B{account}", "20260202", "0830", "CH"],
        ["NM1", "41", "2", "LAKESIDE CLINIC", "", "", "", "", "46", "SUB77"],
        ["NM1", "40", "2", "PAYER X", "", "", "", "", "46", "PAYERX"],
        ["HL", "1", "", "20", "1"],
        ["NM1", "85", "2", "LAKESIDE CLINIC", "", "", "", "", "XX", "1234567893"],
        ["HL", "2", "1", "22", "0"], ["SBR", "P", "18", "", "", "", "", "", "", "CI"],
        ["NM1", "IL", "1", "FAIRWEATHER", "OTTO", "", "", "", "MI", member],
        ["CLM", account, "180", "", "", ("11", "B", "1"), "Y", "A", "Y", "Y"],
        ["HI", [("ABK", "M545")]], ["LX", "1"], ["SV1", ("HC", "97110"), "180", "UN", "1"],
        ["DTP", "472", "D8", "20260130"],
    ]


def submitted(account: str = "ACCT1", member: str = "MBR901", style: str = "*",
              control: int | None = None) -> bytes:
    """An 837P as our billing system hands it over: its own ids and control number."""
    text = interchange([("837", "005010X222A1", claim(account, member))],
                       sender=("ZZ", "BILLINGSYS"), receiver=("ZZ", "CONDUIT"),
                       control_number=control or 100 + sum(map(ord, account)) % 800, when=WHEN,
                       newline=True)
    return (text.replace("*", style) if style != "*" else text).encode()


def nine_nine_nine(group: str, sets: list[list[list[str]]], ak9: list[str],
                   sender: str = "PAYERX", control: int = 501) -> bytes:
    """The partner's 999 for our group `group`: each set's AK2..IK5 segments."""
    body = [["AK1", "HC", group, "005010X222A1"], *(s for one in sets for s in one),
            ["AK9", *ak9]]
    return interchange([("999", "005010X231A1", body)], sender=("ZZ", sender),
                       receiver=("ZZ", "CONDUITHOSP"), control_number=control,
                       when=WHEN).encode()


def ta1(interchange_control: str, code: str, note: str) -> bytes:
    """A TA1-only interchange in the | ^ > ~ style with line breaks."""
    return (f"ISA|00|          |00|          |ZZ|PAYERX         |ZZ|CONDUITHOSP    |"
            f"260202|0831|^|00501|000000902|0|T|>~\n"
            f"TA1|{interchange_control}|260202|0830|{code}|{note}~\nIEA|0|000000902~\n"
            ).encode()


class PartnerEnv(Env):
    def partner_channel(self, name: str, *, mapping: Mapping | None = None,
                        codec: Any = None, **config: Any) -> Channel:
        cfg = msgspec.convert({"name": name, "source": {"type": "channel", "inbox": name},
                               "destinations": [{"name": "ehr", "type": "file",
                                                 "directory": "/tmp/unused"}],
                               **config}, ChannelConfig, dec_hook=dec_hook)
        return Channel(cfg, codec=codec or X12Codec(), mapping=mapping, source=self.source,
                       workers=[self.worker], store=self.store, queue=self.queue,
                       writer=self.writer, vault=self.vault,
                       partner=for_channel(name, cfg, self.db))

    def claims(self, **config: Any) -> Channel:
        return self.partner_channel("claims", format="x12", x12=PARTNER_BLOCK, **config)

    def acks(self) -> Channel:
        return self.partner_channel("acks", format="x12")

    def sent_output(self, message_id: str) -> str:
        [(_, content_type, content)] = MessageStore(self.db, self.vault).open_outputs(
            message_id)
        assert content_type == "application/edi-x12"
        return content.decode()

    def ledger(self) -> list[Any]:
        with self.db.connect() as conn:
            return conn.execute(sa.select(sent_table).order_by(sent_table.c.id)).all()


@pytest.fixture
async def env(tmp_path):
    e = PartnerEnv(tmp_path)
    e.writer.start()
    yield e
    await e.writer.close()
    e.db.dispose()


async def take_on(channel: Channel, raw: bytes) -> str:
    receipt = await channel.deliver(raw, meta(raw, "channel"))
    assert receipt.status is MessageStatus.ACCEPTED, receipt.problems
    return receipt.message_id


async def test_a_passed_through_837_goes_out_under_our_envelope_and_next_number(env):
    claims = env.claims()
    first = await take_on(claims, submitted("ACCT1", "MBR901"))
    second = await take_on(claims, submitted("ACCT2", "MBR902", style="|"))
    out = env.sent_output(first)
    (ic,), notes = read_interchanges(out)
    assert notes == []
    assert [ic.isa.element(n).strip() for n in (5, 6, 7, 8, 13, 14, 15)] == [
        "ZZ", "CONDUITHOSP", "ZZ", "PAYERX", "000000001", "1", "T"]
    gs = ic.groups[0].gs
    assert [gs.element(n) for n in (1, 2, 3, 6, 8)] == [
        "HC", "HOSPBILL", "PAYERX", "1", "005010X222A1"]
    parsed = X12Codec().parse(out.encode())
    assert parsed.control_id == "000000001-1-0001"
    assert parsed.patient_id == "MBR901"  # the claim itself is untouched
    assert env.sent_output(second).startswith("ISA|")  # the sender's style kept
    assert X12Codec().parse(env.sent_output(second).encode()).control_id == \
        "000000002-2-0001"
    # the destination is sent the re-enveloped output, not the message as received
    with env.db.connect() as conn:
        queued = conn.execute(sa.select(queue.c.message_id, queue.c.output_id)).all()
        made = dict(conn.execute(sa.select(outputs.c.message_id, outputs.c.id)).all())
    assert sorted(queued) == sorted((m, made[m]) for m in (first, second))
    assert [(r.partner, r.interchange, r.group_control, r.set_control, r.message_id,
             r.channel, r.state) for r in env.ledger()] == [
        ("ZZ:PAYERX", "000000001", "1", "0001", first, "claims", "sent"),
        ("ZZ:PAYERX", "000000002", "2", "0001", second, "claims", "sent")]


async def test_the_sequence_continues_after_a_restart_and_a_filtered_claim_leaves_a_gap(
        tmp_path):
    for expected in (1, 2):
        env = PartnerEnv(tmp_path)  # the same database, a new engine each time
        env.writer.start()
        try:
            mid = await take_on(env.claims(), submitted(f"ACCT{expected}"))
            assert X12Codec().parse(env.sent_output(mid).encode()).control_id.startswith(
                f"{expected:09d}-")
        finally:
            await env.writer.close()
            env.db.dispose()
    env = PartnerEnv(tmp_path)
    env.writer.start()
    try:
        claims = env.claims(filter=[{"field": "CLM01", "equals": "KEEP"}])
        dropped = submitted("DROP")
        receipt = await claims.deliver(dropped, meta(dropped, "channel"))
        assert receipt.status is MessageStatus.FILTERED
        kept = await take_on(claims, submitted("KEEP"))
        assert X12Codec().parse(env.sent_output(kept).encode()).control_id == \
            "000000004-4-0001"  # 3 went to the filtered claim: a gap, never a repeat
        assert control_numbers.last(env.db, "ZZ:PAYERX") == 4
    finally:
        await env.writer.close()
        env.db.dispose()


def _adt_to_837(body: Any) -> str:
    member = body.value("PID-3.1")
    return interchange([("837", "005010X222A1", claim("V" + member[-4:], member))],
                       sender=("ZZ", "MAPPER"), receiver=("ZZ", "ANY"), control_number=1,
                       when=WHEN)


ADT_TO_837 = Mapping("adt-to-837", 1, "hl7v2", "application/edi-x12", _adt_to_837)
BROKEN_837 = Mapping("adt-to-837", 2, "hl7v2", "application/edi-x12",
                     lambda body: _adt_to_837(body).replace("SE*15*", "SE*99*"))
ADT_TO_JSON = Mapping("adt-to-json", 1, "hl7v2", "application/fhir+json",
                      lambda body: {"resourceType": "Patient"})


async def test_a_mapping_s_x12_output_is_re_enveloped_for_the_partner(env):
    channel = env.partner_channel("hl7-claims", mapping=ADT_TO_837, codec=Hl7v2Codec(),
                                  x12=PARTNER_BLOCK)
    mid = await take_on(channel, adt("MSG1"))
    parsed = X12Codec().parse(env.sent_output(mid).encode())
    assert parsed.sender == "CONDUITHOSP^HOSPBILL" and parsed.receiver == "PAYERX^PAYERX"
    assert parsed.control_id == "000000001-1-0001"
    assert parsed.patient_id == "MSG1-MRN"
    assert [r.state for r in env.ledger()] == ["sent"]


async def test_output_that_is_not_sound_x12_is_an_error_not_a_send(env):
    channel = env.partner_channel("hl7-claims", mapping=BROKEN_837, codec=Hl7v2Codec(),
                                  x12=PARTNER_BLOCK)
    receipt = await channel.deliver(adt("MSG2"), meta(adt("MSG2"), "channel"))
    assert receipt.status is MessageStatus.ERROR
    assert env.ledger() == [] and env.queued() == 0
    errored = next(e for e in env.events if e.kind is Kind.ERRORED)
    assert "cannot be sent to ZZ:PAYERX" in errored.detail["reason"]
    assert "MSG2" not in json.dumps(errored.detail)


TWO_GROUPS = Mapping("adt-to-837", 3, "hl7v2", "application/edi-x12", lambda body: interchange(
    [("837", "005010X222A1", claim("A1", "M1")), ("276", "005010X212", [["BHT", "0010"]])],
    sender=("ZZ", "MAPPER"), receiver=("ZZ", "ANY"), when=WHEN))


async def test_output_of_several_functional_groups_is_refused_not_misnumbered(env):
    channel = env.partner_channel("hl7-claims", mapping=TWO_GROUPS, codec=Hl7v2Codec(),
                                  x12=PARTNER_BLOCK)
    receipt = await channel.deliver(adt("MSG4"), meta(adt("MSG4"), "channel"))
    assert receipt.status is MessageStatus.ERROR
    assert env.ledger() == [] and env.queued() == 0
    assert "several functional groups" in next(
        e for e in env.events if e.kind is Kind.ERRORED).detail["reason"]


async def test_a_channel_whose_mapping_emits_no_x12_takes_no_number(env):
    channel = env.partner_channel("hl7-fhir", mapping=ADT_TO_JSON, codec=Hl7v2Codec(),
                                  x12=PARTNER_BLOCK)
    await take_on(channel, adt("MSG3"))
    assert control_numbers.last(env.db, "ZZ:PAYERX") is None and env.ledger() == []


async def _two_claims_sent(env: PartnerEnv) -> tuple[str, str]:
    claims = env.claims()
    return (await take_on(claims, submitted("ACCT1", "MBR901")),
            await take_on(claims, submitted("ACCT2", "MBR902")))


async def test_a_999_accepting_and_one_rejecting_mark_what_we_sent(env):
    first, second = await _two_claims_sent(env)
    acks = env.acks()
    accepted = nine_nine_nine("1", [[["AK2", "837", "0001", "005010X222A1"], ["IK5", "A"]]],
                              ["A", "1", "1", "1"])
    rejected = nine_nine_nine("2", [[
        ["AK2", "837", "0001", "005010X222A1"], ["IK3", "NM1", "8", "2010BA", "8"],
        ["IK4", ("9",), "67", "7", "MBR902"], ["IK3", "CLM", "9", "", "8"],
        ["IK5", "R", "5"]]], ["R", "1", "1", "0"], control=502)
    ack_a = await take_on(acks, accepted)
    ack_r = await take_on(acks, rejected)
    states = {r.message_id: (r.state, json.loads(r.detail)) for r in env.ledger()}
    assert states[first][0] == "accepted"
    assert states[first][1] == {"code": "A", "errors": [], "notes": [], "ack": ack_a}
    assert states[second][0] == "rejected"
    assert states[second][1]["code"] == "R" and states[second][1]["errors"] == ["5"]
    assert states[second][1]["notes"] == ["IK3 NM1 8 8", "IK4 NM109 7", "IK3 CLM 9 8"]
    assert "MBR902" not in json.dumps(states[second][1])  # IK404 (the bad value) never read
    on_sent = [e for e in env.events if e.kind is Kind.PARTNER_ACKNOWLEDGED
               and e.message_id == second]
    assert [(e.channel, e.detail["state"], e.detail["errors"]) for e in on_sent] == [
        ("claims", "rejected", ["5"])]
    on_ack = next(e for e in env.events if e.kind is Kind.PARTNER_ACKNOWLEDGED
                  and e.message_id == ack_r)
    assert on_ack.channel == "acks"
    assert on_ack.detail == {"partner": "ZZ:PAYERX", "type": "999", "matched": 1}
    assert x12_sent.of_message(env.db, second)["state"] == "rejected"
    assert x12_sent.counts(env.db, "claims") == {
        "partner_accepted": 1, "partner_rejected": 1, "awaiting_partner_ack": 0}


async def test_a_group_level_999_and_accepted_with_errors(env):
    first, second = await _two_claims_sent(env)
    acks = env.acks()
    await take_on(acks, nine_nine_nine("1", [], ["A", "1", "1", "1"]))  # AK9 only
    await take_on(acks, nine_nine_nine("2", [[["AK2", "837", "0001"], ["IK3", "DTP", "13",
                                                                       "", "8"],
                                              ["IK5", "E", "5"]]], ["E", "1", "1", "1"],
                                       control=503))
    assert {r.message_id: r.state for r in env.ledger()} == {
        first: "accepted", second: "accepted-with-errors"}
    assert x12_sent.counts(env.db, "claims")["partner_accepted"] == 2


async def test_a_999_in_another_clearinghouse_style_is_read_the_same(env):
    first, _ = await _two_claims_sent(env)
    text = nine_nine_nine("1", [[["AK2", "837", "0001", "005010X222A1"],
                                 ["IK5", "R", "I5"]]], ["R", "1", "1", "0"]).decode()
    piped = text.replace("*", "|").replace("~", "~\r\n").replace("|^|00501", "|{|00501")
    await take_on(env.acks(), piped.encode())
    assert {r.message_id: r.state for r in env.ledger()}[first] == "rejected"


async def test_a_999_for_something_we_never_sent_is_stored_and_flagged(env, caplog):
    first, _ = await _two_claims_sent(env)
    stranger = nine_nine_nine("4711", [[["AK2", "837", "0009"], ["IK5", "A"]]],
                              ["A", "1", "1", "1"])
    from_elsewhere = nine_nine_nine("1", [[["AK2", "837", "0001"], ["IK5", "R", "5"]]],
                                    ["R", "1", "1", "0"], sender="OTHERPAYER")
    acks = env.acks()
    unknown_id = await take_on(acks, stranger)
    other_id = await take_on(acks, from_elsewhere)
    assert {r.message_id: r.state for r in env.ledger()}[first] == "sent"  # untouched
    flagged = {e.message_id: e.detail for e in env.events
               if e.kind is Kind.PARTNER_ACKNOWLEDGED}
    assert flagged[unknown_id] == {"partner": "ZZ:PAYERX", "type": "999", "matched": 0,
                                   "unknown": ["4711/0009"]}
    assert flagged[other_id]["unknown"] == ["1/0001"]
    assert "for X12 we did not send: 4711/0009" in caplog.text
    assert env.queued() >= 2  # stored and routed like any message


async def test_a_ta1_refusing_our_interchange_rejects_its_sets(env):
    first, second = await _two_claims_sent(env)
    mid = await take_on(env.acks(), ta1("000000002", "R", "006"))
    assert {r.message_id: r.state for r in env.ledger()} == {first: "sent",
                                                             second: "rejected"}
    assert x12_sent.of_message(env.db, second)["code"] == "TA1 R"
    assert x12_sent.of_message(env.db, second)["errors"] == ["006"]
    assert any(e.kind is Kind.PARTNER_ACKNOWLEDGED and e.message_id == mid
               for e in env.events)
