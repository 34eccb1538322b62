"""Service-level objectives per channel, computed live over a rolling window.

An objective says what share of events must be good; what is left is the error budget,
and the burn rate says how fast it is being spent (1 = exactly on budget). Operators see
the indicator, the budget left and the burn rates on the page and in /metrics, and a
fast burn raises an alert (`SloBurnRule`, declared in `engine.config.alerts`) before the
budget is gone.

What counts, kept simple on purpose:
- delivery: each delivery (a message to one destination) is one event, taken from the
  committed SENT and DEAD_LETTERED events. SENT within `within` of receipt is good; SENT
  later, or dead-lettered, is bad. While a destination's oldest waiting entry is older
  than `within`, every entry waiting there counts as bad too (queues are FIFO: they wait
  behind it). Those are provisional, added when read and never stored, so an entry is
  counted once, by its SENT or DEAD_LETTERED event, when it finally leaves the queue.
- availability: time. The channel state is sampled every `interval`; the time since the
  previous sample is good if the channel was started (accepting traffic), bad otherwise
  (paused, stopped, error).
Amounts go into buckets of `bucket` seconds over `window`, so memory per channel and
objective is window / bucket pairs of numbers. A window of N seconds is the last
ceil(N / bucket) buckets, the current (partial) one included.
"""

from __future__ import annotations

import asyncio
import collections
import fnmatch
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily, Metric

from engine.config.slo import AvailabilityObjective, DeliveryObjective, Objective, SloConfig
from engine.events import Event, Kind

if TYPE_CHECKING:
    from engine.runtime import Engine

log = logging.getLogger("conduit.slo")

# ------------------------------------------------------------------------------ math


def sli(good: float, bad: float) -> float:
    """Share of good events; 1.0 when there were none (nothing failed)."""
    total = good + bad
    return good / total if total else 1.0


def burn_rate(good: float, bad: float, target: float) -> float:
    """How many times faster than sustainable the budget is spent (target in percent)."""
    return (1.0 - sli(good, bad)) / (1.0 - target / 100.0)


def budget_remaining(good: float, bad: float, target: float) -> float:
    """Share of the window's error budget left; negative when overspent."""
    return 1.0 - burn_rate(good, bad, target)


class Rolling:
    """Good and bad amounts in fixed buckets over a window; memory is window / bucket."""

    __slots__ = ("_bucket", "_buckets", "_count")

    def __init__(self, window: float, bucket: float) -> None:
        self._bucket = bucket
        self._count = max(1, math.ceil(window / bucket))
        self._buckets: collections.deque[list[float]] = collections.deque()  # [i, good, bad]

    def add(self, good: float, bad: float, now: float) -> None:
        index = int(now // self._bucket)
        if self._buckets and self._buckets[-1][0] >= index:  # same bucket (or clock stepped)
            self._buckets[-1][1] += good
            self._buckets[-1][2] += bad
            return
        self._buckets.append([index, good, bad])
        while self._buckets[0][0] <= index - self._count:
            self._buckets.popleft()

    def totals(self, last: float, now: float) -> tuple[float, float]:
        """(good, bad) over the last `last` seconds, in whole buckets."""
        current = int(now // self._bucket)
        first = current - min(self._count, max(1, math.ceil(last / self._bucket))) + 1
        good = bad = 0.0
        for index, g, b in self._buckets:
            if first <= index <= current:
                good += g
                bad += b
        return good, bad


@dataclass
class Series:
    """One objective measured on one channel."""

    objective: Objective
    channel: str
    rolling: Rolling
    pending_bad: float = 0.0  # overdue waiting deliveries, provisional (see module doc)

    @property
    def unit(self) -> str:
        return "deliveries" if isinstance(self.objective, DeliveryObjective) else "seconds"


# --------------------------------------------------------------------------- tracker


class ServiceLevels:
    """Every objective on every channel it covers: fed by committed events and by
    periodic samples, read by the page, /metrics and the alert rules."""

    def __init__(self, config: SloConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._series: dict[tuple[str, str], Series] = {}  # (channel, objective)
        self._by_channel: dict[str, list[Series]] = {}
        self._sampled_at: float | None = None
        self._task: asyncio.Task | None = None

    def series(self, channel: str) -> list[Series]:
        """The series of `channel`, created on first sight from the matching objectives."""
        found = self._by_channel.get(channel)
        if found is None:
            found = []
            for objective in self.config.objectives:
                if fnmatch.fnmatchcase(channel, objective.channel):
                    s = Series(objective, channel, Rolling(self.config.window,
                                                           self.config.bucket))
                    self._series[(channel, objective.name)] = s
                    found.append(s)
            self._by_channel[channel] = found
        return found

    def observe(self, events: Iterable[Event], now: float) -> None:
        """Classify each committed delivery outcome (a `Stats` listener)."""
        for e in events:
            if e.kind not in (Kind.SENT, Kind.DEAD_LETTERED) or not e.channel:
                continue
            for s in self.series(e.channel):
                if not isinstance(s.objective, DeliveryObjective):
                    continue
                if e.kind is Kind.DEAD_LETTERED:
                    s.rolling.add(0, 1, now)
                elif "latency_ms" in e.detail:
                    good = e.detail["latency_ms"] / 1000 <= s.objective.within
                    s.rolling.add(1 if good else 0, 0 if good else 1, now)

    def sample(self, states: dict[str, str], waiting: dict[str, list[tuple[int, float | None]]],
               now: float) -> None:
        """Channel states (name -> state) and waiting queues (channel -> [(depth, age of
        the oldest entry)]) at `now`."""
        elapsed = 0.0 if self._sampled_at is None else max(0.0, now - self._sampled_at)
        elapsed = min(elapsed, self.config.window)
        self._sampled_at = now
        for channel, state in states.items():
            for s in self.series(channel):
                if isinstance(s.objective, AvailabilityObjective):
                    if elapsed:
                        up = state == "started"
                        s.rolling.add(elapsed if up else 0.0, 0.0 if up else elapsed, now)
                    continue
                within = s.objective.within
                s.pending_bad = float(sum(depth for depth, age in waiting.get(channel, ())
                                          if age is not None and age > within))

    def totals(self, s: Series, last: float, now: float) -> tuple[float, float]:
        good, bad = s.rolling.totals(last, now)
        return good, bad + s.pending_bad

    def burn_rates(self, windows: Iterable[int], now: float | None = None
                   ) -> list[tuple[str, str, dict[int, tuple[float, float]]]]:
        """(channel, objective, {window: (burn rate, events counted)}) of every series."""
        now = self._clock() if now is None else now
        out = []
        for (channel, name), s in sorted(self._series.items()):
            rates = {}
            for w in windows:
                good, bad = self.totals(s, w, now)
                rates[w] = (burn_rate(good, bad, s.objective.target), good + bad)
            out.append((channel, name, rates))
        return out

    def status(self, now: float | None = None) -> list[dict[str, Any]]:
        """Every series as the status page shows it."""
        now = self._clock() if now is None else now
        out = []
        for (channel, name), s in sorted(self._series.items()):
            good, bad = self.totals(s, self.config.window, now)
            target = s.objective.target
            out.append({
                "channel": channel, "objective": name,
                "kind": type(s.objective).__struct_config__.tag,
                "target": target, "window_s": self.config.window, "unit": s.unit,
                "within_s": getattr(s.objective, "within", None),
                "good": round(good, 3), "bad": round(bad, 3),
                "pending_bad": s.pending_bad,
                "sli": round(sli(good, bad), 6),
                "error_budget_remaining": round(budget_remaining(good, bad, target), 6),
                "burn_rates": {_label(w): round(burn_rate(*self.totals(s, w, now), target), 4)
                               for w in self.config.burn_windows},
            })
        return out

    def metrics(self, now: float | None = None) -> list[Metric]:
        """Gauges for /metrics: SLI, objective, budget left and burn rates."""
        if not self._series:
            return []
        labels = ["channel", "objective"]
        sli_g = GaugeMetricFamily("conduit_slo_sli", "Share of good events over the SLO "
                                  "window (1 when there were none)", labels=labels)
        target_g = GaugeMetricFamily("conduit_slo_objective", "Target share of good events",
                                     labels=labels)
        budget_g = GaugeMetricFamily("conduit_slo_error_budget_remaining", "Share of the "
                                     "window's error budget left (negative: overspent)",
                                     labels=labels)
        burn_g = GaugeMetricFamily("conduit_slo_burn_rate", "Error budget burn rate (1 spends "
                                   "it exactly over the window)", labels=[*labels, "window"])
        for row in self.status(now):
            key = [row["channel"], row["objective"]]
            sli_g.add_metric(key, row["sli"])
            target_g.add_metric(key, row["target"] / 100.0)
            budget_g.add_metric(key, row["error_budget_remaining"])
            for window, rate in row["burn_rates"].items():
                burn_g.add_metric([*key, window], rate)
        return [sli_g, target_g, budget_g, burn_g]

    # -- running in the engine --------------------------------------------------------

    def start(self, engine: Engine) -> None:
        """Listen to committed events and sample the engine every `interval`."""
        if not self.config.objectives or self._task is not None:
            return
        assert engine.services is not None
        engine.services.stats.subscribe(self.observe)
        for name in engine.channels:
            self.series(name)
        self._task = asyncio.get_running_loop().create_task(self._loop(engine), name="slo")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self, engine: Engine) -> None:
        while True:
            try:
                await self._sample_engine(engine)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("service-level sample failed; trying again")
            await asyncio.sleep(self.config.interval)

    async def _sample_engine(self, engine: Engine) -> None:
        wants_queues = any(isinstance(o, DeliveryObjective) for o in self.config.objectives)
        queues = await engine.ops.queue_stats() if wants_queues else {}
        now = self._clock()
        states = {name: c.state.value for name, c in engine.channels.items()}
        waiting: dict[str, list[tuple[int, float | None]]] = {}
        for name, channel in engine.channels.items():
            for worker in channel.workers:
                q = queues.get(worker.key)
                if q is not None:
                    waiting.setdefault(name, []).append(
                        (q.ready + q.leased, now - q.oldest_at if q.oldest_at else None))
        self.sample(states, waiting, now)


def _label(seconds: float) -> str:
    """300 -> "5m": a window as a metric label."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
