"""The engine-facing side of alerting: every `interval`, take a `Snapshot` of the running
engine, evaluate the rules, track what changed and deliver it.

Only this module knows about the engine (its channels, statistics, queues and service
levels) and about time passing; rules, tracking and delivery are tested without either.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from engine.config.alerts import (
    AlertsConfig,
    ControlIdReusedRule,
    ErrorRateRule,
    QueueAgeRule,
    QueueDepthRule,
    Rule,
    SloBurnRule,
)
from engine.ops.alerts import told
from engine.ops.alerts.notify import Notifier, Webhook
from engine.ops.alerts.rules import BurnView, ChannelView, QueueView, Snapshot, evaluate
from engine.ops.alerts.told import Key
from engine.ops.alerts.tracker import Notification, Tracker

if TYPE_CHECKING:
    from engine.runtime import Engine

log = logging.getLogger("conduit.alerts")


class Alerting:
    """Evaluates the rules every `interval` and sends what changed everywhere it goes.

    Nothing here may take the engine down: a failed evaluation is logged and tried again,
    a webhook that fails keeps its payloads (in order, bounded) for the next evaluation,
    and an audit write that fails is logged.
    """

    def __init__(self, config: AlertsConfig, snapshot: Callable[[], Awaitable[Snapshot]],
                 record: Callable[[list[Notification]], Awaitable[Any]],
                 webhook: Webhook | None = None, host: str | None = None,
                 speaks: Callable[[], bool] = lambda: True,
                 recall: Callable[[], Awaitable[dict[Key, Notification]]] | None = None
                 ) -> None:
        """`speaks`: whether this process sends what changed (engine.ops.leader); one
        that does not still tracks every alert. `recall`: what the on-call was told
        (engine.ops.alerts.told), which a process that starts speaking reconciles its
        tracker with; without it, nothing was told before this process."""
        self.config = config
        self._speaks = speaks
        self._recall = recall
        self._spoke = False  # since its last round as a silent process
        self.tracker = Tracker(config.repeat)
        self.notifier = Notifier(record, webhook, host)
        self._snapshot = snapshot
        self._task: asyncio.Task | None = None

    @classmethod
    def for_engine(cls, config: AlertsConfig, engine: Engine,
                   speaks: Callable[[], bool] = lambda: True) -> Alerting:
        assert engine.services is not None and engine.services.writer is not None
        store = told.Told(engine.services.writer)
        webhook = Webhook(config.webhook) if config.webhook else None
        return cls(config, lambda: collect(engine, config.rules), store.record, webhook,
                   speaks=speaks, recall=store.recall)

    def start(self) -> None:
        if self.config.rules and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="alerts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.notifier.close()

    def active(self) -> list[dict[str, Any]]:
        """Alerts that hold now, oldest first."""
        return [a.public() for a in sorted(self.tracker.active.values(),
                                           key=lambda a: (a.since, a.rule.name))]

    async def run_once(self) -> list[Notification]:
        """One evaluation: snapshot, rules, notifications, delivery."""
        snap = await self._snapshot()
        readings = evaluate(self.config.rules, snap)
        notes = self.tracker.step(readings, snap.now)
        if not self._speaks():
            self._spoke = False
            return []
        if not self._spoke:
            before = await self._recall() if self._recall is not None else {}
            notes = told.reconcile(notes, self.tracker.active, readings, before, snap.now)
            self._spoke = True
        await self.notifier.send(notes)
        return notes

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert evaluation failed; trying again in %gs",
                              self.config.interval)
            await asyncio.sleep(self.config.interval)


async def collect(engine: Engine, rules: list[Rule]) -> Snapshot:
    """A snapshot of the running engine: only what the rules need is computed."""
    svc = engine.services
    assert svc is not None
    windows = {int(r.window) for r in rules if isinstance(r, ErrorRateRule)}
    reuse_windows = {int(r.window) for r in rules if isinstance(r, ControlIdReusedRule)}
    wants_queues = any(isinstance(r, QueueDepthRule | QueueAgeRule) for r in rules)
    queues_now = await engine.ops.queue_stats() if wants_queues else {}
    now = time.time()
    channels: dict[str, ChannelView] = {}
    queues: dict[str, QueueView] = {}
    for name, channel in engine.channels.items():
        stats = svc.stats.channels.get(name)
        received, failed, reused = {}, {}, {}
        if stats is not None:
            for w in reuse_windows:
                reused[w] = stats.recent["control_id_reused"].total(w, now)
            for w in windows:
                received[w] = stats.recent["received"].total(w, now)
                failed[w] = sum(stats.recent[k].total(w, now)
                                for k in ("errored", "rejected", "dead_lettered"))
        channels[name] = ChannelView(channel.state.value,
                                     stats.last_message_at if stats else None,
                                     received, failed, reused)
        if wants_queues:
            for worker in channel.workers:
                q = queues_now.get(worker.key)
                queues[worker.key] = QueueView(
                    q.ready + q.leased if q else 0,
                    now - q.oldest_at if q and q.oldest_at else None)
    burns: list[BurnView] = []
    burn_rules = [r for r in rules if isinstance(r, SloBurnRule)]
    slo = getattr(engine, "slo", None)
    if burn_rules and slo is not None:
        burn_windows = {int(w) for r in burn_rules for w in (r.window, r.short_window) if w}
        burns = [BurnView(c, o, rates) for c, o, rates in slo.burn_rates(burn_windows, now)]
    return Snapshot(now, svc.stats.started_at, channels, queues, burns)
