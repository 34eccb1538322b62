"""Check FHIR JSON files as a destination's gate would: `python -m engine.conformance
[--profiles us-core] FILE...` prints each file's located reasons (none: `ok`) and exits
1 when any fails. For mapping authors: a fixture's expected Bundle can be tried against
the gate its receiver will have before a channel holds the real thing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.conformance import DEFAULT_MAX_ENTRIES
from engine.conformance.gate import Gate, check_all
from engine.conformance.us_core import NAMES, expand


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.conformance",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", default="us-core",
                        help="comma-separated US Core profiles ('' for R4 only); "
                             "default us-core: every one that applies")
    parser.add_argument("--max-entries", type=int, default=DEFAULT_MAX_ENTRIES)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    names = [n for n in args.profiles.split(",") if n]
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        parser.error(f"unknown profile(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    gate = Gate("R4", expand(names), args.max_entries, tuple(names))
    failed = 0
    for path in args.files:
        verdict = check_all(path.read_bytes(), [gate])[gate]
        if verdict.passed:
            print(f"{path}: ok")
            continue
        failed += 1
        for reason in verdict.reasons:
            print(f"{path}: {reason}")
        if verdict.more:
            print(f"{path}: ... more reasons not shown")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
