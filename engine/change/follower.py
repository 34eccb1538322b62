"""The running engine follows the live revision: every process of a group looks each
second, and when another revision has gone live it loads that revision's channels from
the store (not from disk) and hands them to Engine.apply, which drains and swaps the
channels that changed. The primary of each host records the swap in the audit trail,
naming the host: an auditor sees which hosts run the revision (one that cannot run it
says so in its log and records nothing)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

from engine.change.loading import load_snapshot
from engine.change.revisions import RevisionStore
from engine.errors import ConduitError, ConfigErrors
from engine.events import Event, Kind
from engine.every import Every

log = logging.getLogger("conduit.change")

FOLLOW_EVERY = 1.0  # seconds between looks at the live revision
RETRY_FAILED = 30  # seconds before a live revision that could not be run is tried again


class RevisionFollower:
    """Watches the live revision for `engine` (an engine.runtime.Engine, started)."""

    def __init__(self, engine: Any, store: RevisionStore, every: float = FOLLOW_EVERY
                 ) -> None:
        self._engine = engine
        self._store = store
        self._every = Every(every, self.follow, name="follow revisions", log=log,
                            failure="could not look at the live revision")
        # the revision that could not be run, and when it was last tried (said once)
        self._failed: tuple[int, float] | None = None

    async def start(self) -> None:
        if self._engine.revision is None:  # started without a revision: what is live now
            self._engine.revision = await asyncio.to_thread(self._store.live_number)
        self._every.start()

    async def stop(self) -> None:
        await self._every.stop()

    async def follow(self) -> int | None:
        """Swap to the live revision if it is not the one running; its number if so."""
        number = await asyncio.to_thread(self._store.live_number)
        if number is None or number == self._engine.revision:
            return None
        if self._failed is not None and self._failed[0] == number and (
                time.monotonic() < self._failed[1] + RETRY_FAILED):
            return None
        revision = await asyncio.to_thread(self._store.get, number)
        try:
            channels, catalog = await asyncio.to_thread(
                load_snapshot, revision.snapshot, self._engine.config, dict(os.environ))
            swapped = await self._engine.apply(channels, catalog)
        except Exception as exc:  # the running channels go on; said once per revision
            if self._failed is None or self._failed[0] != number:
                problems = exc.errors if isinstance(exc, ConfigErrors) else [exc]
                why = "; ".join(str(p) for p in problems) if isinstance(
                    exc, ConduitError) else type(exc).__name__
                log.error("revision %d is live but cannot run here; still running revision "
                          "%s (tried again every %d s): %s", number, self._engine.revision,
                          RETRY_FAILED, why)
            self._failed = (number, time.monotonic())
            return None
        self._failed = None
        previous, self._engine.revision = self._engine.revision, number
        log.info("running revision %d (was %s); channels swapped: %s", number, previous,
                 ", ".join(swapped) or "none")
        if self._engine.primary:
            await asyncio.to_thread(self._store.record, Event(kind=Kind.ADMIN, detail={
                "action": "revision-applied", "revision": number, "previous": previous,
                "digest": revision.digest, "swapped": sorted(swapped),
                "host": socket.gethostname()}))
        return number


def follow_revisions(engine: Any) -> RevisionFollower:
    """The follower of a started engine, on its store and audit chain."""
    svc = engine.services
    return RevisionFollower(engine, RevisionStore(svc.db, svc.keys.audit))
