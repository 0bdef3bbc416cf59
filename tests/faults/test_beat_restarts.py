"""Two `celery beat` processes, killed and restarted through five minute slots while minutely
triggers fire (issue #8): every slot runs exactly once, none is missed. tests/triggers/test_beat.py
covers two beats that stay up; here, around each slot in turn, one is SIGKILLed just before it,
the other SIGTERMed just after it, both are down across it, both are restarted while it is being
fired, and both are restarted in turn, as a deploy does."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from apps.runs.models import Run
from apps.system.models import Heartbeat
from apps.triggers.models import Trigger, TriggerEvaluation, TriggerFire
from tests.processes import BeatProcess, wait_until

pytestmark = [
    pytest.mark.worker,
    pytest.mark.fault,
    # Up to a minute to reach the first slot, four more slots, starts and stops: ~5.5 min.
    pytest.mark.timeout(480),
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


class Beats:
    """The two beats, "a" and "b", by name; ``restart`` starts one again (same log file)."""

    def __init__(self, start: Callable[[str], BeatProcess]):
        self.start = start
        self.running = {name: start(name) for name in ("a", "b")}

    def __getitem__(self, name: str) -> BeatProcess:
        return self.running[name]

    def restart(self, name: str) -> None:
        self.running[name] = self.start(name)

    def stop(self) -> None:
        for beat in self.running.values():
            beat.stop()


def test_beats_restarted_through_five_minute_slots_fire_each_exactly_once(
    celery_worker_process, beat_process, make_scenario, make_trigger
):
    celery_worker_process()
    created = timezone.now()
    triggers = [
        make_trigger(make_scenario(name=f"minutely {n}"), "time", params, catch_up=policy)
        for n, (params, policy) in enumerate(SCHEDULES)
    ]
    beats = Beats(beat_process)
    outages = [
        kill_one_just_before,
        terminate_other_just_after,
        both_down_across,
        restart_both_while_firing,
        restart_in_turn,
    ]
    first = next_minute(timezone.now() + timedelta(seconds=4))
    slots = [first + number * MINUTE for number in range(len(outages))]
    for slot, outage in zip(slots, outages, strict=True):
        outage(beats, triggers, slot)
        wait_fired(triggers, slot)
    beats.stop()
    stopped = timezone.now()

    expected = minute_slots(created, stopped)
    assert set(slots) <= set(expected), (slots, expected)
    assert_each_slot_ran_once(triggers, expected)


# -- the outages, one slot each; each leaves both beats running -----------------------------------


def kill_one_just_before(beats: Beats, triggers: list[Trigger], slot: datetime) -> None:
    """A is SIGKILLed two seconds before the slot: B alone fires it; A comes back."""
    wait_for_clock(slot - timedelta(seconds=2))
    beats["a"].kill()
    wait_fired(triggers, slot)
    beats.restart("a")


def terminate_other_just_after(beats: Beats, triggers: list[Trigger], slot: datetime) -> None:
    """B shuts down in order (SIGTERM) as the slot comes due. Its last ticks may still be
    queued or firing in the worker, A's race them: the slot fires once; B comes back."""
    wait_for_clock(slot)
    beats["b"].stop()
    wait_fired(triggers, slot)
    beats.restart("b")


def both_down_across(beats: Beats, triggers: list[Trigger], slot: datetime) -> None:
    """Both go down before the slot, B orderly (SIGTERM), A killed, and come back after it.

    Eight seconds before it: a tick they sent last expires after 5 s (a loaded worker may
    still be working through queued ticks), so none can start, and fire, after the slot.
    """
    wait_for_clock(slot - timedelta(seconds=8))
    beats["b"].stop()
    beats["a"].kill()
    down_since = timezone.now()
    wait_for_clock(slot + timedelta(seconds=3))
    fired = TriggerFire.objects.filter(trigger__in=triggers, slot=slot)
    assert not fired.exists(), "no beat ran, yet it fired"
    # The ticks' mark is refreshed every 30 s, so when they stopped it was up to 30 s old:
    # take the stalest case. A short outage must make the slot late, never missed.
    Heartbeat.objects.filter(name="trigger-tick").update(at=down_since - timedelta(seconds=29))
    beats.restart("a")
    beats.restart("b")


def restart_both_while_firing(beats: Beats, triggers: list[Trigger], slot: datetime) -> None:
    """A is SIGKILLed the moment the slot comes due (the tick it sent last may be claiming
    it in the worker), B as soon as the slot's fires commit, while its runs are dispatched;
    both start again at once, and the ticks of two just-started beats find nothing due."""
    wait_for_clock(slot)
    beats["a"].kill()
    fired = TriggerFire.objects.filter(trigger__in=triggers, slot=slot)
    wait_until(fired.exists, timeout=BOUND, what=f"the {slot:%H:%M} slot fired", every=0.02)
    beats["b"].kill()
    beats.restart("a")
    beats.restart("b")


def restart_in_turn(beats: Beats, triggers: list[Trigger], slot: datetime) -> None:
    """A rolling restart across the slot, as a deploy does: A (SIGTERM) three seconds
    before it, B once A ticks again, so a just-started beat sends the ticks that fire it."""
    wait_for_clock(slot - timedelta(seconds=3))
    beats["a"].stop()
    beats.restart("a")
    beats["b"].stop()
    beats.restart("b")


# -- clock and checks -----------------------------------------------------------------------------


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


def wait_fired(triggers: list[Trigger], slot: datetime) -> None:
    fired = TriggerFire.objects.filter(trigger__in=triggers, slot=slot)
    try:
        wait_until(lambda: fired.count() == len(triggers), timeout=BOUND, what="", every=0.2)
    except AssertionError:
        last = [t.evaluations.values_list("result", "message").first() for t in triggers]
        raise AssertionError(f"not every trigger fired its {slot:%H:%M} slot: {last}") from None


def assert_each_slot_ran_once(triggers: list[Trigger], expected: list[datetime]) -> None:
    """Every trigger fired exactly the ``expected`` slots, each as one run that succeeded,
    and none was recorded as missed."""
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
