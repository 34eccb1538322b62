"""SIGTERM is how systemd, Docker and Kubernetes stop the engine for every deploy: it
must stop taking messages, answer the ones it has, exit 0 promptly, and lose nothing it
acknowledged."""

from __future__ import annotations

import asyncio
import signal
import time

from tests.e2e.support import (
    CountingFhirServer,
    Daemon,
    Ledger,
    ack_code,
    adt_batch,
    eventually,
    exchange_one,
    mrns_in,
    mrns_in_files,
    port_accepts,
    send_all,
)
from tests.fhir_server import Answer


async def test_sigterm_drains_and_exits_cleanly(daemon: Daemon,
                                                fhir: CountingFhirServer) -> None:
    """SIGTERM while four senders are busy and the FHIR receiver is slow (so a backlog is
    queued): exit 0 within seconds, logs say so, the port is closed, and every AA'd
    message is delivered either before the exit or after the next start."""
    fhir.default = Answer(delay=0.05)
    daemon.deliver_to(fhir.url)
    await daemon.start()
    ledger = Ledger()
    senders = [asyncio.create_task(send_all(daemon.mllp_port, adt_batch(f"T{c}", 2000),
                                            ledger, reconnect=False, pause=0.002))
               for c in range(4)]
    await eventually(lambda: len(ledger.acked) >= 100 and fhir.in_flight > 0, timeout=20,
                     message="busy senders and a delivery in flight")
    assert not any(s.done() for s in senders), "a sender stopped before SIGTERM"

    exit_code = await daemon.stop(timeout=10)  # fails the test if it takes longer
    await asyncio.wait_for(asyncio.gather(*senders), 10)

    assert exit_code == 0, daemon.logs()[-3000:]
    logs = daemon.logs()
    assert "stopping: no new connections" in logs
    assert logs.rstrip().endswith("stopped cleanly"), logs[-2000:]
    assert "Traceback" not in logs
    assert not port_accepts(daemon.mllp_port), "the MLLP port still accepts after exit"
    assert not ledger.other, f"answers other than AA: {ledger.other}"

    acked = ledger.acked_mrns
    before_restart = mrns_in(fhir.bodies())
    assert acked - before_restart, "nothing was left queued at SIGTERM; the test is too easy"

    fhir.default = Answer()
    await daemon.start()
    await eventually(lambda: acked <= mrns_in(fhir.bodies())
                     and acked <= mrns_in_files(daemon.output_files()),
                     timeout=30, interval=0.2,
                     message="the acknowledged backlog delivered after the restart")
    assert await daemon.stop() == 0


async def test_sigterm_with_a_hung_receiver_exits_within_seconds(
        daemon: Daemon, fhir: CountingFhirServer) -> None:
    """A receiver that accepted the connection but never answers must not hold a deploy
    hostage: the unconfirmed send is redelivered after the restart anyway (at-least-once),
    so SIGTERM should give it a short grace, not the destination's whole 30s timeout,
    which is also Kubernetes' default grace period before it SIGKILLs the pod."""
    fhir.default = Answer(delay=120)
    daemon.deliver_to(fhir.url)
    await daemon.start()
    msg = adt_batch("H", 1)[0]
    assert ack_code(await exchange_one(daemon.mllp_port, msg.payload())) == "AA"
    await eventually(lambda: fhir.in_flight > 0, timeout=10, message="a hung delivery")

    began = time.monotonic()
    daemon.signal(signal.SIGTERM)
    try:
        exit_code = await daemon.wait_exit(timeout=10)
    finally:
        waited = time.monotonic() - began
        daemon.kill_leftover()
    assert exit_code == 0
    assert waited < 10

    fhir.default = Answer()
    await daemon.start()
    await fhir.wait_for(1, timeout=20)
    assert msg.mrn in mrns_in(fhir.bodies())
    assert await daemon.stop() == 0
