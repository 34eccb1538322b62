"""A hostile MLLP peer for tests, run as its own process so the attack does not share the
engine's event loop: it holds N sockets from one local address, half of them silent and
half dripping one byte of a never-ending frame at a time, and reopens each socket a
second after the listener closes it. Prints "ready" once every socket was tried. It runs
niced, since a real attacker does not share the engine's CPU.

    python -m tests.mllp_flood PORT --bind 127.0.0.2 --sockets 500 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os

_REOPEN_AFTER = 1.0  # seconds; bounds the connection rate at sockets / second
_DRIP_EVERY = 0.2  # seconds between two bytes of a dripping frame


async def _hold(port: int, bind: str, drip: bool, tried: asyncio.Event | None) -> None:
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                           local_addr=(bind, 0))
        except OSError:
            if tried is not None:
                tried.set()
            await asyncio.sleep(_REOPEN_AFTER)
            continue
        if tried is not None:
            tried.set()
            tried = None
        with contextlib.suppress(OSError):
            if drip:
                writer.write(b"\x0bMSH|^~\\&|")
                while not reader.at_eof():
                    await asyncio.sleep(_DRIP_EVERY)
                    writer.write(b"X")
                    await writer.drain()
            else:
                await reader.read()  # silent until the listener closes it
        writer.close()
        await asyncio.sleep(_REOPEN_AFTER)


async def main(port: int, bind: str, sockets: int, seconds: float) -> None:
    tried = [asyncio.Event() for _ in range(sockets)]
    tasks = [asyncio.create_task(_hold(port, bind, i % 2 == 1, tried[i]))
             for i in range(sockets)]
    for event in tried:
        await event.wait()
    print("ready", flush=True)
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--bind", default="127.0.0.2")
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    os.nice(10)
    asyncio.run(main(args.port, args.bind, args.sockets, args.seconds))
