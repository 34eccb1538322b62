"""The ingest ceiling: a bare MLLP server that answers every frame with a fixed ACK.

It does nothing an engine must do (no parsing, no storage), so the load generator's rate
against it is the most any engine could reach on this machine with this generator; the
bench reports the engine as a ratio of it. Run by bench_engine.py in its own process, so
server and generator each get a core, as they do when the engine is measured.
Prints `PORT <n>` on stdout once listening; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import cast

START, END = b"\x0b", b"\x1c\x0d"
ACK = (START + b"MSH|^~\\&|CEILING|BENCH|BENCH|BENCH|20240101000000||ACK^A01|1|P|2.5\r"
       b"MSA|AA|1\r" + END)


class AckServer(asyncio.Protocol):
    """Counts frame ends and writes one ACK per complete frame, nothing more."""

    def __init__(self) -> None:
        self._tail = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        # Keep one byte of the previous chunk so an end marker split across reads counts.
        joined = self._tail + data
        frames = joined.count(END)
        self._tail = joined[-1:]
        if frames and self._transport is not None:
            self._transport.write(ACK * frames)


async def serve(port: int) -> None:
    """Listen until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(AckServer, "127.0.0.1", port)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio",
                        help="asyncio is the ceiling the issue defines; uvloop the faster one")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(serve(args.port))
    else:
        asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
