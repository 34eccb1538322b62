"""`conduit run` and `conduit validate`: the daemon and its configuration check."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from engine.cli.common import load_everything


def cmd_validate(args: argparse.Namespace) -> int:
    _, channels, catalog = load_everything(args)
    for loaded in channels:
        cfg = loaded.config
        dests = ", ".join(d.name for d in cfg.destinations)
        print(f"ok {loaded.file}: channel {cfg.name} ({cfg.mapping or 'no mapping'}) -> {dests}")
        for dest, variables in loaded.disabled.items():
            print(f"   destination {dest} will be disabled: {', '.join(variables)} not set")
    print(f"configuration is valid: {len(channels)} channel(s), "
          f"{len(catalog.refs())} mapping(s)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from engine import logs
    from engine.runtime import Engine, Services, lock_data_dir
    from engine.supervisor import WorkerSlot, keep_to_own_cpu, supervise
    from engine.supervisor import log as supervisor_log
    from engine.web.server import serve

    worker = WorkerSlot.from_env()
    cpu = keep_to_own_cpu(worker) if worker is not None else None
    engine_cfg, channels, catalog = load_everything(args)
    logs.setup(engine_cfg.log)
    if cpu is not None:
        supervisor_log.info("worker runs on CPU %d", cpu)
    embedded = Services.store_is_embedded(engine_cfg)
    if worker is None and embedded and not _whole(args.workers):
        print("conduit run: on the embedded store no other host shares the work, so "
              "--workers needs a worker taking messages in and one delivering them",
              file=sys.stderr)
        return 2
    if worker is None:
        lock = lock_data_dir(Path(engine_cfg.data_dir)) if embedded else None  # the group's
        try:
            # Which revision to run: made, checked or refused before anything starts.
            settled = _settle(args, engine_cfg, channels, catalog, follow_only=False)
            if args.workers != ("all",):
                return supervise(args.workers, sys.argv[1:])
        finally:
            if lock is not None:
                os.close(lock)
    else:
        settled = _settle(args, engine_cfg, channels, catalog, follow_only=True)
    _use_uvloop()
    engine = Engine(engine_cfg, settled.channels, settled.catalog, serve=serve, worker=worker)
    engine.revision = settled.revision
    asyncio.run(engine.run_until_signal())
    return 0


def _whole(roles: tuple[str, ...]) -> bool:
    """Whether the group both takes messages in and delivers them."""
    return any(r != "deliver" for r in roles) and any(r != "ingest" for r in roles)


def _settle(args: argparse.Namespace, config, channels, catalog, *, follow_only: bool):
    """The live revision to start with (engine.change.startup); a revision made now is
    the token's user's (CONDUIT_TOKEN), or the OS user's."""
    from engine.change.startup import settle
    from engine.cli.deploy import who

    return settle(config, channels, catalog, deploy=args.deploy, follow_only=follow_only,
                  who=lambda db: who(args, db, token_required=False))


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
