"""Live statistics of channels and destinations, fed by committed events.

Everything the status page, /metrics, alerts and service levels show is derived here
from the same events the audit trail records, so the page never claims a delivery the
audit trail does not hold. Memory is bounded: per-second buckets for five minutes,
per-minute buckets for an hour, and at most a few thousand latency samples.
"""

from __future__ import annotations

import bisect
import collections
import logging
import time
from collections.abc import Callable, Iterable

from engine.events import Event, Kind
from engine.store.totals import FIELDS_DROPPED

log = logging.getLogger("conduit.stats")

RECENT_SECONDS = 300
SERIES_MINUTES = 60
LATENCY_SAMPLES = 5000
# Upper bounds (seconds) of the delivery latency histogram exported to Prometheus.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                   60.0, 300.0, 900.0, 3600.0)

# The counts an operator reads, and which event kinds feed each.
COUNTED = {
    Kind.RECEIVED: "received",
    Kind.FILTERED: "filtered",
    Kind.DUPLICATE: "duplicate",
    Kind.CONTROL_ID_REUSED: "control_id_reused",
    Kind.QUEUED: "queued",
    Kind.SENT: "sent",
    Kind.ERRORED: "errored",
    Kind.REJECTED: "rejected",
    Kind.DEAD_LETTERED: "dead_lettered",
    Kind.RETRIED: "retried",
}
# Kinds also counted per destination.
DESTINATION_KINDS = (Kind.SENT, Kind.RETRIED, Kind.DEAD_LETTERED, Kind.QUEUED)
# Kinds whose events are looked at one by one (Stats._observe_one), not only counted.
_ERROR_KINDS = (Kind.ERRORED, Kind.REJECTED, Kind.RETRIED, Kind.DEAD_LETTERED)
_ONE_BY_ONE = frozenset({Kind.MAPPED, Kind.SENT, *_ERROR_KINDS})


class Window:
    """Counts in one-second buckets over the last `seconds`."""

    __slots__ = ("_buckets", "_seconds")

    def __init__(self, seconds: int = RECENT_SECONDS) -> None:
        self._seconds = seconds
        self._buckets: collections.deque[list[int]] = collections.deque()  # [second, n]

    def add(self, n: int = 1, now: float | None = None) -> None:
        second = int(now if now is not None else time.time())
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += n
        else:
            self._buckets.append([second, n])
            self._trim(second)

    def _trim(self, second: int) -> None:
        while self._buckets and self._buckets[0][0] <= second - self._seconds:
            self._buckets.popleft()

    def total(self, last: int | None = None, now: float | None = None) -> int:
        """Count over the last `last` seconds (default: the whole window)."""
        since = int(now if now is not None else time.time()) - (last or self._seconds)
        return sum(n for second, n in self._buckets if second > since)


class MinuteSeries:
    """Counts per minute for the last hour, for sparklines."""

    __slots__ = ("_minutes",)

    def __init__(self) -> None:
        self._minutes: collections.deque[list[int]] = collections.deque()

    def add(self, n: int = 1, now: float | None = None) -> None:
        minute = int((now if now is not None else time.time()) // 60)
        if self._minutes and self._minutes[-1][0] == minute:
            self._minutes[-1][1] += n
            return
        self._minutes.append([minute, n])
        while self._minutes and self._minutes[0][0] <= minute - SERIES_MINUTES:
            self._minutes.popleft()

    def values(self, now: float | None = None) -> list[int]:
        """SERIES_MINUTES counts, oldest first, the current minute last."""
        current = int((now if now is not None else time.time()) // 60)
        by_minute = dict(map(tuple, self._minutes))
        return [by_minute.get(m, 0) for m in range(current - SERIES_MINUTES + 1, current + 1)]


class Latencies:
    """Recent delivery latencies (seconds) for percentiles, and a cumulative histogram."""

    __slots__ = ("_samples", "buckets", "count", "sum")

    def __init__(self) -> None:
        self._samples: collections.deque[tuple[float, float]] = collections.deque(
            maxlen=LATENCY_SAMPLES)
        self.buckets = [0] * len(LATENCY_BUCKETS)
        self.count = 0
        self.sum = 0.0

    def add(self, seconds: float, now: float) -> None:
        self._samples.append((now, seconds))
        self.count += 1
        self.sum += seconds
        i = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        if i < len(self.buckets):
            self.buckets[i] += 1

    def percentiles(self, *qs: float, now: float | None = None) -> list[float | None]:
        """Percentiles over the last five minutes' samples; None when there are none."""
        since = (now if now is not None else time.time()) - RECENT_SECONDS
        values = sorted(v for t, v in self._samples if t > since)
        if not values:
            return [None] * len(qs)
        return [values[min(len(values) - 1, int(q * len(values)))] for q in qs]

    def cumulative(self) -> list[int]:
        out, running = [], 0
        for n in self.buckets:
            running += n
            out.append(running)
        return out


class DestinationStats:
    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.recent: dict[str, Window] = collections.defaultdict(Window)
        self.latency = Latencies()
        self.last_error: str | None = None
        self.last_error_at: float | None = None


class ChannelStats:
    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.recent: dict[str, Window] = collections.defaultdict(Window)
        self.series: dict[str, MinuteSeries] = collections.defaultdict(MinuteSeries)
        self.latency = Latencies()
        self.destinations: dict[str, DestinationStats] = collections.defaultdict(
            DestinationStats)
        self.last_message_at: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    def throughput(self, seconds: int = 10, now: float | None = None) -> float:
        """Messages received per second over the last `seconds`."""
        return self.recent["received"].total(seconds, now) / seconds


class Stats:
    """Statistics of every channel, fed by `observe` after each commit."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self.channels: dict[str, ChannelStats] = collections.defaultdict(ChannelStats)
        # Every committed event by (kind, channel, destination), admin ones included.
        self.events: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self._listeners: list[Callable[[list[Event], float], None]] = []

    def subscribe(self, listener: Callable[[list[Event], float], None]) -> None:
        """Also hand every committed batch to `listener`, for figures kept elsewhere
        (service levels classify each delivery against their own thresholds)."""
        self._listeners.append(listener)

    def count(self, kind: str, channel: str | None = None, destination: str | None = None
              ) -> int:
        """Committed events of `kind` since start, optionally of one channel/destination."""
        return sum(n for (k, c, d), n in self.events.items()
                   if k == kind and channel in (None, c) and destination in (None, d))

    def seed(self, totals: Iterable[tuple[str, str, str, int]]) -> None:
        """Add counts the audit trail already holds (kind, channel, destination, n), so
        the counts an operator reads do not go back to zero when the engine restarts."""
        kinds = {k.value: k for k in Kind}
        for kind, channel, destination, n in totals:
            if kind == FIELDS_DROPPED:
                self.channels[channel].counts["fields_dropped"] += n
                continue
            self.events[(kind, channel, destination)] += n
            known = kinds.get(kind)
            name = COUNTED.get(known) if known is not None else None
            if name is None or not channel:
                continue
            ch = self.channels[channel]
            ch.counts[name] += n
            if destination and known in DESTINATION_KINDS:
                ch.destinations[destination].counts[name] += n

    def observe(self, events: Iterable[Event], now: float | None = None) -> None:
        now = now if now is not None else time.time()
        if self._listeners:
            events = list(events)
            for listener in self._listeners:
                try:
                    listener(events, now)
                except Exception:  # a listener's bug must not stop the writer's callback
                    log.exception("statistics listener failed")
        # Counts per (kind, channel, destination) first, then each counter moved once:
        # a writer batch holds a few kinds of event for many messages.
        groups: collections.Counter[tuple[Kind, str, str]] = collections.Counter()
        for e in events:
            groups[(e.kind, e.channel or "", e.destination or "")] += 1
            if e.kind in _ONE_BY_ONE and e.channel:
                self._observe_one(e, now)
        for (kind, channel, destination), n in groups.items():
            self.events[(kind.value, channel, destination)] += n
            name = COUNTED.get(kind)
            if name is None or not channel:
                continue
            ch = self.channels[channel]
            ch.counts[name] += n
            ch.recent[name].add(n, now)
            ch.series[name].add(n, now)
            if kind is Kind.RECEIVED:
                ch.last_message_at = now
            if destination and kind in DESTINATION_KINDS:
                dest = ch.destinations[destination]
                dest.counts[name] += n
                dest.recent[name].add(n, now)

    def _observe_one(self, e: Event, now: float) -> None:
        """What an event brings beyond its count: fields left behind, a latency, an error."""
        ch = self.channels[e.channel]
        if e.kind is Kind.MAPPED:
            if "left_behind" in e.detail:
                dropped = len(e.detail["left_behind"])
                ch.counts["fields_dropped"] += dropped
                ch.recent["fields_dropped"].add(dropped, now)
            return
        if e.kind is Kind.SENT:
            if e.destination and "latency_ms" in e.detail:
                seconds = e.detail["latency_ms"] / 1000
                ch.destinations[e.destination].latency.add(seconds, now)
                ch.latency.add(seconds, now)
            return
        ch.last_error, ch.last_error_at = str(e.detail.get("reason", e.kind.value)), now
        if e.destination and e.kind in DESTINATION_KINDS:
            dest = ch.destinations[e.destination]
            dest.last_error, dest.last_error_at = ch.last_error, now
