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
    from engine.supervisor import WorkerSlot, supervise
    from engine.web.server import serve

    engine_cfg, channels, catalog = load_everything(args)
    logs.setup(engine_cfg.log)
    worker = WorkerSlot.from_env()
    if worker is None and args.workers > 1:
        embedded = Services.store_is_embedded(engine_cfg)
        lock = lock_data_dir(Path(engine_cfg.data_dir)) if embedded else None  # the group's
        try:
            return supervise(args.workers, sys.argv[1:])
        finally:
            if lock is not None:
                os.close(lock)
    _use_uvloop()
    asyncio.run(Engine(engine_cfg, channels, catalog, serve=serve,
                       worker=worker).run_until_signal())
    return 0


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
