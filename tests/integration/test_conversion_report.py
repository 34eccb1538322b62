"""What a lenient mapping could not read and what it left behind, as an operator and an
analyst meet it: the message is still mapped and delivered, its API detail lists the
located warnings and the fields left behind, the channel counts the fields dropped
(also after a restart), and a strict channel refuses the same message as before."""

from __future__ import annotations

import asyncio
import json

from engine.store.search import MessageQuery
from tests.harness import EngineHarness, adt, exchange, free_port, written

# An ADT whose birth date does not exist, with a Z segment nobody maps
ODD_ADT = (
    b"MSH|^~\\&|EPIC|NORTHWING|CONDUIT|NORTHWING|20240301101500-0500||ADT^A01^ADT_A01|"
    b"ODD-1|P|2.5.1\r"
    b"EVN|A01|20240301101500-0500\r"
    b"PID|1||MRN77^^^NORTHWING^MR||TESTPATIENT^ALEX||19700230|F\r"
    b"PV1|1|I|4W^401^A^NORTHWING||||1234^WELBY^MARCUS||||||||||||V77\r"
    b"ZPV|LOCAL-FLAG|42\r"
)


def channel(port: int, out, validation: str = "lenient") -> str:
    return f"""
        source: {{type: mllp, port: {port}}}
        validation: {validation}
        mapping: hl7v2-adt-to-fhir@3
        destinations: [{{name: files, type: file, directory: "{out}"}}]
        """


async def test_an_odd_field_is_a_warning_the_message_is_delivered_and_reported(tmp_path):
    port, out = free_port(), tmp_path / "out"
    harness = EngineHarness(tmp_path)
    engine = await harness.start({"adt": channel(port, out)})
    try:
        [ack] = await exchange(port, [ODD_ADT])
        assert ack.value("MSA-1") == "AA"
        await harness.settle(lambda: len(written(out)) == 1)
        bundle = json.loads(written(out)[0].read_bytes())
        patient = next(e["resource"] for e in bundle["entry"]
                       if e["resource"]["resourceType"] == "Patient")
        assert "birthDate" not in patient and patient["gender"] == "female"
        [summary] = await engine.ops.search(MessageQuery(channel="adt", limit=5))
        detail = await engine.ops.message(summary["id"])
        conversion = detail["conversion"]
        assert conversion["mapping"] == "hl7v2-adt-to-fhir@3" and conversion["tracked"]
        assert conversion["warnings"] == [
            {"at": "PID-7", "text": "holds a date/time that does not exist"}]
        assert {"ZPV-1", "ZPV-2"} <= set(conversion["left_behind"])
        assert "PID-3" not in conversion["left_behind"]
        # places only: nothing the sender wrote is repeated
        assert "LOCAL-FLAG" not in json.dumps(detail) and "19700230" not in json.dumps(detail)
        dropped = (await engine.ops.channel("adt"))["counts"]["fields_dropped"]
        assert dropped == len(conversion["left_behind"])
    finally:
        await harness.stop()
    again = EngineHarness(tmp_path)
    engine = await again.start({"adt": channel(port, out)})
    try:
        assert (await engine.ops.channel("adt"))["counts"]["fields_dropped"] == dropped
    finally:
        await again.stop()


async def test_a_strict_channel_refuses_what_a_lenient_one_maps(tmp_path):
    """Strict validation refuses the date that does not exist (AR) before any mapping;
    a sex code outside table 0001, which validation lets through, fails the mapping
    (AE naming PID-8) where a lenient channel would map the rest."""
    port, out = free_port(), tmp_path / "out"
    odd_sex = ODD_ADT.replace(b"|19700230|F", b"|19700228|Z")
    harness = EngineHarness(tmp_path)
    await harness.start({"adt": channel(port, out, validation="strict")})
    try:
        refused, failed = await exchange(port, [ODD_ADT, odd_sex.replace(b"ODD-1", b"ODD-2")])
        assert refused.value("MSA-1") == "AR"
        assert failed.value("MSA-1") == "AE"
        assert "PID-8" in failed.value("MSA-3") + failed.value("ERR-8")
        await asyncio.sleep(0.2)
        assert not list(out.glob("*"))
    finally:
        await harness.stop()


async def test_a_mapping_that_does_not_track_what_it_leaves_says_so(tmp_path):
    """hl7v2-adt-to-fhir@1 reports no fields left behind: its empty list must not read as
    "every field was read" (the shipped channel once showed that for an admission whose
    allergies and diagnoses @1 does not map)."""
    port, out = free_port(), tmp_path / "out"
    harness = EngineHarness(tmp_path)
    engine = await harness.start({"adt": channel(port, out).replace("@3", "@1")})
    try:
        [ack] = await exchange(port, [adt("T1", "MRN1") + b"ZPV|LOCAL-FLAG|42\r"])
        assert ack.value("MSA-1") == "AA"
        [summary] = await engine.ops.search(MessageQuery(channel="adt", limit=5))
        conversion = (await engine.ops.message(summary["id"]))["conversion"]
        assert (conversion["mapping"], conversion["left_behind"], conversion["tracked"]) == (
            "hl7v2-adt-to-fhir@1", [], False)
    finally:
        await harness.stop()
