"""Alert rules on snapshots with a fake clock: each kind fires once, repeats at its
interval, clears; silence respects hours, days and time zone; what the webhook, the audit
trail and the status page receive."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import msgspec
import pytest

from engine.config.alerts import (
    AlertsConfig,
    ChannelStateRule,
    ControlIdReusedRule,
    ErrorRateRule,
    QueueAgeRule,
    QueueDepthRule,
    SilenceRule,
    SloBurnRule,
)
from engine.config.types import dec_hook
from engine.events import Kind
from engine.ops.alerts import (
    Alerting,
    BurnView,
    ChannelView,
    QueueView,
    Snapshot,
    Tracker,
    active_since,
    evaluate,
    human,
    reconcile,
)

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
T0 = 1_700_000_000.0


def chicago(day: int, hour: int, minute: int = 0) -> float:
    """Epoch seconds of March `day` 2024, local Chicago time (March 4 is a Monday)."""
    return dt.datetime(2024, 3, day, hour, minute, tzinfo=CHICAGO).timestamp()


def queues(depth: int = 0, age: float | None = None) -> Snapshot:
    return Snapshot(T0, T0 - 3600, channels={"adt": ChannelView("started")},
                    queues={"adt/fhir": QueueView(depth, age), "adt/files": QueueView(0)})


def step(tracker: Tracker, rules, snap: Snapshot, now: float | None = None):
    return [(n.state, n.reading.subject) for n in
            tracker.step(evaluate(rules, snap), snap.now if now is None else now)]


# ------------------------------------------------------------------ fire, repeat, clear


def test_queue_depth_fires_once_repeats_at_the_interval_and_clears():
    rule = QueueDepthRule(name="deep", threshold=10, repeat=60)
    tracker = Tracker(default_repeat=3600)
    assert step(tracker, [rule], queues(5), T0) == []
    assert step(tracker, [rule], queues(11), T0 + 5) == [("fired", "adt/fhir")]
    assert step(tracker, [rule], queues(50), T0 + 10) == []
    assert step(tracker, [rule], queues(50), T0 + 64) == []
    assert step(tracker, [rule], queues(50), T0 + 65) == [("repeated", "adt/fhir")]
    assert step(tracker, [rule], queues(50), T0 + 100) == []
    assert step(tracker, [rule], queues(50), T0 + 125) == [("repeated", "adt/fhir")]
    assert step(tracker, [rule], queues(10), T0 + 130) == [("cleared", "adt/fhir")]
    assert step(tracker, [rule], queues(0), T0 + 135) == []
    assert tracker.active == {}


def test_repeat_defaults_to_the_alerts_setting_and_zero_never_repeats():
    tracker = Tracker(default_repeat=30)
    default = QueueDepthRule(name="deep", threshold=0)
    never = QueueDepthRule(name="never", threshold=0, repeat=0)
    step(tracker, [default, never], queues(1), T0)
    assert step(tracker, [default, never], queues(1), T0 + 30) == [("repeated", "adt/fhir")]
    assert step(tracker, [never], queues(1), T0 + 10_000) == [("cleared", "adt/fhir")]


def test_cleared_notification_carries_the_current_value_and_the_first_fire_time():
    rule = QueueDepthRule(name="deep", threshold=10)
    tracker = Tracker(3600)
    tracker.step(evaluate([rule], queues(20)), T0)
    [cleared] = tracker.step(evaluate([rule], queues(3)), T0 + 40)
    assert (cleared.state, cleared.reading.value, cleared.since, cleared.at) == (
        "cleared", 3, T0, T0 + 40)


def test_a_subject_that_disappears_clears():
    rule = ChannelStateRule(name="down")
    tracker = Tracker(3600)
    snap = Snapshot(T0, T0, channels={"adt": ChannelView("stopped")})
    assert step(tracker, [rule], snap) == [("fired", "adt")]
    assert step(tracker, [rule], Snapshot(T0 + 5, T0)) == [("cleared", "adt")]


def test_a_removed_rule_clears_its_alerts():
    rule = QueueDepthRule(name="deep", threshold=0)
    tracker = Tracker(3600)
    step(tracker, [rule], queues(1))
    assert step(tracker, [], queues(1), T0 + 5) == [("cleared", "adt/fhir")]


# ------------------------------------------------------------------------- rule kinds


def test_queue_age_per_destination_or_pattern():
    snap = queues(3, age=700)
    exact = QueueAgeRule(name="old", destination="adt/fhir", threshold=600)
    pattern = QueueAgeRule(name="any", destination="adt/*", threshold=600)
    younger = QueueAgeRule(name="young", destination="*", threshold=800)
    readings = {(rule.name, r.subject): r.holds
                for rule, r in evaluate([exact, pattern, younger], snap)}
    assert readings == {("old", "adt/fhir"): True, ("any", "adt/fhir"): True,
                        ("any", "adt/files"): False, ("young", "adt/fhir"): False,
                        ("young", "adt/files"): False}
    [(_, reading)] = evaluate([exact], snap)
    assert (reading.channel, reading.destination, reading.unit) == ("adt", "fhir", "seconds")


def test_error_rate_over_threshold_with_enough_messages():
    rule = ErrorRateRule(name="errors", threshold=5, window=60, min_received=10)

    def snap(received: int, failed: int) -> Snapshot:
        return Snapshot(T0, T0, channels={"adt": ChannelView(
            "started", received={60: received}, failed={60: failed})})

    tracker = Tracker(3600)
    assert step(tracker, [rule], snap(100, 5)) == []  # 5 % is not over 5 %
    assert step(tracker, [rule], snap(9, 9), T0 + 1) == []  # too few to be a rate
    assert step(tracker, [rule], snap(100, 6), T0 + 2) == [("fired", "adt")]
    [(_, reading)] = evaluate([rule], snap(100, 6))
    assert (reading.value, reading.threshold, reading.unit) == (6.0, 5, "percent")
    assert step(tracker, [rule], snap(100, 1), T0 + 3) == [("cleared", "adt")]


def test_error_rate_window_is_limited_to_what_stats_keep():
    with pytest.raises(ValueError, match="error_rate window"):
        ErrorRateRule(name="errors", threshold=5, window=600)


def test_control_id_reused_fires_over_its_threshold_in_the_window():
    rule = ControlIdReusedRule(name="reused", window=60)  # threshold 0: any reuse

    def snap(reused: int) -> Snapshot:
        return Snapshot(T0, T0, channels={"adt": ChannelView("started", reused={60: reused}),
                                          "lab": ChannelView("started")})

    tracker = Tracker(3600)
    assert step(tracker, [rule], snap(0)) == []
    assert step(tracker, [rule], snap(2), T0 + 1) == [("fired", "adt")]
    assert step(tracker, [rule], snap(0), T0 + 2) == [("cleared", "adt")]
    tolerant = ControlIdReusedRule(name="some", threshold=5, window=60)
    assert [r.holds for _, r in evaluate([tolerant], snap(5))] == [False, False]
    with pytest.raises(ValueError, match="control_id_reused window"):
        ControlIdReusedRule(name="reused", window=600)


def test_channel_state_stopped_or_error_by_default_paused_when_asked():
    snap = Snapshot(T0, T0, channels={"a": ChannelView("started"), "b": ChannelView("paused"),
                                      "c": ChannelView("stopped"), "d": ChannelView("error")})
    default = ChannelStateRule(name="down")
    paused = ChannelStateRule(name="paused", channel="b", states=("paused",))
    held = [(rule.name, r.subject) for rule, r in evaluate([default, paused], snap) if r.holds]
    assert held == [("down", "c"), ("down", "d"), ("paused", "b")]


def test_silence_counts_only_within_hours_days_and_time_zone():
    rule = SilenceRule(name="quiet", channel="adt", after=1800, hours="07:00-19:00",
                       days=("mon", "tue", "wed", "thu", "fri"), timezone="America/Chicago")
    friday_evening = chicago(1, 18, 50)
    tracker = Tracker(3600)

    def at(now: float, last: float | None = friday_evening, state: str = "started"):
        snap = Snapshot(now, started_at=chicago(1, 0), channels={"adt": ChannelView(
            state, last_message_at=last)})
        return step(tracker, [rule], snap)

    assert at(chicago(2, 12)) == []  # Saturday: nobody sends, nobody is paged
    assert at(chicago(4, 6, 59)) == []  # Monday before hours
    assert at(chicago(4, 7, 29)) == []  # silence counts from 07:00, not from Friday
    assert at(chicago(4, 7, 30)) == [("fired", "adt")]
    assert at(chicago(4, 7, 31), last=chicago(4, 7, 31)) == [("cleared", "adt")]
    assert at(chicago(4, 8, 0), last=chicago(4, 7, 31)) == []
    assert at(chicago(4, 8, 1), last=chicago(4, 7, 31)) == [("fired", "adt")]
    assert at(chicago(4, 19, 0), last=chicago(4, 7, 31)) == [("cleared", "adt")]
    # The same instants read in UTC: 06:30 in Chicago is 12:30 UTC, 18:30 is 00:30.
    utc = msgspec.structs.replace(rule, timezone="UTC")

    def holds(r: SilenceRule, now: float) -> bool:
        snap = Snapshot(now, chicago(1, 0), channels={"adt": ChannelView(
            "started", last_message_at=friday_evening)})
        return evaluate([r], snap)[0][1].holds

    assert not holds(rule, chicago(5, 6, 30)) and holds(utc, chicago(5, 6, 30))
    assert holds(rule, chicago(5, 18, 30)) and not holds(utc, chicago(5, 18, 30))


def test_silence_ignores_channels_that_are_not_started_and_counts_from_engine_start():
    rule = SilenceRule(name="quiet", after=600)
    paused = Snapshot(T0 + 3600, T0, channels={"adt": ChannelView("paused")})
    [(_, reading)] = evaluate([rule], paused)
    assert not reading.holds
    started = Snapshot(T0 + 599, T0, channels={"adt": ChannelView("started")})
    assert not evaluate([rule], started)[0][1].holds
    started = Snapshot(T0 + 600, T0, channels={"adt": ChannelView("started")})
    assert evaluate([rule], started)[0][1].holds


def test_silence_all_day_every_day_is_not_reset_at_midnight():
    rule = SilenceRule(name="quiet", after=3 * 3600, timezone="America/Chicago")
    now = chicago(6, 1, 0)
    assert active_since(rule, now) <= chicago(5, 22, 0)
    snap = Snapshot(now, chicago(1, 0), channels={"adt": ChannelView(
        "started", last_message_at=chicago(5, 21, 0))})
    assert evaluate([rule], snap)[0][1].value == 4 * 3600


def test_silence_hours_may_cross_midnight():
    rule = SilenceRule(name="night", after=60, hours="22:00-06:00", days=("fri",),
                       timezone="America/Chicago")
    assert active_since(rule, chicago(1, 23, 0)) == chicago(1, 22, 0)  # Friday night
    assert active_since(rule, chicago(2, 5, 0)) == chicago(1, 22, 0)  # Saturday morning
    assert active_since(rule, chicago(2, 23, 0)) is None  # Saturday night is not Friday's
    assert active_since(rule, chicago(1, 21, 0)) is None


def test_silence_rejects_unknown_time_zones_and_bad_hours():
    with pytest.raises(ValueError, match="unknown time zone"):
        SilenceRule(name="q", after=60, timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="hours"):
        SilenceRule(name="q", after=60, hours="25:00-26:00")


def test_slo_burn_needs_both_windows_and_enough_events():
    rule = SloBurnRule(name="burn", factor=14.4, window=3600, short_window=300, min_events=10)

    def snap(long: float, short: float, events: float = 1000) -> Snapshot:
        return Snapshot(T0, T0, burns=[BurnView("adt", "delivered", {
            3600: (long, events), 300: (short, events / 12)})])

    held = lambda s: [(r.subject, r.value) for _, r in evaluate([rule], s) if r.holds]  # noqa: E731
    assert held(snap(20, 30)) == [("adt:delivered", 20)]
    assert held(snap(20, 2)) == []  # already recovering: the short window says so
    assert held(snap(5, 30)) == []
    assert held(snap(20, 30, events=5)) == []
    other = msgspec.structs.replace(rule, objective="accepting")
    assert evaluate([other], snap(20, 30)) == []


# ----------------------------------------------------------------------- config


def test_config_rules_by_kind_and_unique_names():
    config = msgspec.convert({"interval": "2s", "rules": [
        {"name": "deep", "kind": "queue_depth", "threshold": 100},
        {"name": "quiet", "kind": "silence", "channel": "adt", "after": "30m",
         "hours": "07:00-19:00", "days": ["mon", "fri"], "timezone": "America/Chicago"},
    ]}, AlertsConfig, dec_hook=dec_hook)
    assert config.interval == 2
    assert [type(r).__name__ for r in config.rules] == ["QueueDepthRule", "SilenceRule"]
    assert config.rules[1].after == 1800
    with pytest.raises(msgspec.ValidationError, match="unique"):
        msgspec.convert({"rules": [{"name": "a", "kind": "channel_state"}] * 2},
                        AlertsConfig, dec_hook=dec_hook)


# ------------------------------------------------------------- webhook, audit, page


class FakeWebhook:
    address = "http://receiver.test/hook"

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.failing = False

    async def post(self, payload: dict) -> None:
        if self.failing:
            raise ConnectionError("refused")
        self.received.append(payload)

    async def close(self) -> None:
        pass


class Clocked:
    """A snapshot source the test moves by hand."""

    def __init__(self) -> None:
        self.snap = queues(0)

    async def __call__(self) -> Snapshot:
        return self.snap


async def test_notifications_go_to_webhook_audit_and_page():
    config = AlertsConfig(repeat=60, rules=[
        QueueDepthRule(name="deep", threshold=10, severity="critical")])
    source, hook, audited = Clocked(), FakeWebhook(), []

    async def record(notes):
        audited.extend(n.event() for n in notes)

    alerting = Alerting(config, source, record, hook, host="engine-1")  # type: ignore[arg-type]
    await alerting.run_once()
    source.snap = Snapshot(T0 + 5, T0, queues={"adt/fhir": QueueView(25, 40.0)})
    await alerting.run_once()
    [active] = alerting.active()
    assert active["rule"] == "deep" and active["subject"] == "adt/fhir"
    assert active["value"] == 25 and active["since"] == T0 + 5
    source.snap = Snapshot(T0 + 9, T0, queues={"adt/fhir": QueueView(2, 1.0)})
    await alerting.run_once()
    assert alerting.active() == []

    fired, cleared = hook.received
    assert fired == {
        "source": "conduit", "host": "engine-1", "rule": "deep", "kind": "queue_depth",
        "severity": "critical", "state": "fired", "subject": "adt/fhir", "channel": "adt",
        "destination": "fhir", "value": 25, "threshold": 10, "unit": "entries",
        "since": "2023-11-14T22:13:25+00:00", "at": "2023-11-14T22:13:25+00:00",
        "message": "deep fired: queue depth of adt/fhir is 25 entries (threshold 10 entries)",
    }
    assert cleared["state"] == "cleared" and cleared["value"] == 2
    assert cleared["since"] == fired["since"] and cleared["at"] == "2023-11-14T22:13:29+00:00"
    assert [(e.kind, e.actor, e.channel, e.destination, e.detail["state"]) for e in audited] == [
        (Kind.ALERT, "engine", "adt", "fhir", "fired"),
        (Kind.ALERT, "engine", "adt", "fhir", "cleared")]
    assert audited[0].detail == {"rule": "deep", "kind": "queue_depth", "state": "fired",
                                 "subject": "adt/fhir", "value": 25, "threshold": 10,
                                 "unit": "entries", "severity": "critical"}


async def test_a_failing_webhook_is_retried_in_order_and_never_raises(caplog):
    config = AlertsConfig(rules=[QueueDepthRule(name="deep", threshold=0)])
    source, hook = Clocked(), FakeWebhook()

    async def broken_audit(notes):
        raise RuntimeError("store down")

    alerting = Alerting(config, source, broken_audit, hook)  # type: ignore[arg-type]
    hook.failing = True
    source.snap = Snapshot(T0, T0, queues={"adt/fhir": QueueView(3)})
    assert [n.state for n in await alerting.run_once()] == ["fired"]
    source.snap = Snapshot(T0 + 5, T0, queues={"adt/fhir": QueueView(0)})
    assert [n.state for n in await alerting.run_once()] == ["cleared"]
    assert hook.received == []
    assert "will be retried" in caplog.text and "could not audit" in caplog.text
    hook.failing = False
    assert await alerting.run_once() == []
    assert [p["state"] for p in hook.received] == ["fired", "cleared"]


# ------------------------------------------------- a process that starts speaking


FHIR_DEEP = QueueDepthRule(name="fhir-deep", destination="adt/fhir", threshold=10)
FILES_DEEP = QueueDepthRule(name="files-deep", destination="adt/files", threshold=10)


def depths(fhir: int, files: int, at: float) -> Snapshot:
    return Snapshot(at, T0 - 3600, queues={"adt/fhir": QueueView(fhir),
                                           "adt/files": QueueView(files)})


def speak(tracker: Tracker, snap: Snapshot, told: dict) -> list[tuple[str, str, float]]:
    """The first round of a process that takes over: (state, rule, value) it sends."""
    readings = evaluate([FHIR_DEEP, FILES_DEEP], snap)
    notes = reconcile(tracker.step(readings, snap.now), tracker.active, readings, told,
                      snap.now)
    return sorted((n.state, n.rule, n.reading.value) for n in notes)


def test_taking_over_sends_what_changed_while_nobody_spoke():
    tracker = Tracker(3600)  # a silent process, tracking
    [fhir_fired] = tracker.step(evaluate([FHIR_DEEP, FILES_DEEP], depths(20, 0, T0)), T0)
    told = {("fhir-deep", "adt/fhir"): fhir_fired}  # the speaker sent it, then died
    tracker.step(evaluate([FHIR_DEEP, FILES_DEEP], depths(2, 30, T0 + 5)), T0 + 5)
    assert speak(tracker, depths(2, 30, T0 + 10), told) == [
        ("cleared", "fhir-deep", 2), ("fired", "files-deep", 30)]


def test_taking_over_sends_nothing_twice_and_no_clear_of_what_was_never_told():
    tracker = Tracker(3600)
    [fired] = tracker.step(evaluate([FHIR_DEEP, FILES_DEEP], depths(20, 0, T0)), T0)
    told = {("fhir-deep", "adt/fhir"): fired}
    assert speak(tracker, depths(25, 0, T0 + 5), told) == []  # still holds, already told
    tracker = Tracker(3600)
    tracker.step(evaluate([FHIR_DEEP, FILES_DEEP], depths(0, 30, T0)), T0)
    assert speak(tracker, depths(0, 0, T0 + 5), {}) == []  # began and ended unheard


def test_a_restart_fires_again_only_what_was_not_told():
    """A fresh tracker fires everything that holds; what was told before the restart is
    not sent again, and what ended while the engine was down is cleared."""
    earlier = Tracker(3600)
    told = {(n.rule, n.reading.subject): n for n in earlier.step(
        evaluate([FHIR_DEEP, FILES_DEEP], depths(20, 30, T0)), T0)}
    assert speak(Tracker(3600), depths(20, 0, T0 + 600), told) == [
        ("cleared", "files-deep", 0)]


def test_a_repeat_of_a_fire_nobody_sent_is_sent_as_the_fire():
    tracker = Tracker(60)
    tracker.step(evaluate([FHIR_DEEP], depths(20, 0, T0)), T0)
    readings = evaluate([FHIR_DEEP], depths(20, 0, T0 + 61))
    [repeat] = tracker.step(readings, T0 + 61)
    [sent] = reconcile([repeat], tracker.active, readings, {}, T0 + 61)
    assert (repeat.state, sent.state, sent.since) == ("repeated", "fired", T0)


def test_human_durations():
    assert [human(s) for s in (0.5, 45, 90, 3600, 93784)] == [
        "0.5s", "45s", "1m 30s", "1h", "1d 2h 3m 4s"]
