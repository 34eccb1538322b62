"""This process's claim to its queue leases: a heartbeat, and whether to trust it.

Other processes take over this one's leases once it has not beaten for OWNER_TTL
(engine.queue.owners). So that it never keeps sending what another may already have
taken, this process trusts its leases only for half the TTL after its last successful
heartbeat was submitted; and a heartbeat that finds the owner's row missing or stale
(a pause longer than the TTL: a frozen VM, a lost network) starts a new generation,
which tells the workers that batches leased before may belong to someone else now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import msgspec

from engine.errors import StoreError
from engine.queue import owners
from engine.queue.base import Queue
from engine.store.writer import UnitOfWork, Writer

log = logging.getLogger("conduit.queue")


class Heartbeat:
    """Beats for `queue.owner` through the writer until stopped."""

    def __init__(self, writer: Writer, queue: Queue, *,
                 every: float = owners.HEARTBEAT_EVERY, ttl: float = owners.OWNER_TTL,
                 peers: Callable[[], dict[str, list[str]]] | None = None) -> None:
        self._writer = writer
        self._peers = peers  # in a group: this process's senders, for the status page
        self._peers_written: bytes | None = None
        self._queue = queue
        self._every = every
        self._ttl = ttl
        self._trusted_until = 0.0  # time.monotonic()
        self._task: asyncio.Task | None = None
        self.generation = 0

    async def start(self) -> None:
        """The first beat (raises StoreError if the store refuses it), then one every
        `every` seconds."""
        tidy = UnitOfWork()
        owners.forget(tidy)
        await self._writer.commit(tidy)
        await self._beat()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="heartbeat")

    def token(self) -> int | None:
        """What a worker leases under: the current generation, or None while the
        heartbeat is not trusted (lease nothing then)."""
        return self.generation if time.monotonic() < self._trusted_until else None

    def holds(self, token: int) -> bool:
        """True while leases taken under `token` are still this process's to send."""
        return token == self.generation and time.monotonic() < self._trusted_until

    async def stop(self) -> None:
        """Stop beating, give back every lease still held and remove the owner's row, so
        others take over at once instead of after the TTL."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._trusted_until = 0.0
        uow = UnitOfWork()
        self._queue.release(uow)
        owners.retire(uow, self._queue.owner)
        with contextlib.suppress(StoreError):
            await self._writer.commit(uow)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self._beat()
            except StoreError as exc:
                log.warning("queue owner %s: heartbeat failed: %s", self._queue.owner, exc)

    async def _beat(self) -> None:
        submitted = time.monotonic()
        peers = msgspec.json.encode(self._peers()) if self._peers is not None else None
        changed = peers if peers != self._peers_written else None
        continuous = await self._writer.commit(owners.beat(
            self._queue.owner, self._ttl, peers=changed.decode() if changed else None))
        if changed is not None:
            self._peers_written = changed
        if not continuous:
            self.generation += 1
            if self.generation > 1:
                log.warning("queue owner %s: no heartbeat for %.0fs or more; leases held "
                            "before may have been taken over and are given back",
                            self._queue.owner, self._ttl)
        self._trusted_until = submitted + self._ttl / 2
