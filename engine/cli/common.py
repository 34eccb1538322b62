"""What the commands share: where the configuration is, who is acting, opening the
stores, and reading message files."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
from pathlib import Path

from engine.errors import ConduitError, ConfigErrors

DEFAULT_CONF = "conf/conduit.yaml"


def actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def conf_path(args: argparse.Namespace) -> str:
    return getattr(args, "conf", None) or os.environ.get("CONDUIT_CONF") or DEFAULT_CONF


def load_everything(args: argparse.Namespace):
    from engine.config.checks import check
    from engine.config.loader import load_all
    from engine.mapping import MappingCatalog

    engine_cfg, channels = load_all(conf_path(args), os.environ)
    catalog = MappingCatalog.discover(engine_cfg.mappings_dir)
    problems = check(engine_cfg, channels, catalog)
    if problems:
        raise ConfigErrors(problems)
    return engine_cfg, channels, catalog


def engine_config(args: argparse.Namespace):
    from engine.config.loader import load_engine_config

    return load_engine_config(conf_path(args), os.environ)


def with_services(args: argparse.Namespace, body, *, writes: bool = True) -> int:
    """`writes`: False for a command that only reads: it never makes keys, and says which
    folder has none (engine.security.keys.for_store)."""
    from engine.runtime import Services

    async def run() -> int:
        svc = Services(engine_config(args), writes=writes)
        svc.start_writer()
        try:
            return await body(svc)
        finally:
            await svc.close()

    return asyncio.run(run())


def file_encoding(raw: bytes) -> str:
    """Re-encode in the file's own encoding: a Latin-1 file stays Latin-1 on the wire."""
    try:
        raw.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "latin-1"


def messages_of(path: str) -> list[bytes]:
    """The messages in a file, as the codec of its standard reads a file (some
    standards' files hold many); one message when no codec recognises it."""
    from engine import registry

    raw = Path(path).read_bytes()
    factory = registry.CODECS.get(registry.detect(raw))
    return factory().file_messages(raw) if factory is not None else [raw]


def catalog(args: argparse.Namespace):
    from engine.mapping import MappingCatalog

    return MappingCatalog.discover(engine_config(args).mappings_dir)


def mapping_named(catalog, ref: str):
    mapping = catalog.get(ref)
    if mapping is None:
        raise ConduitError(catalog.unknown(ref))
    return mapping


def channel_named(args: argparse.Namespace, name: str):
    """The configuration of channel `name` in channels/ (environment variables as the
    daemon reads them)."""
    from engine.config.loader import load_channels

    channels_dir = Path(engine_config(args).channels_dir)
    found = [c.config for c in load_channels(channels_dir, os.environ)
             if c.config.name == name] if channels_dir.is_dir() else []
    if not found:
        raise ConduitError(f"no channel named {name} in {channels_dir}")
    return found[0]
