"""When a silence rule's hours are open: parsing "07:00-19:00" and IANA time zones, and
finding the start of the active period a moment falls in.

Calendar arithmetic (spans crossing midnight, chosen weekdays, daylight saving) is the
one tricky part of the rules. Reading the hours and the zone (`span`, `zone`) is a
configuration check and lives with the rule in `engine.config.alerts`; this module adds
only the evaluation side.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from engine.config.alerts import DAYS, Day, SilenceRule, span, zone

__all__ = ["DAYS", "Day", "active_since", "span", "zone"]


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
    tz = zone(rule.timezone)
    start, end = span(rule.hours)
    local = dt.datetime.fromtimestamp(now, tz)
    minute = local.hour * 60 + local.minute
    days = {DAYS.index(d) for d in rule.days}
    today = local.date()
    if start < end:
        if local.weekday() in days and start <= minute < end:
            return _at(today, start, tz)
        return None
    if minute >= start and local.weekday() in days:  # a span crossing midnight
        return _at(today, start, tz)
    yesterday = today - dt.timedelta(days=1)
    if minute < end and yesterday.weekday() in days:
        return _at(yesterday, start, tz)
    return None


def _at(day: dt.date, minute: int, tz: zoneinfo.ZoneInfo) -> float:
    return dt.datetime.combine(day, dt.time(minute // 60, minute % 60), tzinfo=tz).timestamp()
