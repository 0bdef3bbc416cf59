"""Next fire times, in the trigger's time zone, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from apps.triggers.kinds.time import TimeTrigger

PARIS = ZoneInfo("Europe/Paris")


def fires(params: dict, start: datetime, end: datetime) -> list[datetime]:
    trigger = SimpleNamespace(params={"timezone": "Europe/Paris", **params}, state={})
    kind, slots, after = TimeTrigger(), [], start
    while (slot := kind.next_fire(trigger, after)) and slot < end:
        slots.append(slot.astimezone(PARIS))
        after = slot
    return slots


def local(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


@pytest.mark.parametrize("month,day", [(3, 29), (10, 25)])  # spring forward, fall back
def test_daily_0230_fires_once_per_day_across_dst(month, day):
    start, end = local(2026, month, day - 2, 12), local(2026, month, day + 1, 12)
    slots = fires({"schedule": "daily", "time": "02:30"}, start, end)
    assert [s.date().day for s in slots] == [day - 1, day, day + 1]
    transition = slots[1]
    if month == 3:  # 02:30 does not exist: it fires at the same instant, 03:30 local
        assert (transition.hour, transition.minute) == (3, 30)
    else:  # 02:30 happens twice: only the first (summer time) occurrence fires
        assert (transition.hour, transition.minute) == (2, 30)
        assert transition.utcoffset() == timedelta(hours=2)
    assert len({s.astimezone(UTC) for s in slots}) == 3


def test_hourly_weekly_monthly_last_day_and_cron():
    start, end = local(2026, 1, 1, 0, 0), local(2026, 3, 1, 0, 0)
    hourly = fires({"schedule": "hourly", "minute": 15}, start, local(2026, 1, 1, 5))
    assert [(s.hour, s.minute) for s in hourly] == [(0, 15), (1, 15), (2, 15), (3, 15), (4, 15)]
    weekly = fires(
        {"schedule": "weekly", "days": ["mon", "fri"], "time": "08:00"}, start, local(2026, 1, 13)
    )
    assert [s.strftime("%a %d") for s in weekly] == ["Fri 02", "Mon 05", "Fri 09", "Mon 12"]
    last = fires({"schedule": "monthly", "day": "last", "time": "23:00"}, start, end)
    assert [s.day for s in last] == [31, 28]
    cron = fires({"schedule": "cron", "cron": "*/20 9 * * 1-5"}, start, local(2026, 1, 2, 12))
    assert [s.strftime("%d %H:%M") for s in cron] == [
        "01 09:00",
        "01 09:20",
        "01 09:40",
        "02 09:00",
        "02 09:20",
        "02 09:40",
    ]


def test_every_n_minutes_is_anchored():
    trigger = SimpleNamespace(
        params={"schedule": "every_minutes", "every": 5},
        state={"anchor": "2026-01-01T00:00:00+00:00"},
    )
    after = datetime(2026, 1, 1, 0, 12, 30, tzinfo=UTC)
    assert TimeTrigger().next_fire(trigger, after) == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)
