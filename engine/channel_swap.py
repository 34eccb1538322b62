"""Swapping channels in a running engine (a deploy going live without a restart).

What a new set of channel files does to the channels that run:
- a channel whose configuration and mappings are unchanged is not touched at all;
- a changed one is drained and replaced: its source stops taking messages (frames
  already received are committed and answered, connections are then closed and their
  senders reconnect), its destination workers finish the send under way and give their
  leases back, then the new channel starts on the same queues (`channel/destination`),
  so what was queued is delivered by the new workers. A listener (MLLP, HTTP, FHIR)
  hands its socket to the new channel listening at its address (the sources'
  `take_over`): no connection is refused during the swap, they wait in the backlog;
- an added channel starts, a removed one drains and stops. Entries queued for a
  destination (or a channel) that no longer exists stay in the queue, visible in
  `conduit queue list`, until it comes back or an operator deals with them;
- a channel an operator paused or stopped keeps that state.

"Changed" is the configuration (frozen structs compare by value) plus the content of
every mapping version it names: a mapping version's file edited in place counts too.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

from engine.channel import Channel, State
from engine.config.schema import ChannelConfig
from engine.mapping import MappingCatalog

log = logging.getLogger("conduit.swap")

Fingerprint = tuple[ChannelConfig, tuple[tuple[str, str | None], ...]]


class Loaded(Protocol):
    """What engine.config.loader.load_all gives per channel (LoadedChannel)."""

    config: ChannelConfig
    file: str
    disabled: dict[str, list[str]]


def mapping_refs(cfg: ChannelConfig) -> list[str]:
    """Every mapping version a channel runs: its mapping, its shadow, its answer's."""
    respond = getattr(cfg.respond, "mapping", None) if cfg.respond is not None else None
    return [ref for ref in (cfg.mapping, cfg.shadow, respond) if ref]


def _digest(catalog: MappingCatalog, ref: str) -> str | None:
    mapping = catalog.get(ref)
    if mapping is None:
        return None
    try:
        return hashlib.sha256(Path(mapping.file).read_bytes()).hexdigest()
    except OSError:  # defined in code, not a file: the object itself tells versions apart
        return f"object:{id(mapping)}"


def fingerprint(cfg: ChannelConfig, catalog: MappingCatalog) -> Fingerprint:
    """What decides whether a channel must be swapped: its configuration and the content
    of the mapping versions it runs, read now (so taken when the channel is built)."""
    return cfg, tuple((ref, _digest(catalog, ref)) for ref in mapping_refs(cfg))


class Swapper:
    """Applies one set of channels to a running engine's `channels` (a dict kept in place:
    the status page, operations and alerts look channels up in it by name)."""

    def __init__(self, channels: dict[str, Channel], build: Callable[[ChannelConfig], Channel],
                 runs_here: Callable[[Channel], bool]) -> None:
        self.channels = channels
        self.fingerprints: dict[str, Fingerprint] = {}  # every enabled channel applied
        self._build, self._runs_here = build, runs_here
        self._lock = asyncio.Lock()  # one deploy at a time

    @contextlib.asynccontextmanager
    async def steady(self) -> AsyncIterator[None]:
        """No swap while the body runs: an operator's pause taken in the middle of one
        would land on the channel leaving and be lost to the one coming."""
        async with self._lock:
            yield

    def started(self, loaded: list[Loaded], catalog: MappingCatalog) -> None:
        """Remember what the engine started with."""
        self.fingerprints = {lc.config.name: fingerprint(lc.config, catalog)
                             for lc in loaded if lc.config.enabled and lc.config.name}

    async def apply(self, loaded: list[Loaded], catalog: MappingCatalog) -> list[str]:
        """Swap, add and remove channels to match `loaded`; the names of those changed.
        Every new channel is built before any is touched, so a channel that cannot be
        built raises with the running ones as they were."""
        async with self._lock:
            wanted = {lc.config.name: lc for lc in loaded
                      if lc.config.enabled and lc.config.name}
            removed = sorted(set(self.fingerprints) - set(wanted))
            prints = {name: fingerprint(lc.config, catalog) for name, lc in wanted.items()}
            changed = [name for name in wanted if self.fingerprints.get(name) != prints[name]]
            built = {name: self._build(wanted[name].config) for name in changed}
            for name in changed:
                for dest, variables in wanted[name].disabled.items():
                    log.warning("channel %s: destination %s disabled: %s not set",
                                name, dest, ", ".join(variables))
            swapping = asyncio.ensure_future(self._swap(removed, built))
            try:
                await asyncio.shield(swapping)
            except asyncio.CancelledError:  # a stop: finish first, or channels half
                await swapping  # swapped would be left running with nobody to stop them
                raise
            for name in removed:
                self.fingerprints.pop(name, None)
            self.fingerprints.update({name: prints[name] for name in changed})
            if removed or changed:
                # Start-up objects were frozen out of the collector's sight (runtime's
                # gc.freeze): the replaced channels' cycles are freed by one collection.
                gc.unfreeze()
                gc.collect()
                gc.freeze()
            return sorted([*changed, *removed])

    async def _swap(self, removed: list[str], built: dict[str, Channel]) -> None:
        """Hand listening sockets over, stop what leaves (all at once), then start what
        comes. Stopping everything first lets a channel take a port another one leaves
        (a renamed channel, two channels trading ports)."""
        here = {name: new for name, new in built.items() if self._runs_here(new)}
        leaving = {name: old for name in [*removed, *built]
                   if (old := self.channels.get(name)) is not None}
        # an operator's pause or stop holds; anything else runs
        states = {name: leaving[name].state if name in leaving else State.STARTED
                  for name in here}
        donors = [old for old in leaving.values() if old.state is State.STARTED]
        for name, new in here.items():
            if states[name] in (State.STARTED, State.ERROR):
                for old in donors:  # the one at the same address, if any
                    if _take_over(new, old):
                        log.info("channel %s takes over the socket of channel %s", name,
                                 old.name)
                        donors.remove(old)
                        break
        # Stop taking messages and stop sending; the new workers start only once the old
        # ones gave their leases back, so one queue has one sender. Entries queued for
        # what left stay queued.
        await asyncio.gather(*(old.stop() for old in leaving.values()))
        for name, old in leaving.items():
            if name not in here and self.channels.get(name) is old:
                del self.channels[name]
                log.info("channel %s stopped and removed here", name)
        self.channels.update(here)
        await asyncio.gather(*(new.start(accepting=states[name] is not State.PAUSED)
                               for name, new in here.items()
                               if states[name] is not State.STOPPED))
        for name, new in here.items():
            log.info("channel %s %s (%s)", name, "swapped" if name in leaving else "added",
                     new.state.value)


def _take_over(new: Channel, old: Channel) -> bool:
    take_over: Any = getattr(new.source, "take_over", None)
    return bool(take_over is not None and take_over(old.source))
