from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

from rest_framework import serializers

from apps.triggers.kinds.base import Evaluation, TriggerKind
from apps.triggers.schedule import next_cron, next_interval

DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class TimeParams(serializers.Serializer):
    schedule = serializers.ChoiceField(
        ["every_minutes", "hourly", "daily", "weekly", "monthly", "cron"]
    )
    every = serializers.IntegerField(min_value=1, max_value=1440, required=False)
    minute = serializers.IntegerField(min_value=0, max_value=59, default=0)
    time = serializers.RegexField(HHMM, required=False, help_text="HH:MM")
    days = serializers.ListField(child=serializers.ChoiceField(DAYS), required=False)
    day = serializers.CharField(required=False, help_text="1–31, or 'last'")
    cron = serializers.CharField(required=False, help_text="minute hour day month weekday")
    timezone = serializers.CharField(default="UTC")

    def validate_timezone(self, value):
        if value not in available_timezones():
            raise serializers.ValidationError(f"Unknown time zone {value!r}.")
        return value

    def validate(self, data):
        needs = {
            "every_minutes": ["every"],
            "daily": ["time"],
            "weekly": ["days", "time"],
            "monthly": ["day", "time"],
            "cron": ["cron"],
        }.get(data["schedule"], [])
        missing = [name for name in needs if not data.get(name)]
        if missing:
            raise serializers.ValidationError(
                {name: "Required for this schedule." for name in missing}
            )
        day = data.get("day")
        if day and day != "last" and not (day.isdigit() and 1 <= int(day) <= 31):
            raise serializers.ValidationError({"day": "Use 1–31 or 'last'."})
        if data["schedule"] == "cron":
            try:
                crontab_fields(data)
            except (ValueError, KeyError) as error:
                raise serializers.ValidationError({"cron": f"Not a cron line: {error}"}) from None
        return data


def crontab_fields(params: dict) -> dict | None:
    """django-celery-beat CrontabSchedule fields for the schedule (None for intervals)."""
    kind = params["schedule"]
    if kind == "every_minutes":
        return None
    hour, minute = (params.get("time") or "00:00").split(":")
    fields = {
        "minute": str(int(minute)),
        "hour": str(int(hour)),
        "day_of_week": "*",
        "day_of_month": "*",
        "month_of_year": "*",
    }
    if kind == "hourly":
        fields.update(minute=str(params.get("minute", 0)), hour="*")
    elif kind == "weekly":
        fields["day_of_week"] = ",".join(str(DAYS.index(d)) for d in params["days"])
    elif kind == "monthly":
        fields["day_of_month"] = "28-31" if params["day"] == "last" else params["day"]
    elif kind == "cron":
        parts = params["cron"].split()
        if len(parts) != 5:
            raise ValueError("five fields expected")
        fields = dict(
            zip(
                ["minute", "hour", "day_of_month", "month_of_year", "day_of_week"],
                parts,
                strict=True,
            )
        )
        from celery.schedules import crontab

        crontab(**fields)  # raises ValueError for a bad field
    return fields


class TimeTrigger(TriggerKind):
    key = "time"
    label = "Time-based"
    feature = "trigger.time"
    polled = False
    Params = TimeParams

    def next_fire(self, trigger, after: datetime) -> datetime | None:
        params = trigger.params
        zone = ZoneInfo(params.get("timezone", "UTC"))
        if params["schedule"] == "every_minutes":
            anchor = trigger.state.get("anchor")
            anchor = datetime.fromisoformat(anchor) if anchor else after
            return next_interval(anchor, timedelta(minutes=params["every"]), after)
        return next_cron(crontab_fields(params), zone, after, last_day=params.get("day") == "last")

    def evaluate(self, trigger, now):
        # Only "Test now" gets here: beat's slots fire time triggers, never a check.
        upcoming = self.next_fire(trigger, now)
        if upcoming is None:
            return Evaluation("unchanged", "No slot in the next five years.")
        local = upcoming.astimezone(ZoneInfo(trigger.params.get("timezone", "UTC")))
        return Evaluation(
            "unchanged", f"Fires on its schedule; next slot {local:%Y-%m-%d %H:%M %Z}."
        )
