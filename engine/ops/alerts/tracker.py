"""Fire, repeat, clear: the `Tracker` remembers which alerts hold and turns each round
of readings into `Notification`s, which know how they read in the log, the webhook's
JSON, the audit trail and the status page.

No I/O and no clock: the caller passes the time, so repeats and clears are testable.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from engine.config.alerts import Rule
from engine.events import Event, Kind
from engine.ops.alerts.rules import Reading

State = Literal["fired", "repeated", "cleared"]
_LABELS = {"queue_depth": "queue depth", "queue_age": "oldest queued entry",
           "error_rate": "error rate", "control_id_reused": "control ids reused",
           "channel_state": "channel state",
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
    def key(self) -> tuple[str, str]:
        """(rule, subject): which alert this is, as the tracker keys them."""
        return self.rule, self.reading.subject

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

    def fired(self, at: float) -> Notification:
        """This alert's fire, as sent at `at`."""
        return _note("fired", self.rule, self.reading, self.since, at)

    def public(self) -> dict[str, Any]:
        """For the status page and the API."""
        out = self.fired(self.notified_at).payload("")
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

