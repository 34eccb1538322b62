"""`conduit send`: HL7v2 files over MLLP, printing each acknowledgement's code."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from engine.cli.common import file_encoding
from engine.errors import ConduitError


def cmd_send(args: argparse.Namespace) -> int:
    from engine.connectors.mllp import MllpClient
    from engine.formats.hl7v2.ack import read_ack
    from engine.formats.hl7v2.codec import decode_text
    from engine.formats.hl7v2.message import Hl7Message
    from engine.formats.hl7v2.split import split_messages

    host, _, port = args.mllp.rpartition(":")
    if not host or not port.isdecimal():
        raise SystemExit(f"--mllp expects HOST:PORT, got {args.mllp!r}")

    async def send_all() -> int:
        client = MllpClient(host, int(port))
        await client.connect(args.timeout)
        failures = 0
        try:
            for name in args.files:
                raw = Path(name).read_bytes()
                for n, message in enumerate(split_messages(decode_text(raw)), start=1):
                    reply = await client.exchange(message.encode(file_encoding(raw)), args.timeout)
                    try:
                        ack = read_ack(Hl7Message.parse(decode_text(reply)))
                    except ConduitError:
                        ack = None
                    code = ack.code if ack else "??"
                    control = ack.control_id if ack else ""
                    print(f"{name}#{n} {control} {code}")
                    failures += code not in ("AA", "CA")
        finally:
            await client.close()
        return 1 if failures else 0

    try:
        return asyncio.run(send_all())
    except (OSError, TimeoutError) as exc:
        print(f"conduit send: {args.mllp}: {exc or 'timed out'}", file=sys.stderr)
        return 2
