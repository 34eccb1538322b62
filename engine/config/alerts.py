"""The `alerts:` section of conf/conduit.yaml: the rule kinds, the webhook and the
defaults, validated when the configuration is loaded.

Config structs live with the config: this module was `engine/alerts/config.py`, and the
schema importing it pulled in the alerts package (its runner, the store writer and,
through them, the runtime), which closed an 18-module import loop through
`engine/config/schema.py`. Only declarations and their checks live here, including the
two value checks a silence rule needs (`span` for its hours, `zone` for its time zone),
so loading a configuration never imports evaluation, delivery or the engine;
`engine.ops.alerts` builds on this module, never the other way round, and does not
re-export it: the rule kinds are imported from here.
"""

from __future__ import annotations

import zoneinfo
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from engine.config.types import Duration
from engine.ops.stats import RECENT_SECONDS

_NAME = r"^[a-z0-9][a-z0-9_-]*$"

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


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


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone `name`; a ValueError that says what is expected otherwise."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as "
                         "America/Chicago or UTC") from None

ChannelPattern = Annotated[str, Meta(
    min_length=1, description='a channel name, a pattern such as "adt-*", or "*" for all')]
DestinationPattern = Annotated[str, Meta(
    min_length=1, description='channel/destination such as "adt/fhir", a pattern such as '
    '"adt/*", or "*" for every destination')]


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


class ControlIdReusedRule(RuleBase, tag="control_id_reused", kw_only=True):
    """A sender reused control ids for new messages: processed all the same, but a sender
    whose counter restarted deserves a look before a true resend is taken for new."""

    channel: ChannelPattern = "*"
    threshold: Annotated[int, Meta(ge=0, description="fires when more messages than this "
                                   "reused a control id in the window")] = 0
    window: Annotated[Duration, Meta(description="counted over this much recent time, at "
                                     "most 5m (what the live statistics keep)")] = Duration(300)

    def __post_init__(self) -> None:
        if not 1 <= self.window <= RECENT_SECONDS:
            raise ValueError(
                f"control_id_reused window must be between 1s and {RECENT_SECONDS}s")


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
        zone(self.timezone)


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


Rule = (QueueDepthRule | QueueAgeRule | ErrorRateRule | ControlIdReusedRule | ChannelStateRule
        | SilenceRule | SloBurnRule)


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

