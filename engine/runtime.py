"""Engine: builds channels from configuration, supervises them, shuts down cleanly.

Start-up order: keys, store, writer, queues (taking back leases a crash left behind),
channels (workers, then sources), web. Shutdown runs it backwards, so by the time the
store closes every reply has been sent and every outcome recorded.

The web listener is not the runtime's: the web app uses the runtime, so what starts an
engine passes `serve` (engine.web.server.serve) and the engine calls it and closes what
it returns at its place in that order. Without `serve` there is no listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from engine import __version__, group_controls, registry
from engine.change.follower import RevisionFollower, follow_revisions
from engine.channel import Channel, State
from engine.channel_swap import Swapper
from engine.config.base import DestinationBase
from engine.config.schema import EngineConfig
from engine.connectors.base import DestinationContext, SourceContext
from engine.errors import StoreError
from engine.events import Event, Kind, log_events
from engine.every import Every
from engine.formats.base import Codec
from engine.group_controls import ControlFollower
from engine.mapping import MappingCatalog
from engine.operations import ACTIONS, Operations
from engine.ops import tracing
from engine.ops.alerts import Alerting
from engine.ops.leader import ClusterLease
from engine.ops.slo import ServiceLevels
from engine.ops.stats import Stats
from engine.ops.trail_feed import TrailFeed, seed_point
from engine.pipeline import x12_partner
from engine.pipeline.delivery import IDLE_POLL, DestinationWorker
from engine.pipeline.respond import Responder
from engine.pipeline.shadow import Shadow
from engine.queue.base import Queue
from engine.queue.heartbeat import Heartbeat
from engine.queue.holds import holds_for
from engine.queue.owners import new_owner_id
from engine.queue.retry import RetryPolicy
from engine.security.crypto import Vault
from engine.security.keys import for_store
from engine.security.users import UserStore
from engine.store.database import PRIVATE_DIR, default_url, open_database
from engine.store.fhir_versions import FhirVersions
from engine.store.messages import MessageStore
from engine.store.rekey import KeyUpkeep
from engine.store.retention import PASS_SECONDS, Pruner, retention_of
from engine.store.totals import Total, roll_up
from engine.store.writer import UnitOfWork, Writer
from engine.supervisor import WorkerSlot

log = logging.getLogger("conduit.engine")

DELIVER_ONLY_POLL = 0.1  # seconds: how soon a deliver worker finds what others took in
ROLL_UP_SECONDS = 600.0  # after a crash, start-up counts at most this much of the trail


class Services:
    """The stores and keys, opened once; shared by the daemon and the CLI's commands."""

    def __init__(self, config: EngineConfig, worker: WorkerSlot | None = None, *,
                 writes: bool = True) -> None:
        """`writes`: False for a command that only reads, which never makes keys."""
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.url = config.store.url or default_url(self.data_dir)
        self.embedded = self.store_is_embedded(config)
        # The only engine on its store: the embedded one, unless it is one of a group of
        # workers. Others share queues and the trail with processes they cannot see.
        self.alone = self.embedded and worker is None
        self.db = open_database(self.url)
        try:  # keys made only for a brand-new store, and only by a writer
            self.keys = for_store(config.keys, self.data_dir, self.db, writes=writes)
        except BaseException:
            self.db.dispose()
            raise
        self.vault = Vault(self.keys)
        self.stats = Stats()
        self.owner = new_owner_id()
        self.queue: Queue = registry.QUEUES[config.queue.type](config.queue, self.db, self.owner)
        self.store = MessageStore(self.db, self.vault)
        self.writer: Writer | None = None

    @staticmethod
    def store_is_embedded(config: EngineConfig) -> bool:
        """A SQLite file of this host: what one engine, or one group of workers, owns."""
        return (config.store.url or "sqlite").startswith("sqlite")

    def _committed(self, events: list[Event]) -> None:
        log_events(events)
        if self.alone:  # otherwise counted from the trail (engine.ops.trail_feed)
            self.stats.observe(events)

    async def roll_up_totals(self) -> list[Total]:
        """Count the audit events since the last roll-up into the stored totals."""
        assert self.writer is not None
        uow = UnitOfWork()
        uow.query = roll_up
        return await self.writer.commit(uow)

    def ping(self) -> None:
        """Raises if the database cannot answer a trivial query."""
        with self.db.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def start_writer(self) -> Writer:
        self.writer = Writer(self.db, self.keys.audit, on_committed=self._committed)
        self.writer.start()
        return self.writer

    async def close(self) -> None:
        if self.writer is not None:
            await self.writer.close()
        self.store.close()
        self.db.dispose()


class Listener(Protocol):
    """What `serve` started for the engine (the web listener); closed after the drain."""

    async def close(self) -> None: ...


class Engine:
    def __init__(self, config: EngineConfig, channels: list[Any], catalog: MappingCatalog,
                 serve: Callable[[Engine], Awaitable[Listener | None]] | None = None,
                 worker: WorkerSlot | None = None) -> None:
        """`serve` starts the web listener once the channels run (engine.web.server.serve
        for the daemon); None runs without one. `worker`: this process's place in a group
        started by `conduit run --workers N` (engine.supervisor)."""
        self.config = config
        self.worker = worker
        # What must happen once per group: the status page, alerts, service levels,
        # polling folders, following the trail for the group's counts.
        self.primary = worker is None or worker.primary
        self._feed: TrailFeed | None = None
        self._controls: ControlFollower | None = None  # actions taken by other processes
        self._loaded = channels
        self.catalog = catalog
        self.services: Services | None = None
        self.channels: dict[str, Channel] = {}
        self.ops = Operations(self)
        self.users: UserStore | None = None
        self._serve = serve
        self.web: Listener | None = None  # what `serve` started, once started
        self._lock_fd: int | None = None
        self.heartbeat: Heartbeat | None = None  # this process's claim to its leases
        self._roll_ups: Every | None = None  # keeps the events a start-up counts few
        self._retention: Every | None = None  # prunes content past channels' retention
        self._key_upkeep: KeyUpkeep | None = None  # new keys, re-encryption, retirement
        self.started_at: float | None = None
        self._stopping = False
        self.slo: ServiceLevels | None = None  # service levels, once started
        self.alerting: Alerting | None = None  # alert rules, once started
        self._swapper: Swapper | None = None  # applies deployed channels (apply)
        self.revision: int | None = None  # the live revision running (engine.change)
        self._revisions: RevisionFollower | None = None  # swaps to each new live one
        self._alerts_lease: ClusterLease | None = None  # whether this host sends alerts

    def _source_peers(self) -> dict[str, list[str]]:
        """Who is connected to each channel's source in this process."""
        return {name: peers for name, channel in self.channels.items()
                if (peers := channel.source.describe().get("peers"))}

    async def start(self) -> None:
        data_dir = Path(self.config.data_dir)
        data_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)  # its store is private
        tracing.setup(self.config.tracing)
        svc = Services(self.config, self.worker)
        self.services = svc
        if svc.alone:
            self._lock_fd = lock_data_dir(data_dir)
        self.users = UserStore(svc.db)
        if self.primary and self.config.queue.type == "redis":
            from engine.queue.redis_streams import RedisStreamsQueue  # loaded by its queue

            assert isinstance(svc.queue, RedisStreamsQueue)
            svc.queue.check_persistence()  # once per group, not per worker or command
        writer = svc.start_writer()
        self.heartbeat = Heartbeat(writer, svc.queue,
                                   peers=None if svc.alone else self._source_peers)
        await self.heartbeat.start()
        recovered = UnitOfWork()
        svc.queue.release(recovered, any_owner=svc.alone)
        recovered.record(Event(kind=Kind.ADMIN, detail={
            "action": "engine-start", "version": __version__, "channels": len(self._loaded)}))
        if svc.alone:  # engine.group_controls
            recovered.execute(group_controls.cleared())
        await writer.commit(recovered)
        if svc.alone:
            svc.stats.seed(await svc.roll_up_totals())
        elif self.primary:
            totals, mark = await self._seed_point()
            svc.stats.seed(totals)
            self._feed = TrailFeed(svc.db, svc.stats.observe, after=mark)
            self._feed.start()
        self._roll_ups = Every(ROLL_UP_SECONDS, svc.roll_up_totals, name="roll up audit totals",
                               log=log, failure="could not roll up the audit totals")
        self._roll_ups.start()
        self._key_upkeep = KeyUpkeep(self.config.keys, svc.db, writer, svc.vault,
                                     primary=self.primary,
                                     cluster_owner=None if svc.alone else svc.owner)
        await self._key_upkeep.start()
        for loaded in self._loaded:
            if not loaded.config.enabled:
                log.info("channel %s is disabled in %s", loaded.config.name, loaded.file)
                continue
            for dest, variables in loaded.disabled.items():
                log.warning("channel %s: destination %s disabled: %s not set",
                            loaded.config.name, dest, ", ".join(variables))
            channel = self._build(loaded.config)
            if not self._runs_here(channel):
                continue
            self.channels[channel.name] = channel
        held: dict[str, str] = {}
        if not svc.alone:  # joining a group: its channels paused or stopped stay so
            self._controls = ControlFollower(svc.db, self._carry_out)
            held = await self._controls.seed()
        for channel in self.channels.values():
            state = held.get(channel.name)
            if state == "stopped":
                log.info("channel %s stays stopped, as an operator left it", channel.name)
            else:
                await channel.start(accepting=state != "paused")
        self._swapper = Swapper(self.channels, self._build, self._runs_here)
        self._swapper.started(self._loaded, self.catalog)
        self._revisions = follow_revisions(self)
        await self._revisions.start()
        if self._controls is not None:
            await self._controls.start()
        if self.primary:
            self._retention = Every(PASS_SECONDS, self.pruner().run_once, name="retention",
                                    log=log, failure="could not prune under retention")
            self._retention.start()
            self.slo = ServiceLevels(self.config.slo)
            self.slo.start(self)
            lease = None
            if not svc.alone and self.config.alerts.rules:  # one host sends for all
                lease = self._alerts_lease = ClusterLease(writer, "alerts", svc.owner)
                await lease.start()
            self.alerting = Alerting.for_engine(
                self.config.alerts, self,
                speaks=(lambda: lease.held) if lease is not None else (lambda: True))
            self.alerting.start()
            if self._serve is not None:
                self.web = await self._serve(self)
        self.started_at = time.time()
        log.info("conduit %s started: %d channel(s), store %s", __version__,
                 len(self.channels), "embedded SQLite" if svc.embedded else "external")

    async def apply(self, channels: list[Any], catalog: MappingCatalog) -> list[str]:
        """Run `channels` (LoadedChannel) with `catalog` from now on without a restart:
        only what changed is drained and swapped (engine.channel_swap). Returns the
        names of the channels swapped, added or removed."""
        assert self._swapper is not None, "the engine is not started"
        previous, self.catalog = self.catalog, catalog  # what _build reads
        try:
            changed = await self._swapper.apply(channels, catalog)
        except BaseException:
            self.catalog = previous
            raise
        self._loaded = channels
        return changed

    @property
    def takes_in(self) -> bool:
        """Whether this process runs sources (all but a deliver worker)."""
        return self.worker is None or self.worker.takes_in

    @property
    def delivers(self) -> bool:
        """Whether this process runs destination workers (all but an ingest worker)."""
        return self.worker is None or self.worker.delivers

    def _runs_here(self, channel: Channel) -> bool:
        """A deliver worker sends every channel's queue except a request/response
        channel's, whose callers wait in the process that took them in; otherwise worker
        0 runs every channel and the others those whose source they can share (worker 0
        polls a folder and delivers what it takes)."""
        if not self.takes_in:
            return channel.respond is None
        return self.primary or _shares_its_source(channel.source)

    def _shared(self, svc: Services, source: Any) -> bool:
        """Whether other processes may take this channel's messages into the store, so
        that its duplicate check must ask the store about each (engine.pipeline.
        duplicates): always on a server store, which other hosts may share; on the
        embedded one, when the group's other workers run this source too (the one
        ingest worker of `ingest=1,deliver=M` takes messages in alone)."""
        if not svc.embedded:
            return True
        return self.worker is not None and self.worker.intake_shared \
            and _shares_its_source(source)

    def _build(self, cfg: Any) -> Channel:
        svc = self.services
        assert svc is not None and svc.writer is not None
        codec = registry.codec_for(cfg)
        if getattr(cfg.source, "required", None) and cfg.validation == "off":
            log.warning("channel %s: source.required is checked only with validation: "
                        "lenient or strict; this channel has validation: off", cfg.name)
        mapping = self.catalog.get(cfg.mapping) if cfg.mapping else None
        context = SourceContext(cfg.name, self.users, self.ops.record, codec.content_type,
                                shared_port=self.worker is not None,
                                versions=FhirVersions(svc.db, svc.vault),
                                validation=cfg.validation)
        source = registry.SOURCES[type(cfg.source).__struct_config__.tag].factory(
            cfg.source, context)
        # Replies are read in the standard of what is sent: an HL7v2 ACK comes back for
        # HL7v2 made from FHIR, whatever the channel itself reads.
        outgoing = (registry.codec_for_content(mapping.emits) if mapping else None) or codec
        workers = [self._worker(cfg, dest_cfg,
                                codec if dest_cfg.send == "received" else outgoing,
                                codec.content_type)
                   for dest_cfg in cfg.destinations]
        candidate = self.catalog.get(cfg.shadow) if cfg.shadow else None
        return Channel(cfg, codec=codec, mapping=mapping, source=source, workers=workers,
                       store=svc.store, queue=svc.queue, writer=svc.writer, vault=svc.vault,
                       shadow=Shadow(candidate) if candidate else None,
                       respond=self._responder(cfg, workers),
                       partner=x12_partner.for_channel(cfg.name, cfg, svc.db),
                       takes_in=self.takes_in, shared=self._shared(svc, source),
                       # a caller waiting for its answer is answered by this process's
                       # own delivery (engine.pipeline.respond)
                       delivers=self.delivers or cfg.respond is not None)

    def _responder(self, cfg: Any, workers: list[DestinationWorker]) -> Responder | None:
        """`respond:`: the waiter, hooked to its destination's worker; the answer is read
        by the codec its mapping accepts."""
        if cfg.respond is None:
            return None
        assert self.services is not None and self.services.writer is not None
        mapping = self.catalog.get(cfg.respond.mapping) if cfg.respond.mapping else None
        responder = Responder(cfg.name, cfg.respond, mapping=mapping, writer=(
            self.services.writer), read=registry.CODECS[mapping.accepts]().parse
            if mapping is not None else None)
        for worker in workers:
            if worker.name == cfg.respond.destination:
                worker.on_result = responder.delivered
        return responder

    def _worker(self, cfg: Any, dest_cfg: DestinationBase, reply_codec: Codec,
                raw_content_type: str) -> DestinationWorker:
        svc = self.services
        assert svc is not None and svc.writer is not None
        kind = registry.DESTINATIONS[type(dest_cfg).__struct_config__.tag]
        destination = kind.factory(dest_cfg, DestinationContext(
            cfg.name, reply_codec, extension_for=registry.extension_for))
        return DestinationWorker(
            channel=cfg.name, name=dest_cfg.name, destination=destination,
            policy=RetryPolicy(dest_cfg.retry or cfg.retry), timeout=dest_cfg.timeout,
            queue=svc.queue, writer=svc.writer, vault=svc.vault,
            raw_content_type=raw_content_type,
            # in order, one at a time, unless the destination's messages stand alone, or
            # order matters only per patient (engine.queue.base, lease by_key)
            concurrency=dest_cfg.concurrency,
            by_patient=(dest_cfg.order or cfg.order) == "patient",
            # The embedded store's lock file admits one process: nobody can take its
            # leases over, so a writer stalled past the heartbeat's trust must not stop
            # deliveries there.
            heartbeat=None if svc.alone else self.heartbeat,
            idle_poll=IDLE_POLL if self.takes_in else DELIVER_ONLY_POLL,
        )

    def pruner(self, clock: Callable[[], float] = time.time) -> Pruner:
        """Retention over the channels running now (engine.store.retention); `clock`
        for tests that look at the store a month later."""
        svc = self.services
        assert svc is not None and svc.writer is not None
        return Pruner(svc.writer, lambda: retention_of(
            [c.config for c in self.channels.values()], self.config.retention),
            holds=holds_for(svc.queue), clock=clock)

    def steady(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold off channel swaps while an operator's action finds and changes a channel."""
        return self._swapper.steady() if self._swapper else contextlib.nullcontext()

    async def _carry_out(self, name: str, action: str) -> None:
        """A channel action another process of the group took (engine.group_controls)."""
        async with self.steady():
            channel = self.channels.get(name)
            if channel is not None and action in ACTIONS:
                await getattr(channel, action)()

    async def _seed_point(self) -> tuple[list[Total], int]:
        assert self.services is not None and self.services.writer is not None
        uow = UnitOfWork()
        uow.query = seed_point
        return await self.services.writer.commit(uow)

    async def stop(self) -> None:
        """Drain: stop accepting, answer and record what is in flight, then close."""
        self._stopping = True  # /readyz says so at once: balancers drain this node
        log.info("stopping: no new connections; finishing messages in flight")
        if self._roll_ups is not None:
            await self._roll_ups.stop()
        if self._retention is not None:
            await self._retention.stop()
        if self._key_upkeep is not None:
            await self._key_upkeep.stop()
        if self._feed is not None:
            await self._feed.stop()
        if self._controls is not None:
            await self._controls.stop()
        if self._revisions is not None:  # no swap may start while the channels drain
            await self._revisions.stop()
        # Alerts and service levels first: channels stopping on purpose are no incident.
        if self.alerting is not None:
            await self.alerting.stop()
        if self._alerts_lease is not None:
            await self._alerts_lease.stop()
            self._alerts_lease = None
        if self.slo is not None:
            await self.slo.stop()
        await asyncio.gather(*(c.stop() for c in self.channels.values()))
        if self.heartbeat is not None:  # after the workers: they give back their leases
            await self.heartbeat.stop()
            self.heartbeat = None
        if self.web is not None:  # after the drain: /readyz answers while channels stop
            await self.web.close()
            self.web = None
        svc = self.services
        if svc is not None:
            if svc.writer is not None:
                done = UnitOfWork()
                done.record(Event(kind=Kind.ADMIN, detail={"action": "engine-stop"}))
                with contextlib.suppress(StoreError):
                    await svc.writer.commit(done)
            await svc.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        await tracing.shutdown()
        log.info("stopped cleanly")

    async def readiness(self) -> dict[str, Any]:
        svc = self.services
        store_ok = False
        if svc is not None:
            try:
                await asyncio.to_thread(svc.ping)
                store_ok = True
            except Exception:
                store_ok = False
        channels = {name: c.state.value for name, c in self.channels.items()}
        # An operator's pause or stop is not a fault: a load balancer taking the node out
        # for it would cut every other channel too. A source that failed is.
        ready = (store_ok and self.started_at is not None and not self._stopping
                 and all(s != State.ERROR.value for s in channels.values()))
        return {"ready": ready, "store": "ok" if store_ok else "unreachable",
                "channels": channels}

    async def run_until_signal(self) -> None:
        """Run until SIGTERM or SIGINT, then drain and stop."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if self.worker is not None:
            watch = asyncio.create_task(_stop_when_orphaned(os.getppid(), stop),
                                        name="supervisor watch")
        await self.start()
        # Everything made so far (modules, mappings, channels) lives as long as the
        # daemon: taken out of the collector's sight, a full collection under load costs
        # about a millisecond instead of 80-100 ms (a stall every sender would wait on).
        gc.collect()
        gc.freeze()
        await stop.wait()
        if self.worker is not None:
            watch.cancel()
        await self.stop()


async def _stop_when_orphaned(supervisor: int, stop: asyncio.Event) -> None:
    """A worker whose supervisor is gone (SIGKILLed or crashed: it could not stop its
    workers) drains and stops as on SIGTERM, instead of running on unmanaged, holding the
    port and taking messages no restart or stop of the group would reach."""
    while os.getppid() == supervisor:
        await asyncio.sleep(1.0)
    log.warning("the supervisor (pid %d) is gone: draining and stopping", supervisor)
    stop.set()


def lock_data_dir(data_dir: Path) -> int:
    """One daemon (or one group of workers) per embedded data folder: another would fight
    over the queues. The open descriptor holds the lock until it is closed."""
    data_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    fd = os.open(data_dir / "conduit.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(f"another conduit engine is already running on {data_dir}/"
                         ) from None
    return fd


def _shares_its_source(source: Any) -> bool:
    """Whether every worker may run this source: listeners share their port, and a
    channel inbox is each process's own; a poller would take a file twice."""
    return all(r.startswith(("tcp:", "inbox:")) for r in source.resources())
