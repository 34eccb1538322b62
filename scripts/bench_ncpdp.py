"""NCPDP SCRIPT benchmark: NewRx messages/s read by the codec, against a ceiling of
plain XML parsing of the same bytes in the same run.

A benchmark, never a test: it measures and prints. On a set of NewRx messages (the
sample in tests/fixtures/ncpdp and the NewRx hl7v2-rde-to-ncpdp-newrx@1 writes from its
five EHR-style fixtures; 3-5 KB each, default namespace, 2017071), in one process on
one core, messages/s (the fastest of several rounds, taken in turn) for:
  ceiling  xml.etree.ElementTree.fromstring (expat, C tree builder, no safety checks)
  ceiling  defusedxml.ElementTree.fromstring (no DTDs, entities or external references)
  (a) NcpdpCodec.parse: safe, bounded read (local names) and the routing fields
  (b) (a) plus validate(..., "strict"): what each message type requires
  (c) (a) plus ncpdp-newrx-to-fhir@1 (a FHIR Bundle as JSON bytes), when it is shipped
  (d) hl7v2-rde-to-ncpdp-newrx@1: an HL7v2 RDE parsed and written as a NewRx
Human-readable lines first; the last line is one JSON object.
Usage: python scripts/bench_ncpdp.py [--quick] [--rounds N] [--copies N]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from defusedxml.ElementTree import fromstring as defused_fromstring

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.formats.hl7v2 import Hl7v2Codec  # noqa: E402
from engine.formats.ncpdp import NcpdpCodec  # noqa: E402
from engine.mapping import MappingCatalog  # noqa: E402

RDE = "hl7v2-rde-to-ncpdp-newrx@1"
TO_FHIR = "ncpdp-newrx-to-fhir@1"


def corpus(catalog: MappingCatalog) -> tuple[list[bytes], list[bytes]]:
    """The NewRx messages measured, and the RDE messages they were written from."""
    rdes = [p.read_bytes() for p in sorted(
        (ROOT / "mappings/hl7v2-rde-to-ncpdp-newrx/fixtures/v1").glob("*.hl7"))
        if p.with_suffix(".xml").exists()]
    mapping = catalog.get(RDE)
    assert mapping is not None, f"{RDE} is not in mappings/"
    hl7 = Hl7v2Codec()
    newrx = [(ROOT / "tests/fixtures/ncpdp/newrx_default_ns.xml").read_bytes()]
    newrx += [mapping.apply(hl7.parse(raw).body) for raw in rdes]
    return newrx, rdes


def interleaved(funcs: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Each function's fastest round, the rounds taken in turn (a, b, c, a, b, c ...) so
    a machine busy for a while slows every row alike rather than one."""
    fastest = dict.fromkeys(funcs, float("inf"))
    for _ in range(rounds):
        for name, func in funcs.items():
            gc.collect()
            start = time.perf_counter()
            func()
            fastest[name] = min(fastest[name], time.perf_counter() - start)
    return fastest


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench --ncpdp", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--copies", type=int, default=500, help="times the message set is read")
    p.add_argument("--quick", action="store_true", help="a short smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.copies = 2, 50
    catalog = MappingCatalog.discover(ROOT / "mappings")
    newrx, rdes = corpus(catalog)
    codec, hl7 = NcpdpCodec(), Hl7v2Codec()
    batch = newrx * args.copies
    rde_batch = rdes * args.copies
    size = sum(len(m) for m in newrx) / len(newrx)
    to_fhir = catalog.get(TO_FHIR)
    rde = catalog.get(RDE)
    assert rde is not None

    def parse_only() -> None:
        for raw in batch:
            codec.parse(raw)

    def strict() -> None:
        for raw in batch:
            problems = codec.validate(codec.parse(raw), "strict")
            assert not problems, problems

    def mapped() -> None:
        assert to_fhir is not None
        for raw in batch:
            to_fhir.apply(codec.parse(raw).body)

    def from_rde() -> None:
        for raw in rde_batch:
            rde.apply(hl7.parse(raw).body)

    def etree() -> None:
        for raw in batch:
            ET.fromstring(raw)

    def defused() -> None:
        for raw in batch:
            defused_fromstring(raw, forbid_dtd=True)

    rows: dict[str, Callable[[], None] | None] = {
        "ceiling_etree": etree,
        "ceiling_defusedxml": defused,
        "parse": parse_only,
        "parse_strict": strict,
        "parse_map_fhir": mapped if to_fhir is not None else None,
    }
    out: dict[str, Any] = {"messages": len(batch), "mean_bytes": round(size),
                           "rounds": args.rounds}
    print(f"ncpdp: {len(newrx)} NewRx messages ({size:,.0f} bytes on average) read "
          f"{args.copies} times, best of {args.rounds} rounds, one core")
    rows["rde_to_newrx"] = from_rde
    counts = {name: len(rde_batch if name == "rde_to_newrx" else batch) for name in rows}
    fastest = interleaved({k: f for k, f in rows.items() if f is not None}, args.rounds)
    for name in rows:
        if name not in fastest:
            out[f"{name}_per_s"] = None
            print(f"  {name:20s} skipped: {TO_FHIR} is not shipped yet")
            continue
        out[f"{name}_per_s"] = counts[name] / fastest[name]
        note = " (HL7v2 RDE read, NewRx written)" if name == "rde_to_newrx" else ""
        print(f"  {name:20s} {out[f'{name}_per_s']:>10,.0f} messages/s{note}")
    for name in ("parse", "parse_strict", "parse_map_fhir"):
        if out.get(f"{name}_per_s"):
            out[f"{name}_of_defusedxml"] = out[f"{name}_per_s"] / out["ceiling_defusedxml_per_s"]
            out[f"{name}_of_etree"] = out[f"{name}_per_s"] / out["ceiling_etree_per_s"]
    print(f"  parse is {out['parse_of_defusedxml']:.2f} of defusedxml's rate and "
          f"{out['parse_of_etree']:.2f} of ElementTree's")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
