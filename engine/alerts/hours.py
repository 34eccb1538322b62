"""When a silence rule's hours are open: parsing "07:00-19:00" and IANA time zones, and
finding the start of the active period a moment falls in.

Calendar arithmetic (spans crossing midnight, chosen weekdays, daylight saving) is the
one tricky part of the rules; it stands alone so both configuration checks and
evaluation can use it without depending on each other.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from engine.alerts.config import SilenceRule

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
