"""Next fire times of time-based triggers, in the trigger's time zone.

Daylight-saving rules: a local time that does not exist (spring forward, e.g. 02:30) fires at
the same instant read with the offset before the change (03:30 local), so the slot is never
lost; a local time that happens twice (fall back) fires at its first occurrence only. Every
slot is an instant, and the next slot is always strictly after the last one, so a daily
trigger fires exactly once per day on both transition days.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from celery.schedules import crontab

MAX_DAYS = 366 * 5


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The instant of a local wall time (see the module doc for DST gaps and folds)."""
    return datetime.combine(day, at).replace(tzinfo=zone, fold=0).astimezone(UTC)


def next_cron(fields: dict, zone: ZoneInfo, after: datetime, *, last_day: bool = False):
    """First instant strictly after ``after`` matching crontab ``fields`` (celery syntax:
    minute, hour, day_of_week, day_of_month, month_of_year), read in ``zone``."""
    spec = crontab(**fields)
    day = after.astimezone(zone).date()
    for _ in range(MAX_DAYS):
        if _day_matches(spec, day, last_day):
            for hour in sorted(spec.hour):
                for minute in sorted(spec.minute):
                    instant = local_instant(day, time(hour, minute), zone)
                    if instant > after:
                        return instant
        day += timedelta(days=1)
    return None


def _day_matches(spec, day: date, last_day: bool) -> bool:
    if day.month not in spec.month_of_year or day.isoweekday() % 7 not in spec.day_of_week:
        return False
    if last_day:
        return day.day == calendar.monthrange(day.year, day.month)[1]
    return day.day in spec.day_of_month


def next_interval(anchor: datetime, every: timedelta, after: datetime) -> datetime:
    """First ``anchor + k·every`` strictly after ``after``."""
    if after < anchor:
        return anchor
    steps = int((after - anchor) / every) + 1
    return anchor + steps * every
