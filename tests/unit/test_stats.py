"""Live statistics: windows, per-minute series, latencies, and what events feed them."""

from engine.events import Event, Kind
from engine.ops.stats import LATENCY_BUCKETS, Latencies, MinuteSeries, Stats, Window

T0 = 1_800_000_000.0


def test_window_counts_only_the_recent_seconds():
    w = Window(seconds=300)
    w.add(5, now=T0)
    w.add(2, now=T0 + 200)
    assert w.total(now=T0 + 250) == 7
    assert w.total(last=60, now=T0 + 250) == 2
    w.add(1, now=T0 + 400)  # the first bucket has fallen out of the window
    assert w.total(now=T0 + 400) == 3


def test_minute_series_is_an_hour_of_minutes_oldest_first():
    s = MinuteSeries()
    s.add(3, now=T0)
    s.add(4, now=T0 + 120)
    values = s.values(now=T0 + 120)
    assert len(values) == 60
    assert values[-1] == 4 and values[-3] == 3 and sum(values) == 7
    assert sum(s.values(now=T0 + 3 * 3600)) == 0


def test_latency_percentiles_and_histogram():
    lat = Latencies()
    for i in range(1, 101):
        lat.add(i / 1000, now=T0)
    p50, p99 = lat.percentiles(0.5, 0.99, now=T0)
    assert (p50, p99) == (0.051, 0.1)
    assert lat.cumulative()[-1] == 100
    assert lat.cumulative()[LATENCY_BUCKETS.index(0.01)] == 10
    assert lat.percentiles(0.5, now=T0 + 3600) == [None]


def _events(kind, n, **kw):
    return [Event(kind=kind, channel="adt", **kw) for _ in range(n)]


def test_events_feed_channel_and_destination_counts():
    stats = Stats()
    stats.observe(_events(Kind.RECEIVED, 4) + _events(Kind.REJECTED, 1, detail={
        "reason": "no MSH"}), now=T0)
    stats.observe(_events(Kind.SENT, 3, destination="fhir", detail={"latency_ms": 20.0})
                  + _events(Kind.RETRIED, 1, destination="fhir", detail={"reason": "HTTP 503"}),
                  now=T0 + 1)
    ch = stats.channels["adt"]
    assert ch.counts["received"] == 4 and ch.counts["rejected"] == 1
    assert ch.counts["errored"] == 0  # refused input is not a failure of ours
    assert ch.destinations["fhir"].counts["sent"] == 3
    assert ch.destinations["fhir"].last_error == "HTTP 503"
    assert ch.last_error == "HTTP 503" and ch.last_message_at == T0
    assert ch.latency.percentiles(0.5, now=T0 + 1) == [0.02]
    assert stats.count("sent", "adt", "fhir") == 3
    assert stats.count("received") == 4
