"""A message of megabytes (an ORU with an embedded report, an ADT with thousands of
repetitions) is parsed and mapped off the event loop: other senders keep getting their
acknowledgements meanwhile, and the large one is still taken whole."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable

from engine.connectors.mllp import MllpClient
from engine.formats.hl7v2 import Hl7Message
from engine.store.search import MessageQuery
from tests.harness import adt, free_port, written

ALIASES = 150_000  # PID-5 repetitions: about 3 MB, seconds of parsing and mapping here


def _large_adt() -> bytes:
    names = "~".join(f"ALIAS{i}^PAT" for i in range(ALIASES))
    return adt("BIG1", "MRNBIG").replace(b"TESTPATIENT^ALEX^J", f"TESTPATIENT^ALEX^J~{names}"
                                          .encode(), 1)


async def _start(harness, port: int, out):
    return await harness.start({"adt": f"""
        source: {{type: mllp, port: {port}, max_message_size: 10MiB}}
        mapping: hl7v2-adt-to-fhir@3
        destinations: [{{name: files, type: file, directory: "{out}"}}]
        """})


async def _small_ones_answered_during(port: int, large: Awaitable, first: int = 0) -> None:
    """Five small ADTs are acknowledged AA while `large` is still under way."""
    small = MllpClient("127.0.0.1", port)
    await small.connect(5)
    try:
        work = asyncio.ensure_future(large)
        await asyncio.sleep(0.2)  # the large message is being read
        answered = [Hl7Message.parse((await small.exchange(adt(f"S{i}", f"MRN{i}"), 30))
                                     .decode()).value("MSA-1") for i in range(first, first + 5)]
        assert answered == ["AA"] * 5
        assert not work.done(), "the small messages waited for the large one"
        await work
    finally:
        await small.close()


async def test_other_senders_are_answered_while_a_large_message_is_read(harness, tmp_path):
    port, out = free_port(), tmp_path / "out"
    await _start(harness, port, out)
    big = MllpClient("127.0.0.1", port, max_reply=1 << 20)
    await big.connect(5)
    try:
        async def large() -> None:
            ack = await big.exchange(_large_adt(), 120)
            assert Hl7Message.parse(ack.decode()).value("MSA-1") == "AA"
        await _small_ones_answered_during(port, large())
    finally:
        await big.close()
    await harness.settle(lambda: len(written(out)) == 6, timeout=60)
    bundles = [json.loads(p.read_bytes()) for p in written(out)]
    largest = max(bundles, key=lambda b: len(json.dumps(b)))
    [patient] = [e["resource"] for e in largest["entry"]
                 if e["resource"]["resourceType"] == "Patient"]
    assert len(patient["name"]) == ALIASES + 1


async def test_other_senders_are_answered_while_a_large_message_is_reprocessed(
        harness, tmp_path):
    """An analyst reprocessing the large message (a new mapping version) does not hold
    the other senders' acknowledgements either."""
    port, out = free_port(), tmp_path / "out"
    engine = await _start(harness, port, out)
    big = MllpClient("127.0.0.1", port, max_reply=1 << 20)
    await big.connect(5)
    try:
        await big.exchange(_large_adt(), 120)
    finally:
        await big.close()
    [stored] = await engine.ops.search(MessageQuery(channel="adt", limit=5))

    async def reprocess() -> None:
        again = await engine.ops.reprocess(stored["id"], "hl7v2-adt-to-fhir@3", "analyst")
        assert again["status"] == "accepted"
    await _small_ones_answered_during(port, reprocess())
    detail = await engine.ops.message(stored["id"])
    assert [h["kind"] for h in detail["hops"]].count("mapped") == 2
