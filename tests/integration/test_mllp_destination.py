"""Passing HL7v2 through to a receiving system over MLLP: its ACK decides the outcome."""

from __future__ import annotations

import pytest

from tests.harness import adt, exchange, free_port
from tests.mllp_receiver import MllpReceiver


@pytest.fixture
async def receiver():
    r = await MllpReceiver().start()
    yield r
    await r.stop()


def router(port: int, out_port: int) -> str:
    return f"""
    source: {{type: mllp, port: {port}}}
    retry: {{max_attempts: 5, initial_delay: 50ms, max_delay: 100ms, jitter: 0}}
    destinations:
      - {{name: lis, type: mllp, host: 127.0.0.1, port: {out_port}, timeout: 500ms}}
    """


async def test_ae_is_retried_and_delivered_unchanged(harness, receiver):
    receiver.codes.extend(["AE", "AE"])
    port = free_port()
    engine = await harness.start({"router": router(port, receiver.port)})
    message = adt("R1", "MRN100")
    await exchange(port, [message])
    # "sent" is counted once the receiver's AA is read, a moment after it has the message.
    await harness.settle(lambda: engine.services.stats.count("sent", "router", "lis") == 1)
    assert receiver.received == [message]
    assert engine.services.stats.count("retried", "router", "lis") == 2


async def test_ar_is_dead_lettered_at_once_and_the_queue_moves_on(harness, receiver):
    receiver.codes.append("AR")
    port = free_port()
    engine = await harness.start({"router": router(port, receiver.port)})
    await exchange(port, [adt("R2", "MRN101"), adt("R3", "MRN102")])
    await harness.settle(lambda: len(receiver.received) == 1)
    assert b"R3" in receiver.received[0]
    await harness.settle(lambda: engine.services.stats.count("dead-lettered") == 1)
    assert engine.services.stats.count("retried") == 0


async def test_silent_receiver_times_out_and_is_retried(harness, receiver):
    receiver.silent = True
    port = free_port()
    engine = await harness.start({"router": router(port, receiver.port)})
    await exchange(port, [adt("R4", "MRN103")])
    await harness.settle(lambda: engine.services.stats.count("retried") >= 1)
    receiver.silent = False
    await harness.settle(lambda: len(receiver.received) == 1)


async def test_receiver_down_is_retried_not_dropped(harness):
    down_port = free_port()
    port = free_port()
    engine = await harness.start({"router": router(port, down_port)})
    await exchange(port, [adt("R5", "MRN104")])
    await harness.settle(lambda: engine.services.stats.count("retried") >= 1)
    stats = engine.services.queue.stats()
    assert stats[0].retrying == 1
