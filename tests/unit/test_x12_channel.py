"""An X12 interchange through a channel (`format: x12`, no mapping yet: passed through):
each transaction set stored and queued, the whole answered with one 999 per group; an
interchange whose envelope lies is refused whole with a TA1."""

from __future__ import annotations

from engine.formats.x12 import X12Codec
from engine.message import MessageStatus
from tests.unit.test_channel import Env, meta
from tests.unit.test_x12_codec import several


def x12_channel(env: Env):
    return env.channel(None, X12Codec(), format="x12",
                       source={"type": "channel", "inbox": "x12-in"})


async def test_an_interchange_is_stored_set_by_set_and_answered_with_999s(channel_env):
    raw = several().encode()
    receipt = await x12_channel(channel_env).deliver(raw, meta(raw, "channel"))
    assert receipt.status is MessageStatus.ACCEPTED
    assert len(receipt.replies) == 1
    reply = receipt.replies[0]
    assert reply.count(b"ST*999*") == 3 and reply.count(b"IK5*A~") == 4
    assert b"AK9*A*2*2*2~" in reply
    assert sorted(r.control_id for r in channel_env.rows() if r.status == "accepted") == [
        "000000101-1-0001", "000000101-1-0002", "000000101-2-0001", "000000102-1-0001"]
    assert channel_env.queued() == 4


async def test_an_interchange_whose_trailer_lies_is_refused_with_a_ta1(channel_env):
    raw = several().replace("IEA*2*000000101", "IEA*2*000000999").encode()
    receipt = await x12_channel(channel_env).deliver(raw, meta(raw, "channel"))
    assert receipt.status is MessageStatus.REJECTED
    assert b"TA1*000000101*240101*1200*R*001~" in receipt.replies[0]
    assert channel_env.queued() == 0


async def test_a_resent_interchange_is_answered_again_and_not_taken_twice(channel_env):
    raw = several().encode()
    channel = x12_channel(channel_env)
    first = await channel.deliver(raw, meta(raw, "channel"))
    again = await channel.deliver(raw, meta(raw, "channel"))
    assert first.status is MessageStatus.ACCEPTED
    assert again.status is MessageStatus.DUPLICATE
    assert again.replies[0].count(b"IK5*A~") == 4  # the sender hears the same
    assert channel_env.queued() == 4
    assert sorted(r.status for r in channel_env.rows()).count("duplicate") == 4
