"""/metrics in the Prometheus text format, built at scrape time from the live stats and
queue counts (nothing is counted twice, and a scrape costs one cached queue query)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from engine.ops.stats import LATENCY_BUCKETS, Stats


class _Snapshot:
    """A one-scrape collector over the engine's state."""

    def __init__(self, stats: Stats, channels: dict[str, Any], queues: dict[str, Any],
                 extra: list[Metric]) -> None:
        self._stats = stats
        self._channels = channels
        self._queues = queues
        self._extra = extra

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "conduit_messages", "Message hops by channel and kind",
            labels=["channel", "kind"])
        deliveries = CounterMetricFamily(
            "conduit_deliveries", "Delivery outcomes by destination",
            labels=["channel", "destination", "outcome"])
        latency = HistogramMetricFamily(
            "conduit_delivery_latency_seconds",
            "From receipt to the destination's confirmation",
            labels=["channel", "destination"])
        for name, ch in self._stats.channels.items():
            for kind, n in ch.counts.items():
                events.add_metric([name, kind], n)
            for dest_name, dest in ch.destinations.items():
                for outcome in ("sent", "retried", "dead_lettered"):
                    deliveries.add_metric([name, dest_name, outcome], dest.counts[outcome])
                cumulative = dest.latency.cumulative()
                buckets = [(str(b), c) for b, c in zip(LATENCY_BUCKETS, cumulative,
                                                       strict=True)]
                buckets.append(("+Inf", dest.latency.count))
                latency.add_metric([name, dest_name], buckets, dest.latency.sum)
        yield events
        yield deliveries
        yield latency
        up = GaugeMetricFamily("conduit_channel_state", "1 for the channel's current state",
                               labels=["channel", "state"])
        for name, state in self._channels.items():
            for candidate in ("started", "paused", "stopped", "error"):
                up.add_metric([name, candidate], 1.0 if state == candidate else 0.0)
        yield up
        depth = GaugeMetricFamily("conduit_queue_depth", "Entries waiting or in flight",
                                  labels=["channel", "destination"])
        dead = GaugeMetricFamily("conduit_queue_dead", "Dead letters",
                                 labels=["channel", "destination"])
        oldest = GaugeMetricFamily("conduit_queue_oldest_age_seconds",
                                   "Age of the oldest waiting entry",
                                   labels=["channel", "destination"])
        for key, q in self._queues.items():
            channel, _, dest = key.partition("/")
            depth.add_metric([channel, dest], q["depth"])
            dead.add_metric([channel, dest], q["dead"])
            oldest.add_metric([channel, dest], q["oldest_age_s"] or 0.0)
        yield depth
        yield dead
        yield oldest
        yield from self._extra


def render(stats: Stats, channels: dict[str, Any], queues: dict[str, Any],
           extra: list[Metric] | None = None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(stats, channels, queues, extra or []))
    return generate_latest(registry)
