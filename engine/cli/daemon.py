"""`conduit run` and `conduit validate`: the daemon and its configuration check."""

from __future__ import annotations

import argparse
import asyncio

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
    from engine.runtime import Engine
    from engine.web.server import serve

    engine_cfg, channels, catalog = load_everything(args)
    logs.setup(engine_cfg.log)
    _use_uvloop()
    asyncio.run(Engine(engine_cfg, channels, catalog, serve=serve).run_until_signal())
    return 0


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
