"""Rule evaluation: what each rule measures on a `Snapshot` of the engine, and whether it
holds.

`evaluate` is a pure function of the snapshot (which carries its own `now`): no I/O and
no clock, so every rule kind is testable with made-up numbers and a fake time.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.config.alerts import (
    ChannelStateRule,
    ControlIdReusedRule,
    ErrorRateRule,
    QueueAgeRule,
    QueueDepthRule,
    Rule,
    SilenceRule,
    SloBurnRule,
)
from engine.ops.alerts.hours import active_since


@dataclass(frozen=True)
class ChannelView:
    state: str
    last_message_at: float | None = None
    received: dict[int, int] = field(default_factory=dict)  # by window, in seconds
    failed: dict[int, int] = field(default_factory=dict)  # errored + rejected + dead
    reused: dict[int, int] = field(default_factory=dict)  # control ids reused, by window


@dataclass(frozen=True)
class QueueView:
    depth: int = 0
    oldest_age: float | None = None


@dataclass(frozen=True)
class BurnView:
    channel: str
    objective: str
    rates: dict[int, tuple[float, float]]  # window (s) -> (burn rate, events counted)


@dataclass(frozen=True)
class Snapshot:
    """Everything rules look at, taken at `now` (wall-clock seconds)."""

    now: float
    started_at: float
    channels: dict[str, ChannelView] = field(default_factory=dict)
    queues: dict[str, QueueView] = field(default_factory=dict)  # by "channel/destination"
    burns: list[BurnView] = field(default_factory=list)


@dataclass(frozen=True)
class Reading:
    """One rule measured on one subject (a channel, a queue, or channel:objective)."""

    subject: str
    value: float | str
    threshold: float | str
    holds: bool
    unit: str
    channel: str | None = None
    destination: str | None = None


def evaluate(rules: Iterable[Rule], snap: Snapshot) -> list[tuple[Rule, Reading]]:
    """Every rule measured on every subject it covers. Pure: no I/O, no clock."""
    return [(rule, r) for rule in rules for r in _MEASURES[type(rule)](rule, snap)]


def _matching(items: dict[str, Any], pattern: str) -> Iterator[tuple[str, Any]]:
    for name in sorted(items):
        if fnmatch.fnmatchcase(name, pattern):
            yield name, items[name]


def _queue_depth(rule: QueueDepthRule, snap: Snapshot) -> Iterator[Reading]:
    for key, q in _matching(snap.queues, rule.destination):
        channel, _, dest = key.partition("/")
        yield Reading(key, q.depth, rule.threshold, q.depth > rule.threshold, "entries",
                      channel, dest)


def _queue_age(rule: QueueAgeRule, snap: Snapshot) -> Iterator[Reading]:
    for key, q in _matching(snap.queues, rule.destination):
        channel, _, dest = key.partition("/")
        age = round(q.oldest_age or 0.0, 1)
        yield Reading(key, age, rule.threshold, age > rule.threshold, "seconds", channel, dest)


def _error_rate(rule: ErrorRateRule, snap: Snapshot) -> Iterator[Reading]:
    window = int(rule.window)
    for name, ch in _matching(snap.channels, rule.channel):
        received, failed = ch.received.get(window, 0), ch.failed.get(window, 0)
        rate = round(100.0 * failed / received, 2) if received else 0.0
        yield Reading(name, rate, rule.threshold,
                      received >= rule.min_received and rate > rule.threshold, "percent", name)


def _control_id_reused(rule: ControlIdReusedRule, snap: Snapshot) -> Iterator[Reading]:
    window = int(rule.window)
    for name, ch in _matching(snap.channels, rule.channel):
        reused = ch.reused.get(window, 0)
        yield Reading(name, reused, rule.threshold, reused > rule.threshold, "messages", name)


def _channel_state(rule: ChannelStateRule, snap: Snapshot) -> Iterator[Reading]:
    for name, ch in _matching(snap.channels, rule.channel):
        yield Reading(name, ch.state, "|".join(rule.states), ch.state in rule.states, "state",
                      name)


def _silence(rule: SilenceRule, snap: Snapshot) -> Iterator[Reading]:
    opened = active_since(rule, snap.now)
    for name, ch in _matching(snap.channels, rule.channel):
        if opened is None or ch.state != "started":
            yield Reading(name, 0.0, rule.after, False, "seconds", name)
            continue
        quiet = round(snap.now - max(opened, snap.started_at, ch.last_message_at or 0.0), 1)
        yield Reading(name, quiet, rule.after, quiet >= rule.after, "seconds", name)


def _slo_burn(rule: SloBurnRule, snap: Snapshot) -> Iterator[Reading]:
    long_w, short_w = int(rule.window), int(rule.short_window)
    for burn in sorted(snap.burns, key=lambda b: (b.channel, b.objective)):
        if not (fnmatch.fnmatchcase(burn.channel, rule.channel)
                and fnmatch.fnmatchcase(burn.objective, rule.objective)):
            continue
        rate, events = burn.rates.get(long_w, (0.0, 0.0))
        short = burn.rates.get(short_w, (rate, events))[0] if short_w else rate
        value = round(min(rate, short), 2)
        yield Reading(f"{burn.channel}:{burn.objective}", value, rule.factor,
                      events >= rule.min_events and value > rule.factor, "burn", burn.channel)


_MEASURES: dict[type, Callable[[Any, Snapshot], Iterator[Reading]]] = {
    QueueDepthRule: _queue_depth, QueueAgeRule: _queue_age, ErrorRateRule: _error_rate,
    ControlIdReusedRule: _control_id_reused, ChannelStateRule: _channel_state,
    SilenceRule: _silence, SloBurnRule: _slo_burn,
}
