"""A message of megabytes (an ORU with an embedded report, an ADT with thousands of
repetitions) is parsed and mapped off the event loop: other senders keep getting their
acknowledgements meanwhile, and the large one is still taken whole."""

from __future__ import annotations

import asyncio
import json

from engine.connectors.mllp import MllpClient
from engine.formats.hl7v2 import Hl7Message
from tests.harness import adt, free_port, written

ALIASES = 150_000  # PID-5 repetitions: about 3 MB, seconds of parsing and mapping here


def _large_adt() -> bytes:
    names = "~".join(f"ALIAS{i}^PAT" for i in range(ALIASES))
    return adt("BIG1", "MRNBIG").replace(b"TESTPATIENT^ALEX^J", f"TESTPATIENT^ALEX^J~{names}"
                                          .encode(), 1)


async def test_other_senders_are_answered_while_a_large_message_is_read(harness, tmp_path):
    port, out = free_port(), tmp_path / "out"
    await harness.start({"adt": f"""
        source: {{type: mllp, port: {port}, max_message_size: 10MiB}}
        mapping: hl7v2-adt-to-fhir@3
        destinations: [{{name: files, type: file, directory: "{out}"}}]
        """})
    big, small = MllpClient("127.0.0.1", port, max_reply=1 << 20), \
        MllpClient("127.0.0.1", port)
    await big.connect(5)
    await small.connect(5)
    try:
        large = asyncio.ensure_future(big.exchange(_large_adt(), 120))
        await asyncio.sleep(0.2)  # the large frame is in and being read
        answered = [Hl7Message.parse((await small.exchange(adt(f"S{i}", f"MRN{i}"), 30))
                                     .decode()).value("MSA-1") for i in range(5)]
        assert answered == ["AA"] * 5
        assert not large.done(), "the small messages waited for the large one"
        assert Hl7Message.parse((await large).decode()).value("MSA-1") == "AA"
    finally:
        await big.close()
        await small.close()
    await harness.settle(lambda: len(written(out)) == 6, timeout=60)
    bundles = [json.loads(p.read_bytes()) for p in written(out)]
    largest = max(bundles, key=lambda b: len(json.dumps(b)))
    [patient] = [e["resource"] for e in largest["entry"]
                 if e["resource"]["resourceType"] == "Patient"]
    assert len(patient["name"]) == ALIASES + 1
