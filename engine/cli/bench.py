"""The analyst's test bench: parse, ack, map, mapping diff and test."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.cli.common import (
    catalog,
    channel_named,
    engine_config,
    mapping_named,
    messages_of,
)
from engine.errors import ConduitError


def cmd_parse(args: argparse.Namespace) -> int:
    from engine.testbench import inspect

    worst = 0
    for name in args.files:
        for n, raw in enumerate(messages_of(name), start=1):
            found = inspect(raw, args.validate)
            p = found.parsed
            label = f"{name}#{n}"
            if p is None:
                print(f"{label}: {found.standard}: NOT READABLE")
            else:
                print(f"{label}: {p.standard} {p.version} {p.message_type} control "
                      f"{p.control_id or '-'} from {p.sender or '-'} to {p.receiver or '-'}")
            for problem in found.problems:
                where = problem.segment or ""
                if problem.field is not None:
                    where += f"-{problem.field}"
                print(f"  {problem.severity} {where or 'message'} ({problem.code}): "
                      f"{problem.text}")
                worst = max(worst, 1 if problem.severity in ("E", "F") else 0)
            if not found.problems:
                print("  no problems found" + ("" if args.validate == "off"
                                               else f" ({args.validate} validation)"))
    return worst


def cmd_ack(args: argparse.Namespace) -> int:
    from engine.testbench import file_acknowledgements

    level = args.validate
    if args.channel:
        level = channel_named(args, args.channel).validation if level is None else level
    replies = file_acknowledgements(Path(args.file).read_bytes(), level or "off")
    for n, reply in enumerate(replies, start=1):
        if n > 1:
            print()
        print(reply.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
              .rstrip("\n"))
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    from engine.mapping_base import Skip
    from engine.testbench import pretty, report, run_mapping

    mapping = mapping_named(catalog(args), args.mapping)
    status = 0
    for n, raw in enumerate(messages_of(args.file), start=1):
        try:
            result = run_mapping(mapping, raw)
        except ConduitError as exc:
            print(f"{args.file}#{n}: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
            continue
        if isinstance(result, Skip):
            print(f"{args.file}#{n}: skipped: {result.reason}", file=sys.stderr)
            continue
        print(pretty(result.output, mapping.emits))
        lines = report(result) if args.report else [f"warning {w}" for w in result.warnings]
        for line in lines:
            print(f"{args.file}#{n}: {line}", file=sys.stderr)
    return status


def cmd_mapping_coverage(args: argparse.Namespace) -> int:
    from engine.maplib.v2_to_fhir import coverage

    mappings = catalog(args)
    if args.update:
        changed = coverage.update(Path(args.update), mappings)
        print(f"{args.update}: {'updated' if changed else 'already current'}")
    else:
        print(coverage.table(mappings))
    return 0


def cmd_mapping_diff(args: argparse.Namespace) -> int:
    from engine.testbench import diff_versions

    mappings = catalog(args)
    a, b = mapping_named(mappings, args.a), mapping_named(mappings, args.b)
    differing = 0
    total = 0
    for name in args.files:
        for n, raw in enumerate(messages_of(name), start=1):
            total += 1
            changes = diff_versions(a, b, raw)
            if not changes:
                print(f"{name}#{n}: same")
                continue
            differing += 1
            if isinstance(changes, str):
                print(f"{name}#{n}: {changes}")
                continue
            print(f"{name}#{n}: {len(changes)} difference(s)")
            for change in changes:
                print(f"  {change.describe()}")
    print(f"{differing} of {total} message(s) differ between {a.ref} and {b.ref}")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from engine.config.loader import load_channels
    from engine.testbench import channel_fixtures, mapping_fixtures, run_in_utc

    run_in_utc()
    engine_cfg = engine_config(args)
    mappings = catalog(args)
    # a mapping's folder or a channel's file, as a shell completes them, by its name
    names = [Path(n).stem if "/" in n or n.endswith((".yaml", ".yml")) else n
             for n in args.names]
    results = list(mapping_fixtures(mappings, Path(engine_cfg.mappings_dir), names))
    channels_dir = Path(engine_cfg.channels_dir)
    if channels_dir.is_dir():
        channels = load_channels(channels_dir, os.environ)
        results += channel_fixtures(channels, mappings, channels_dir, names)
    failed = [r for r in results if not r.ok]
    for r in results:
        if r.ok and not args.quiet:
            print(f"ok   {r.name}")
        elif not r.ok:
            print(f"FAIL {r.name}")
            for line in r.details:
                print(f"       {line}")
    if not results:
        asked = ", ".join(args.names) if args.names else "any mapping or channel"
        print(f"conduit test: no fixtures found for {asked} (a mapping is named "
              "name@version or name, a channel by its name)", file=sys.stderr)
        return 1
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
