"""Two `celery beat` processes, killed and restarted while minutely triggers fire (issue #8):
every slot runs exactly once, none is missed. tests/triggers/test_beat.py covers two beats
that stay up; here they die — one by SIGKILL just before a slot, then both (SIGTERM and
SIGKILL) across the next slot."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from apps.runs.models import Run
from apps.system.models import Heartbeat
from apps.triggers.models import TriggerEvaluation, TriggerFire
from tests.processes import wait_until

pytestmark = [
    pytest.mark.worker,
    pytest.mark.fault,
    pytest.mark.timeout(300),
    pytest.mark.django_db(transaction=True),
]
BOUND = 30
MINUTE = timedelta(minutes=1)
# Minutely, as cron and as an interval, in two zones and with both catch-up policies.
SCHEDULES = [
    ({"schedule": "cron", "cron": "* * * * *"}, "skip"),
    ({"schedule": "cron", "cron": "* * * * *"}, "once"),
    ({"schedule": "cron", "cron": "* * * * *", "timezone": "Asia/Kolkata"}, "skip"),
    ({"schedule": "every_minutes", "every": 1}, "skip"),
    ({"schedule": "every_minutes", "every": 1}, "once"),
]


def test_beats_killed_and_restarted_fire_every_minute_slot_exactly_once(
    celery_worker_process, beat_process, make_scenario, make_trigger
):
    celery_worker_process()
    created = timezone.now()
    triggers = [
        make_trigger(make_scenario(name=f"minutely {n}"), "time", params, catch_up=policy)
        for n, (params, policy) in enumerate(SCHEDULES)
    ]
    beat_a, beat_b = beat_process("a"), beat_process("b")

    # 1. A is SIGKILLed two seconds before a slot: B alone fires it; A comes back.
    first = next_minute(timezone.now() + timedelta(seconds=4))
    wait_for_clock(first - timedelta(seconds=2))
    beat_a.kill()
    wait_fired(triggers, first)
    beat_a = beat_process("a")

    # 2. Both go down before the next slot, B orderly (SIGTERM), A killed. Eight seconds
    # before it: a tick they sent last expires after 5 s (a loaded worker may still be
    # working through queued ticks), so none can start, and fire, after the slot.
    second = first + MINUTE
    wait_for_clock(second - timedelta(seconds=8))
    beat_b.stop()
    beat_a.kill()
    down_since = timezone.now()
    wait_for_clock(second + timedelta(seconds=3))
    assert not TriggerFire.objects.filter(slot=second).exists(), "no beat ran, yet it fired"
    # The ticks' mark is refreshed every 30 s, so when they stopped it was up to 30 s old:
    # take the stalest case. A short outage must make the slot late, never missed.
    Heartbeat.objects.filter(name="trigger-tick").update(at=down_since - timedelta(seconds=29))
    beat_a, beat_b = beat_process("a"), beat_process("b")
    wait_fired(triggers, second)
    beat_a.stop()
    beat_b.stop()
    stopped = timezone.now()

    expected = minute_slots(created, stopped)
    assert first in expected and second in expected
    runs = Run.objects.filter(scenario__in=[t.scenario for t in triggers])
    wait_until(
        lambda: not runs.exclude(status__in=["success", "warning", "failed", "aborted"]).exists(),
        timeout=BOUND,
        what="every fired run ended",
    )
    for trigger in triggers:
        slots = sorted(trigger.fires.values_list("slot", flat=True))
        assert slots == expected, f"{trigger.params} ({trigger.catch_up}): {slots}"
        ran = Counter(runs.filter(scenario=trigger.scenario).values_list("trigger_params__slot"))
        assert ran == Counter((slot.isoformat(),) for slot in expected), ran
    assert set(runs.values_list("status", flat=True)) == {"success"}
    missed = TriggerEvaluation.objects.filter(trigger__in=triggers, message__startswith="Missed")
    assert not missed.exists(), list(missed.values_list("message", flat=True))


def next_minute(after: datetime) -> datetime:
    return after.replace(second=0, microsecond=0) + MINUTE


def minute_slots(after: datetime, until: datetime) -> list[datetime]:
    slots, slot = [], next_minute(after)
    while slot <= until:
        slots.append(slot)
        slot += MINUTE
    return slots


def wait_for_clock(moment: datetime) -> None:
    """Hold the current state (a beat down, or all up) until ``moment``."""
    bound = max((moment - timezone.now()).total_seconds(), 0) + 5
    wait_until(lambda: timezone.now() >= moment, timeout=bound, what=f"the clock at {moment}")


def wait_fired(triggers, slot: datetime) -> None:
    fired = TriggerFire.objects.filter(trigger__in=triggers, slot=slot)
    try:
        wait_until(lambda: fired.count() == len(triggers), timeout=BOUND, what="", every=0.2)
    except AssertionError:
        last = [t.evaluations.values_list("result", "message").first() for t in triggers]
        raise AssertionError(f"not every trigger fired its {slot:%H:%M} slot: {last}") from None
