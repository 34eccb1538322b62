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

# `parse` checks what the message is and its structure; a channel may still refuse it in
# its mapping (a birth date that does not exist, under a strict mapping), which `parse`
# does not run: said, so that "no problems found" is not read as "the engine takes it".
NOT_MAPPED = ("conduit parse: no channel's filter or mapping was run; `conduit ack "
              "--channel NAME FILE` gives the answer a channel would send, `conduit map "
              "NAME@VERSION FILE` what a mapping makes of it")


def cmd_parse(args: argparse.Namespace) -> int:
    """What each message is and what validation finds; exit 1 when an error was found."""
    from engine.testbench import inspect

    worst, read_any = 0, False
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
            read_any = read_any or p is not None
    if read_any:
        print(NOT_MAPPED, file=sys.stderr)
    return worst


def cmd_ack(args: argparse.Namespace) -> int:
    """The answer the engine would send: with --channel, as that channel answers (its
    validation, filter and mapping run dry); else from parsing and validation alone."""
    raw = Path(args.file).read_bytes()
    if args.channel:
        replies = _channel_replies(args, raw)
    else:
        from engine.testbench import file_acknowledgements

        replies = file_acknowledgements(raw, args.validate or "off")
    for n, reply in enumerate(replies, start=1):
        if n > 1:
            print()
        print(reply.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
              .rstrip("\n"))
    return 0


def _channel_replies(args: argparse.Namespace, raw: bytes) -> list[bytes]:
    """The channel's own answers (engine.dry_run: its validation, filter, mapping and
    gates, nothing stored or sent); what the dry run cannot know, and what became of
    each message, go to stderr, so stdout stays the acknowledgements alone."""
    from engine.dry_run import channel_acknowledgements, limits

    config = channel_named(args, args.channel)
    answers = channel_acknowledgements(config, catalog(args), raw, args.validate)
    level = args.validate or config.validation
    print(f"conduit ack: as channel {config.name} would answer (validation {level}, "
          f"its filter, mapping {config.mapping or 'none'}); nothing is stored or sent",
          file=sys.stderr)
    for line in limits(config):
        print(f"conduit ack: {line}", file=sys.stderr)
    for n, answer in enumerate(answers, start=1):
        print(f"{args.file}#{n}: {answer.status.value}", file=sys.stderr)
    return [b"\n".join(answer.replies) for answer in answers]


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
