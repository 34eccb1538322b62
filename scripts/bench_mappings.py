"""HL7v2 to FHIR mapping throughput, per message type.

A benchmark, never a test. For each message type with a builder (engine/maplib/v2_to_fhir)
the fixtures of its newest `hl7v2-<type>-to-fhir` version that have an expected output
are read in turn, one process on one core, and two rates are measured on the same
messages: parsing alone (the ceiling: no mapping can be faster than reading its input)
and parsing plus the mapping (what a channel pays). Also per type: the mean of fields
left behind and of warnings per message, and the same for `hl7v2-to-fhir@1` over every
type's messages. Human-readable lines first; the last line is one JSON object.
Usage: python scripts/bench_mappings.py [--quick]  (scripts/bench --codec-only runs it)
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from engine.formats.hl7v2 import Hl7v2Codec
from engine.maplib.v2_to_fhir.coverage import rows
from engine.mapping import MappingCatalog
from engine.mapping_base import Mapped

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_codec import rate

MAPPINGS = Path(__file__).resolve().parents[1] / "mappings"


def fixtures(ref: str) -> list[bytes]:
    name, version = ref.split("@")
    folder = MAPPINGS / name / "fixtures" / f"v{version}"
    return [p.read_bytes() for p in sorted(folder.glob("*.hl7")) if p.with_suffix(".json").exists()]


def measure(run, messages: list[bytes], rounds: int, seconds: float) -> dict[str, float]:
    codec = Hl7v2Codec()
    parsed = itertools.cycle(messages)
    mapped = itertools.cycle(messages)
    ceiling = rate(lambda: codec.parse(next(parsed)), rounds, seconds, 1_000_000)
    rate_mapped = rate(lambda: run(codec.parse(next(mapped)).body), rounds, seconds, 1_000_000)
    results = [run(codec.parse(m).body) for m in messages]
    noted = [r for r in results if isinstance(r, Mapped)]
    return {
        "messages": len(messages),
        "parse_per_s": round(ceiling, 1),
        "mapped_per_s": round(rate_mapped, 1),
        "ratio_to_parse": round(rate_mapped / ceiling, 3),
        "left_behind_per_message": round(sum(len(r.left_behind) for r in noted)
                                         / max(len(noted), 1), 1),
        "warnings_per_message": round(sum(len(r.warnings) for r in noted)
                                      / max(len(noted), 1), 2),
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench_mappings.py",
                                description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--round-seconds", type=float, default=0.3)
    p.add_argument("--quick", action="store_true", help="a short smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.round_seconds = 3, 0.05
    catalog = MappingCatalog.discover(MAPPINGS)
    figures: dict[str, dict[str, float]] = {}
    everything: list[bytes] = []
    for _code, _events, ref, _resources in rows(catalog):
        mapping = catalog.get(ref)
        messages = fixtures(ref) if mapping is not None else []
        if not messages:
            continue
        everything += messages
        figures[ref] = measure(mapping.run, messages, args.rounds, args.round_seconds)
    dispatcher = catalog.get("hl7v2-to-fhir@1")
    if dispatcher is not None and everything:
        figures["hl7v2-to-fhir@1"] = measure(dispatcher.run, everything, args.rounds,
                                             args.round_seconds)
    print("mappings: messages/s on one core, parse alone (the ceiling) and parse + mapping, "
          "over each mapping's fixtures")
    print(f"  {'mapping':28}{'msgs':>6}{'parse/s':>11}{'mapped/s':>11}{'ratio':>8}"
          f"{'left behind':>13}{'warnings':>10}")
    for ref, f in figures.items():
        print(f"  {ref:28}{f['messages']:>6}{f['parse_per_s']:>11,.0f}{f['mapped_per_s']:>11,.0f}"
              f"{f['ratio_to_parse']:>8.2f}{f['left_behind_per_message']:>13.1f}"
              f"{f['warnings_per_message']:>10.2f}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
