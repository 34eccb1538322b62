"""`conduit retention`: prune content past each channel's retention now, as the running
engine does every few minutes, and say what was done; safe beside a running engine."""

from __future__ import annotations

import argparse
import time

from engine.cli.common import load_everything, with_services


def cmd_retention_run(args: argparse.Namespace) -> int:
    from engine.queue.holds import holds_for
    from engine.store.retention import Pruner, describe, retention_of

    engine_cfg, channels, _ = load_everything(args)
    policies = retention_of([c.config for c in channels if c.config.enabled],
                            engine_cfg.retention)
    if not policies:
        print("no channel has a retention: content is kept for ever")
        return 0

    async def body(svc) -> int:
        pruner = Pruner(svc.writer, lambda: policies, holds=holds_for(svc.queue))
        busy = False
        for r in await pruner.run_once():
            cutoff = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.cutoff))
            print(f"{r.channel}: retention {describe(policies[r.channel])}, received "
                  f"before {cutoff}: {r.messages} message(s) pruned ({r.outputs} output(s), "
                  f"{r.answers} receiver answer(s)); {r.held} kept while queued or "
                  "dead-lettered" + ("; busy, not finished (run again)" if r.busy else ""))
            busy = busy or r.busy
        return 3 if busy else 0

    return with_services(args, body)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """`conduit retention run`."""
    retention = sub.add_parser("retention", help="content kept per channel's retention"
                               ).add_subparsers(dest="what", required=True)
    retention.add_parser("run", help="prune content past each channel's retention now "
                         "(the running engine does it every 5 minutes)").set_defaults(
        func=cmd_retention_run)
