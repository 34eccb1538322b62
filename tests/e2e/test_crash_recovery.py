"""The promise a sending system relies on: once the engine has answered AA, the message
is the engine's to deliver, even if the process is SIGKILLed (power cut, OOM killer)
while it is receiving or while it is delivering."""

from __future__ import annotations

import asyncio
import contextlib
import re

from tests.e2e.support import (
    Adt,
    CountingFhirServer,
    Daemon,
    Ledger,
    adt_batch,
    eventually,
    mrns_in,
    mrns_in_files,
    send_all,
)
from tests.fhir_server import Answer

CONNECTIONS = 4
PER_CONNECTION = 80


async def test_sigkill_loses_no_acknowledged_message(daemon: Daemon,
                                                     fhir: CountingFhirServer) -> None:
    """Four senders keep sending while the engine is killed five times: twice while
    receiving, twice while deliveries to a slow FHIR server are in flight, once while the
    backlog is being re-delivered after a restart. Every AA'd message must reach the FHIR
    server and the files destination; the audit chain must still verify."""
    daemon.deliver_to(fhir.url)
    await daemon.start()
    ledger = Ledger()
    batches: list[list[Adt]] = [adt_batch(f"K{c}", PER_CONNECTION, event="mixed")
                                for c in range(CONNECTIONS)]
    senders = [asyncio.create_task(send_all(daemon.mllp_port, batch, ledger, pause=0.002))
               for batch in batches]

    def sending() -> bool:
        return not all(s.done() for s in senders)

    async def crash_and_restart() -> None:
        await daemon.crash()
        # A request the dead engine left at the receiver still counts as in flight until
        # it is answered; wait, so `in_flight` below means the new process is sending.
        await eventually(lambda: fhir.in_flight == 0, timeout=5, message="quiet receiver")
        await daemon.start()

    # 1, 2. Killed twice while messages are coming in on every connection.
    for acks in (40, 100):
        await eventually(lambda n=acks: len(ledger.acked) >= n, timeout=20,
                         message=f"{acks} ACKs")
        assert sending(), "the senders finished before a kill; send more messages"
        await crash_and_restart()

    # 3, 4. Killed while a delivery to a slow receiver is in flight, senders still busy.
    fhir.default = Answer(delay=0.3)
    for acks in (160, 220):
        await eventually(
            lambda n=acks: fhir.in_flight > 0 and (len(ledger.acked) >= n or not sending()),
            timeout=20, message="a slow delivery in flight")
        await crash_and_restart()

    # 5. Killed right after a restart, while the backlog left by the crashes is delivered.
    await eventually(lambda: fhir.in_flight > 0, timeout=10, message="re-delivery in flight")
    fhir.default = Answer()  # last start: a healthy receiver, so the backlog drains
    await crash_and_restart()
    await asyncio.wait_for(asyncio.gather(*senders), 60)
    assert len(ledger.acked) >= CONNECTIONS * PER_CONNECTION // 2, (
        f"only {len(ledger.acked)} ACKs; the run proves little")
    assert not ledger.other, f"answers other than AA: {ledger.other}"

    acked = ledger.acked_mrns

    def missing_at_fhir() -> set[str]:
        return acked - mrns_in(fhir.bodies())

    def missing_in_files() -> set[str]:
        return acked - mrns_in_files(daemon.output_files())

    with contextlib.suppress(AssertionError):  # the asserts below say what is missing
        await eventually(lambda: not missing_at_fhir() and not missing_in_files(),
                         timeout=40, interval=0.2, message="every acknowledged message")
    assert missing_at_fhir() == set(), "acknowledged but never delivered to the FHIR server"
    assert missing_in_files() == set(), "acknowledged but never written to data/out"
    assert await daemon.stop() == 0

    verify = await daemon.cli("audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    checked = re.fullmatch(r"ok (\d+) events\n", verify.stdout)
    assert checked, verify.stdout
    assert int(checked[1]) > len(ledger.acked)
