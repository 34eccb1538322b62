"""A real MLLP receiving system for tests: answers each message with a scripted ACK code."""

from __future__ import annotations

import asyncio
from collections import deque

from engine.connectors.mllp_framing import Framer, wrap
from engine.formats.hl7v2 import Hl7Message


class MllpReceiver:
    def __init__(self) -> None:
        self.codes: deque[str] = deque()  # next answers; AA when empty
        self.received: list[bytes] = []
        self.silent = False  # never answer (for timeouts)
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> MllpReceiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = Framer(10 * 1024 * 1024)
        try:
            while data := await reader.read(65536):
                for frame in framer.feed(data):
                    if self.silent:
                        continue
                    code = self.codes.popleft() if self.codes else "AA"
                    control = Hl7Message.parse(frame.payload.decode()).control_id
                    if code in ("AA", "CA"):
                        self.received.append(frame.payload)
                    ack = f"MSH|^~\\&|RCV|RCV|SND|SND|20240101||ACK|A{control}|P|2.5\r"
                    ack += f"MSA|{code}|{control}\r"
                    if code != "AA":
                        ack += "ERR||PID^1^3|101^Required field missing^HL70357|E\r"
                    writer.write(wrap(ack.encode()))
                    await writer.drain()
        finally:
            writer.close()
