"""Service-level math with a fake clock: SLI, error budget and burn rates over rolling
windows, what counts as good or bad, and what /metrics and the page receive."""

from __future__ import annotations

import msgspec
import pytest

from engine.config.alerts import SloBurnRule
from engine.config.slo import AvailabilityObjective, DeliveryObjective, SloConfig
from engine.config.types import dec_hook
from engine.events import Event, Kind
from engine.ops.alerts import BurnView, Snapshot, evaluate
from engine.ops.slo import (
    Rolling,
    ServiceLevels,
    budget_remaining,
    burn_rate,
    sli,
)

T0 = 1_700_000_040.0  # a whole minute


def sent(channel: str, latency_s: float, destination: str = "fhir") -> Event:
    return Event(kind=Kind.SENT, channel=channel, destination=destination,
                 detail={"latency_ms": latency_s * 1000})


def dead(channel: str) -> Event:
    return Event(kind=Kind.DEAD_LETTERED, channel=channel, destination="fhir",
                 detail={"reason": "HTTP 400"})


def levels(*objectives, window: float = 3600, bucket: float = 60) -> ServiceLevels:
    config = SloConfig(window=window, bucket=bucket, burn_windows=(300, 3600),
                       objectives=list(objectives))
    return ServiceLevels(config, clock=lambda: T0)


DELIVERY = DeliveryObjective(name="delivered-60s", target=99.9, within=60)
ACCEPTING = AvailabilityObjective(name="accepting", channel="adt", target=99.0)


def test_sli_budget_and_burn_rate():
    assert sli(999, 1) == pytest.approx(0.999)
    assert burn_rate(999, 1, 99.9) == pytest.approx(1.0)  # exactly on budget
    assert budget_remaining(999, 1, 99.9) == pytest.approx(0.0)
    assert burn_rate(9990, 5, 99.9) == pytest.approx(0.5, rel=1e-3)
    assert budget_remaining(9990, 5, 99.9) == pytest.approx(0.5, rel=1e-3)
    assert burn_rate(98, 2, 99.9) == pytest.approx(20.0)
    assert budget_remaining(98, 2, 99.9) == pytest.approx(-19.0)  # overspent shows as such
    assert (sli(0, 0), burn_rate(0, 0, 99.9), budget_remaining(0, 0, 99.9)) == (1.0, 0.0, 1.0)


def test_rolling_window_is_whole_buckets_and_memory_bounded():
    rolling = Rolling(window=300, bucket=60)
    for i in range(100):
        rolling.add(1, 0, T0 + i * 60)
    rolling.add(0, 2, T0 + 99 * 60 + 30)
    now = T0 + 99 * 60 + 30
    assert rolling.totals(300, now) == (5, 2)  # the current bucket and the four before
    assert rolling.totals(60, now) == (1, 2)
    assert rolling.totals(10_000, now) == (5, 2)  # never more than the window
    assert len(rolling._buckets) == 5
    assert rolling.totals(300, now + 600) == (0, 0)  # everything aged out


def test_deliveries_are_good_within_the_threshold_bad_late_or_dead():
    slo = levels(DELIVERY)
    slo.observe([sent("adt", 0.2), sent("adt", 59.9), sent("adt", 61), dead("adt"),
                 sent("lab", 0.1), Event(kind=Kind.RECEIVED, channel="adt")], T0)
    [adt, lab] = slo.status(T0)
    assert (adt["channel"], adt["good"], adt["bad"]) == ("adt", 2, 2)
    assert adt["sli"] == 0.5 and adt["unit"] == "deliveries"
    assert adt["error_budget_remaining"] == pytest.approx(1 - 0.5 / 0.001)
    assert (lab["good"], lab["bad"], lab["sli"]) == (1, 0, 1.0)


def test_objectives_cover_only_matching_channels():
    slo = levels(DELIVERY, ACCEPTING)
    assert [s.objective.name for s in slo.series("adt")] == ["delivered-60s", "accepting"]
    assert [s.objective.name for s in slo.series("lab")] == ["delivered-60s"]


def test_overdue_waiting_entries_count_bad_while_they_wait_and_once_after():
    slo = levels(DELIVERY)
    slo.observe([sent("adt", 1)] * 97, T0)
    slo.sample({"adt": "started"}, {"adt": [(3, 90.0), (5, 10.0)]}, T0 + 1)
    [row] = slo.status(T0 + 1)
    assert (row["good"], row["bad"], row["pending_bad"]) == (97, 3, 3)
    # They leave the queue late: counted once, by their own events.
    slo.observe([sent("adt", 95)] * 3, T0 + 2)
    slo.sample({"adt": "started"}, {"adt": [(0, None), (5, 12.0)]}, T0 + 3)
    [row] = slo.status(T0 + 3)
    assert (row["good"], row["bad"], row["pending_bad"]) == (97, 3, 0)


def test_availability_is_the_share_of_sampled_time_the_channel_accepted():
    slo = levels(ACCEPTING)
    slo.sample({"adt": "started"}, {}, T0)  # the first sample only starts the clock
    slo.sample({"adt": "started"}, {}, T0 + 90)
    slo.sample({"adt": "paused"}, {}, T0 + 100)
    slo.sample({"adt": "stopped"}, {}, T0 + 110)
    slo.sample({"adt": "started"}, {}, T0 + 200)
    [row] = slo.status(T0 + 200)
    assert (row["good"], row["bad"], row["unit"]) == (180, 20, "seconds")
    assert row["sli"] == pytest.approx(0.9)


def test_burn_rate_over_short_and_long_windows():
    slo = levels(DELIVERY)
    for minute in range(60):  # an hour of traffic: 1000 a minute, on budget
        slo.observe([sent("adt", 1)] * 999 + [sent("adt", 120)], T0 + minute * 60)
    for minute in range(55, 60):  # the last five minutes go bad: 5 % late
        slo.observe([sent("adt", 120)] * 50, T0 + minute * 60)
    now = T0 + 59 * 60 + 30
    [(channel, objective, rates)] = slo.burn_rates([300, 3600], now)
    assert (channel, objective) == ("adt", "delivered-60s")
    short, short_events = rates[300]
    long, long_events = rates[3600]
    assert short_events == 5250 and short == pytest.approx((255 / 5250) / 0.001)
    assert long_events == 60_250 and long == pytest.approx((310 / 60_250) / 0.001)
    [row] = slo.status(now)
    assert row["burn_rates"] == {"5m": round(short, 4), "1h": round(long, 4)}
    # What the alert rule does with it: both windows over 4, so it holds; over 14.4, not.
    views = [BurnView(c, o, r) for c, o, r in slo.burn_rates([300, 3600], now)]
    snap = Snapshot(now, T0, burns=views)
    fast = SloBurnRule(name="burn", factor=4)
    slow = SloBurnRule(name="burn", factor=14.4)
    assert evaluate([fast], snap)[0][1].holds
    assert not evaluate([slow], snap)[0][1].holds


def test_metrics_families_for_prometheus():
    slo = levels(DELIVERY)
    slo.observe([sent("adt", 1)] * 999 + [dead("adt")], T0)
    families = {f.name: f for f in slo.metrics(T0)}
    assert set(families) == {"conduit_slo_sli", "conduit_slo_objective",
                             "conduit_slo_error_budget_remaining", "conduit_slo_burn_rate"}
    [value] = families["conduit_slo_sli"].samples
    assert value.labels == {"channel": "adt", "objective": "delivered-60s"}
    assert value.value == pytest.approx(0.999)
    assert families["conduit_slo_objective"].samples[0].value == pytest.approx(0.999)
    assert families["conduit_slo_error_budget_remaining"].samples[0].value == pytest.approx(0)
    burns = {s.labels["window"]: s.value for s in families["conduit_slo_burn_rate"].samples}
    assert burns == {"5m": pytest.approx(1.0), "1h": pytest.approx(1.0)}
    assert levels().metrics(T0) == []


def test_config_from_yaml_values_and_limits():
    config = msgspec.convert({"window": "1h", "bucket": "30s", "objectives": [
        {"name": "fast", "kind": "delivery", "channel": "adt", "target": 99.9, "within": "60s"},
        {"name": "up", "kind": "availability", "target": 99.95},
    ]}, SloConfig, dec_hook=dec_hook)
    assert (config.window, config.bucket) == (3600, 30)
    assert [type(o).__name__ for o in config.objectives] == ["DeliveryObjective",
                                                             "AvailabilityObjective"]
    with pytest.raises(msgspec.ValidationError, match="at most"):
        msgspec.convert({"window": "30d", "bucket": "1s"}, SloConfig, dec_hook=dec_hook)
    with pytest.raises(msgspec.ValidationError, match="unique"):
        msgspec.convert({"objectives": [{"name": "a", "kind": "availability",
                                         "target": 99}] * 2}, SloConfig, dec_hook=dec_hook)
