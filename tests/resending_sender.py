"""An MLLP sender that behaves as real HL7 senders do: one message at a time on a kept
connection, and the same message again on a new connection when the connection is
refused or closed, or no acknowledgement comes in time; and a probe counting the
connections a listener refused. What a swap under load is measured with."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from engine.connectors.mllp import MllpClient
from engine.formats.hl7v2 import Hl7Message


class ResendingSender:
    def __init__(self, port: int, prefix: str, make: Callable[[str], bytes],
                 timeout: float = 10.0) -> None:
        self.port, self.prefix, self.make, self.timeout = port, prefix, make, timeout
        self.acked: list[str] = []  # control ids answered AA, in order
        self.refused = 0  # connections refused (the listener was not there)
        self.resent = 0  # messages sent again after a closed connection or a late ACK

    async def run(self, stop: asyncio.Event, pace: float = 0.005) -> None:
        """Send new messages until `stop` is set; the one under way still finishes."""
        client = MllpClient("127.0.0.1", self.port)
        n = 0
        try:
            while not stop.is_set():
                n += 1
                control_id = f"{self.prefix}-{n}"
                payload = self.make(control_id)
                while True:
                    try:
                        if not client.connected:
                            await client.connect(self.timeout)
                        reply = await client.exchange(payload, self.timeout)
                    except ConnectionRefusedError:
                        self.refused += 1
                        await client.close()
                        await asyncio.sleep(0.05)
                        continue
                    except (OSError, ConnectionError, TimeoutError):
                        self.resent += 1
                        await client.close()
                        await asyncio.sleep(0.01)
                        continue
                    code = Hl7Message.parse(reply.decode()).value("MSA-1")
                    if code == "AA":
                        self.acked.append(control_id)
                    break
                await asyncio.sleep(pace)
        finally:
            await client.close()


async def probe(port: int, stop: asyncio.Event) -> int:
    """Connect and leave, every millisecond until `stop`: how many connections were
    refused."""
    refused = 0
    while not stop.is_set():
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
        except OSError:  # refused, or reset by a listener closing with it in its backlog
            refused += 1
        await asyncio.sleep(0.001)
    return refused
