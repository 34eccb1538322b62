"""Alerts: rules over the engine's live state that fire once, repeat while they hold, and
clear when they stop holding.

Operations must hear about a backed-up queue, a failing or stopped channel, or an
interface that quietly stopped sending before clinicians notice. Each evaluation takes a
`Snapshot` (live stats, queue counts, channel states, service-level burn rates) and
`evaluate` turns it into `Reading`s without any I/O or clock of its own, so every rule is
testable with a fake clock. `Tracker` turns readings into fired / repeated / cleared
`Notification`s; `Alerting` runs both every few seconds and sends each notification to
the log, the audit trail (an ALERT event: rule, state, subject, value and threshold;
names and numbers only, never PHI), the status page (`active()`) and a webhook.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import fnmatch
import logging
import os
import socket
import time
import zoneinfo
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

import aiohttp
import msgspec
from msgspec import Meta
from yarl import URL

from engine.config.types import Duration
from engine.events import Event, Kind
from engine.stats import RECENT_SECONDS
from engine.store.writer import UnitOfWork

if TYPE_CHECKING:
    from engine.runtime import Engine

log = logging.getLogger("conduit.alerts")

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
OUTBOX_LIMIT = 1000  # webhook payloads kept while the receiver is down; oldest dropped
_NAME = r"^[a-z0-9][a-z0-9_-]*$"

ChannelPattern = Annotated[str, Meta(
    min_length=1, description='a channel name, a pattern such as "adt-*", or "*" for all')]
DestinationPattern = Annotated[str, Meta(
    min_length=1, description='channel/destination such as "adt/fhir", a pattern such as '
    '"adt/*", or "*" for every destination')]


# ---------------------------------------------------------------------------- config


class RuleBase(msgspec.Struct, tag_field="kind", forbid_unknown_fields=True, kw_only=True,
               frozen=True):
    """What every rule has: a name, a severity, and how often it repeats."""

    name: Annotated[str, Meta(pattern=_NAME, description="names the alert in the webhook, "
                              "the status page and the audit trail")]
    severity: Annotated[Literal["info", "warning", "critical"], Meta(
        description="passed on to the webhook, for routing")] = "warning"
    repeat: Annotated[Duration | None, Meta(
        description="re-send this often while it holds; default alerts.repeat; 0 never")] = None


class QueueDepthRule(RuleBase, tag="queue_depth", kw_only=True):
    """More entries waiting (or in flight) in a destination's queue than `threshold`."""

    destination: DestinationPattern = "*"
    threshold: Annotated[int, Meta(ge=0, description="fires when more entries than this wait")]


class QueueAgeRule(RuleBase, tag="queue_age", kw_only=True):
    """The oldest entry waiting in a destination's queue is older than `threshold`."""

    destination: DestinationPattern = "*"
    threshold: Annotated[Duration, Meta(
        description="fires when the oldest waiting entry is older than this")]


class ErrorRateRule(RuleBase, tag="error_rate", kw_only=True):
    """Errored + rejected + dead-lettered over received, per channel, in a recent window."""

    channel: ChannelPattern = "*"
    threshold: Annotated[float, Meta(gt=0, le=100, description="percent of received messages "
                                     "that errored, were rejected or dead-lettered")]
    window: Annotated[Duration, Meta(description="measured over this much recent time, at "
                                     "most 5m (what the live statistics keep)")] = Duration(300)
    min_received: Annotated[int, Meta(ge=1, description="with fewer messages than this in the "
                                      "window the rule does not fire (1 of 1 is no rate)")] = 10

    def __post_init__(self) -> None:
        if not 1 <= self.window <= RECENT_SECONDS:
            raise ValueError(f"error_rate window must be between 1s and {RECENT_SECONDS}s")


class ChannelStateRule(RuleBase, tag="channel_state", kw_only=True):
    """A channel is in one of `states` (by default stopped or in error)."""

    channel: ChannelPattern = "*"
    states: Annotated[tuple[Literal["stopped", "error", "paused"], ...], Meta(
        min_length=1, description="states that fire the alert")] = ("stopped", "error")


class SilenceRule(RuleBase, tag="silence", kw_only=True):
    """No message received on a started channel for `after`, counted only during the
    configured hours and days: the interface that quietly stopped is the one that hurts."""

    channel: ChannelPattern = "*"
    after: Annotated[Duration, Meta(description="fires after this long without a message")]
    hours: Annotated[str, Meta(pattern=r"^\d\d:\d\d-\d\d:\d\d$", description='when silence '
                               'matters, such as "07:00-19:00" in `timezone`; may cross '
                               'midnight; default all day')] = "00:00-24:00"
    days: Annotated[tuple[Day, ...], Meta(min_length=1, description="days the hours apply to; "
                                          "a span crossing midnight belongs to the day it "
                                          "starts")] = DAYS
    timezone: Annotated[str, Meta(description="IANA time zone of hours and days, such as "
                                  "America/Chicago")] = "UTC"

    def __post_init__(self) -> None:
        span(self.hours)
        _zone(self.timezone)


class SloBurnRule(RuleBase, tag="slo_burn", kw_only=True):
    """A service-level objective's error budget burns `factor` times faster than it can
    sustain, over `window` and (so the alert clears soon after) over `short_window`."""

    channel: ChannelPattern = "*"
    objective: Annotated[str, Meta(min_length=1, description='name of an objective under '
                                   'slo.objectives, or a pattern; "*" for all')] = "*"
    factor: Annotated[float, Meta(gt=0, description="burn rate that fires; 14.4 spends 2 % "
                                  "of a 30-day budget in one hour")] = 14.4
    window: Annotated[Duration, Meta(description="long window; at most slo.window")] = (
        Duration(3600))
    short_window: Annotated[Duration, Meta(description="the burn must hold over this recent "
                                           "window too; 0 ignores it")] = Duration(300)
    min_events: Annotated[int, Meta(ge=0, description="deliveries (or sampled seconds, for "
                                    "availability) in the long window before it can fire")] = 10


Rule = QueueDepthRule | QueueAgeRule | ErrorRateRule | ChannelStateRule | SilenceRule | SloBurnRule


class WebhookConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where each fire, repeat and clear is POSTed as JSON."""

    url: Annotated[str, Meta(pattern=r"^https?://", description="http(s) URL of the receiver")]
    timeout: Annotated[Duration, Meta(description="limit for one POST")] = Duration(5.0)
    headers: Annotated[dict[str, str], Meta(description="extra request headers")] = {}
    bearer_token_env: Annotated[str | None, Meta(
        description="name of an environment variable holding a bearer token")] = None


class AlertsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """conf/conduit.yaml `alerts:`; no rules, no alerting."""

    interval: Annotated[Duration, Meta(description="how often rules are evaluated")] = (
        Duration(5.0))
    repeat: Annotated[Duration, Meta(description="default re-send interval while an alert "
                                     "holds; 0 never repeats")] = Duration(3600.0)
    webhook: Annotated[WebhookConfig | None, Meta(
        description="JSON POST receiver; without it alerts go to the log, the audit trail "
        "and the status page only")] = None
    rules: Annotated[list[Rule], Meta(description="what to alert on")] = []

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError("alerts.interval must be more than 0")
        names = [r.name for r in self.rules]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"alert rule names must be unique: {', '.join(doubled)}")


def span(hours: str) -> tuple[int, int]:
    """ "07:00-19:00" as minutes after midnight (end may be 1440 for 24:00)."""
    try:
        start, end = (_minutes(part) for part in hours.split("-"))
    except ValueError:
        raise ValueError(f"hours must look like 07:00-19:00, got {hours!r}") from None
    if start >= 1440:
        raise ValueError(f"hours cannot start at 24:00: {hours!r}")
    return start, end


def _minutes(text: str) -> int:
    h, m = (int(x) for x in text.split(":"))
    if not (0 <= m < 60 and (h < 24 or (h == 24 and m == 0))):
        raise ValueError(text)
    return h * 60 + m


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as "
                         "America/Chicago or UTC") from None


# --------------------------------------------------------------------- snapshot, rules


@dataclass(frozen=True)
class ChannelView:
    state: str
    last_message_at: float | None = None
    received: dict[int, int] = field(default_factory=dict)  # by window, in seconds
    failed: dict[int, int] = field(default_factory=dict)  # errored + rejected + dead


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
    ChannelStateRule: _channel_state, SilenceRule: _silence, SloBurnRule: _slo_burn,
}


def active_since(rule: SilenceRule, now: float) -> float | None:
    """When the active period `now` falls in began (epoch seconds), or None outside the
    rule's hours. Back-to-back periods (all day, every day) count as one, so silence is
    not forgotten at midnight; silence before the period opened is not counted, so Monday
    07:00 does not fire for a weekend nobody sends on."""
    opened = _opening(rule, now)
    for _ in range(7):
        if opened is None:
            break
        earlier = _opening(rule, opened - 1)
        if earlier is None or earlier >= opened:
            break
        opened = earlier
    return opened


def _opening(rule: SilenceRule, now: float) -> float | None:
    zone = _zone(rule.timezone)
    start, end = span(rule.hours)
    local = dt.datetime.fromtimestamp(now, zone)
    minute = local.hour * 60 + local.minute
    days = {DAYS.index(d) for d in rule.days}
    today = local.date()
    if start < end:
        if local.weekday() in days and start <= minute < end:
            return _at(today, start, zone)
        return None
    if minute >= start and local.weekday() in days:  # a span crossing midnight
        return _at(today, start, zone)
    yesterday = today - dt.timedelta(days=1)
    if minute < end and yesterday.weekday() in days:
        return _at(yesterday, start, zone)
    return None


def _at(day: dt.date, minute: int, zone: zoneinfo.ZoneInfo) -> float:
    return dt.datetime.combine(day, dt.time(minute // 60, minute % 60), tzinfo=zone).timestamp()


# ------------------------------------------------------------- fire, repeat, clear


State = Literal["fired", "repeated", "cleared"]
_LABELS = {"queue_depth": "queue depth", "queue_age": "oldest queued entry",
           "error_rate": "error rate", "channel_state": "channel state",
           "silence": "silence", "slo_burn": "error budget burn rate"}


@dataclass(frozen=True)
class Notification:
    """One fire, repeat or clear of one rule on one subject."""

    state: State
    rule: str
    kind: str
    severity: str
    reading: Reading
    since: float
    at: float

    @property
    def message(self) -> str:
        r = self.reading
        return (f"{self.rule} {self.state}: {_LABELS[self.kind]} of {r.subject} is "
                f"{_show(r.value, r.unit)} (threshold {_show(r.threshold, r.unit)})")

    def payload(self, host: str) -> dict[str, Any]:
        """The webhook's JSON body."""
        r = self.reading
        return {
            "source": "conduit", "host": host, "rule": self.rule, "kind": self.kind,
            "severity": self.severity, "state": self.state, "subject": r.subject,
            "channel": r.channel, "destination": r.destination, "value": r.value,
            "threshold": r.threshold, "unit": r.unit, "since": _iso(self.since),
            "at": _iso(self.at), "message": self.message,
        }

    def event(self) -> Event:
        """The audit record: names and numbers only."""
        r = self.reading
        return Event(kind=Kind.ALERT, actor="engine", channel=r.channel,
                     destination=r.destination, detail={
                         "rule": self.rule, "kind": self.kind, "state": self.state,
                         "subject": r.subject, "value": r.value, "threshold": r.threshold,
                         "unit": r.unit, "severity": self.severity})


@dataclass
class Active:
    """An alert that holds now."""

    rule: Rule
    reading: Reading
    since: float
    notified_at: float

    def public(self) -> dict[str, Any]:
        """For the status page and the API."""
        note = Notification("fired", self.rule.name, _kind(self.rule), self.rule.severity,
                            self.reading, self.since, self.notified_at)
        out = note.payload("")
        del out["source"], out["host"], out["state"], out["at"]
        out["since"] = self.since
        out["notified_at"] = self.notified_at
        return out


class Tracker:
    """Remembers which alerts hold, and says what changed at each step."""

    def __init__(self, default_repeat: float) -> None:
        self.default_repeat = default_repeat
        self.active: dict[tuple[str, str], Active] = {}

    def step(self, readings: list[tuple[Rule, Reading]], now: float) -> list[Notification]:
        out: list[Notification] = []
        latest: dict[tuple[str, str], Reading] = {}
        for rule, reading in readings:
            key = (rule.name, reading.subject)
            latest[key] = reading
            if not reading.holds:
                continue
            current = self.active.get(key)
            if current is None:
                self.active[key] = Active(rule, reading, now, now)
                out.append(_note("fired", rule, reading, now, now))
                continue
            current.reading = reading
            repeat = rule.repeat if rule.repeat is not None else self.default_repeat
            if repeat > 0 and now - current.notified_at >= repeat:
                current.notified_at = now
                out.append(_note("repeated", rule, reading, current.since, now))
        for key in [k for k, r in self.active.items() if not _holds(latest.get(k))]:
            gone = self.active.pop(key)
            out.append(_note("cleared", gone.rule, latest.get(key, gone.reading), gone.since,
                             now))
        return out


def _holds(reading: Reading | None) -> bool:
    return reading is not None and reading.holds


def _note(state: State, rule: Rule, reading: Reading, since: float, now: float
          ) -> Notification:
    return Notification(state, rule.name, _kind(rule), rule.severity, reading, since, now)


def _kind(rule: Rule) -> str:
    return str(type(rule).__struct_config__.tag)


def _show(value: float | str, unit: str) -> str:
    if isinstance(value, str):
        return value
    if unit == "seconds":
        return human(value)
    if unit == "percent":
        return f"{value:g} %"
    if unit == "burn":
        return f"{value:g}x"
    return f"{value:g} {unit}"


def human(seconds: float) -> str:
    """90 -> "1m 30s": how durations read in alert messages."""
    if seconds < 60:
        return f"{seconds:g}s"
    whole = int(seconds)
    parts = [(whole // 86400, "d"), (whole % 86400 // 3600, "h"), (whole % 3600 // 60, "m"),
             (whole % 60, "s")]
    return " ".join(f"{n}{u}" for n, u in parts if n)


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds")


# ------------------------------------------------------------------- delivery, loop


class Webhook:
    """POSTs one JSON body per notification; raises when the receiver did not take it."""

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config
        self.address = str(URL(config.url).with_user(None))
        self._session: aiohttp.ClientSession | None = None

    async def post(self, payload: dict[str, Any]) -> None:
        if self._session is None:
            headers = dict(self.config.headers)
            token = os.environ.get(self.config.bearer_token_env or "", "")
            if token:
                headers["Authorization"] = f"Bearer {token}"
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=aiohttp.ClientTimeout(total=self.config.timeout))
        async with self._session.post(self.config.url, json=payload) as response:
            if response.status >= 300:
                raise RuntimeError(f"HTTP {response.status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class Alerting:
    """Evaluates the rules every `interval` and sends what changed everywhere it goes.

    Nothing here may take the engine down: a failed evaluation is logged and tried again,
    a webhook that fails keeps its payloads (in order, bounded) for the next evaluation,
    and an audit write that fails is logged.
    """

    def __init__(self, config: AlertsConfig, snapshot: Callable[[], Awaitable[Snapshot]],
                 record: Callable[[list[Event]], Awaitable[Any]],
                 webhook: Webhook | None = None, host: str | None = None) -> None:
        self.config = config
        self.tracker = Tracker(config.repeat)
        self._snapshot = snapshot
        self._record = record
        self._webhook = webhook
        self._host = host or socket.gethostname()
        self._outbox: collections.deque[dict[str, Any]] = collections.deque()
        self._task: asyncio.Task | None = None

    @classmethod
    def for_engine(cls, config: AlertsConfig, engine: Engine) -> Alerting:
        async def record(events: list[Event]) -> None:
            assert engine.services is not None and engine.services.writer is not None
            uow = UnitOfWork()
            for e in events:
                uow.record(e)
            await engine.services.writer.commit(uow)

        webhook = Webhook(config.webhook) if config.webhook else None
        return cls(config, lambda: collect(engine, config.rules), record, webhook)

    def start(self) -> None:
        if self.config.rules and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="alerts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._outbox:
            log.warning("%d alert notification(s) not delivered to the webhook at shutdown",
                        len(self._outbox))
        if self._webhook is not None:
            await self._webhook.close()

    def active(self) -> list[dict[str, Any]]:
        """Alerts that hold now, oldest first."""
        return [a.public() for a in sorted(self.tracker.active.values(),
                                           key=lambda a: (a.since, a.rule.name))]

    async def run_once(self) -> list[Notification]:
        """One evaluation: snapshot, rules, notifications, delivery."""
        snap = await self._snapshot()
        notes = self.tracker.step(evaluate(self.config.rules, snap), snap.now)
        for note in notes:
            log.log(logging.INFO if note.state == "cleared" else logging.WARNING,
                    "alert %s", note.message)
        if notes:
            try:
                await self._record([n.event() for n in notes])
            except Exception as exc:
                log.error("could not audit %d alert notification(s): %s", len(notes), exc)
        if self._webhook is not None:
            for note in notes:
                if len(self._outbox) >= OUTBOX_LIMIT:
                    self._outbox.popleft()
                    log.error("alert webhook backlog full; dropped the oldest notification")
                self._outbox.append(note.payload(self._host))
            await self._flush()
        return notes

    async def _flush(self) -> None:
        """Send waiting payloads in order; stop at the first failure, keep the rest."""
        assert self._webhook is not None
        while self._outbox:
            try:
                await self._webhook.post(self._outbox[0])
            except Exception as exc:
                log.warning("alert webhook %s failed (%s); %d notification(s) will be "
                            "retried at the next evaluation", self._webhook.address,
                            str(exc) or type(exc).__name__, len(self._outbox))
                return
            self._outbox.popleft()

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
    wants_queues = any(isinstance(r, QueueDepthRule | QueueAgeRule) for r in rules)
    queues_now = await engine.ops.queue_stats() if wants_queues else {}
    now = time.time()
    channels: dict[str, ChannelView] = {}
    queues: dict[str, QueueView] = {}
    for name, channel in engine.channels.items():
        stats = svc.stats.channels.get(name)
        received, failed = {}, {}
        if stats is not None:
            for w in windows:
                received[w] = stats.recent["received"].total(w, now)
                failed[w] = (stats.recent["errored"].total(w, now)
                             + stats.recent["dead_lettered"].total(w, now))
        channels[name] = ChannelView(channel.state.value,
                                     stats.last_message_at if stats else None,
                                     received, failed)
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
