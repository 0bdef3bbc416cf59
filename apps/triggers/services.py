"""Triggers: saved through one service (which keeps beat's schedule rows in step), fired
through one service (one run per trigger and slot), evaluated in claimed batches."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule

from apps.runs.services import run_start
from apps.triggers.kinds import get_kind, kind_gate
from apps.triggers.kinds.time import crontab_fields
from apps.triggers.models import Trigger, TriggerEvaluation, TriggerFire

log = logging.getLogger(__name__)
BATCH = 500
# A slot is *missed* when no tick ran for a while before it came due (everything was down);
# a slot that is merely late (a backlog of due triggers) still fires. Ticks leave a mark at
# most every TICK_MARK seconds, so the mark is at most that stale while ticks run.
TICK_MARK = 30


def trigger_validate(kind: str, params) -> dict:
    try:
        kind_class = get_kind(kind)
    except KeyError:
        raise ValidationError({"kind": f"Unknown trigger kind {kind!r}."}) from None
    serializer = kind_class.Params(data=params if isinstance(params, dict) else {})
    if not isinstance(params, dict) or not serializer.is_valid():
        errors = serializer.errors if isinstance(params, dict) else {"": ["must be an object"]}
        raise ValidationError(
            {
                "params": [
                    f"{name}: {' '.join(map(str, messages))}" for name, messages in errors.items()
                ]
            }
        )
    return dict(serializer.validated_data)


@transaction.atomic
def trigger_save(trigger: Trigger, *, user) -> Trigger:
    """Validate, check the license and profile, keep beat's schedule rows in sync."""
    gate = kind_gate(trigger.kind, user)
    if trigger.enabled and not gate.allowed:  # switching a trigger off is always allowed
        raise PermissionDenied(gate.reason)
    trigger.params = trigger_validate(trigger.kind, trigger.params)
    trigger.suspended_reason = ""
    _sync_schedule(trigger)
    trigger.save()
    return trigger


def _sync_schedule(trigger: Trigger) -> None:
    now = timezone.now()
    trigger.crontab = trigger.interval = None
    trigger.next_fire_at = trigger.next_check_at = None
    if trigger.kind == "time":
        fields = crontab_fields(trigger.params)
        if fields is None:
            trigger.interval, _ = IntervalSchedule.objects.get_or_create(
                every=trigger.params["every"], period=IntervalSchedule.MINUTES
            )
            trigger.state = {
                **trigger.state,
                "anchor": now.replace(second=0, microsecond=0).isoformat(),
            }
        else:
            trigger.crontab, _ = CrontabSchedule.objects.get_or_create(
                **fields, timezone=trigger.params.get("timezone", "UTC")
            )
        if trigger.enabled:
            trigger.next_fire_at = get_kind("time")().next_fire(trigger, now)
    elif get_kind(trigger.kind).polled and trigger.enabled:
        trigger.next_check_at = now


def trigger_fire(trigger: Trigger, slot: datetime, params: dict, *, kind_label: str = "") -> str:
    """Start the scenario once for (trigger, slot); returns the evaluation result."""
    try:
        with transaction.atomic():
            fire = TriggerFire.objects.create(trigger=trigger, slot=slot)
    except IntegrityError:
        return "duplicate"
    scenario = trigger.scenario
    started = run_start(
        scenario=scenario,
        user=scenario.effective_run_as(),
        trigger_kind=trigger.kind,
        trigger_name=trigger.name,
        trigger_params={**params, "slot": slot.isoformat()},
    )
    TriggerFire.objects.filter(pk=fire.pk).update(run=started.run)
    Trigger.objects.filter(pk=trigger.pk).update(last_fired_at=timezone.now())
    result = "fired" if started.run else "skipped"
    message = kind_label or ("" if started.run else started.reason)
    TriggerEvaluation.objects.create(
        trigger=trigger, result=result, message=message, run=started.run
    )
    return result


def triggers_tick(now: datetime | None = None) -> dict:
    """The system tick (beat sends it every second): due time slots, then due checks."""
    now = now or timezone.now()
    previous = _mark_tick(now)
    return {"slots": _fire_due_slots(now, previous), "checks": _evaluate_due_checks(now)}


def _mark_tick(now: datetime) -> datetime | None:
    """When ticks last ran (before this one); refreshed every TICK_MARK seconds at most."""
    from apps.system.models import Heartbeat

    mark = Heartbeat.objects.filter(name="trigger-tick").values_list("at", flat=True).first()
    if mark is None or (now - mark).total_seconds() >= TICK_MARK:
        Heartbeat.objects.update_or_create(name="trigger-tick", defaults={"at": now})
    return mark


def _claim(queryset, field: str, now: datetime) -> list[Trigger]:
    """Lock a batch of due triggers (SKIP LOCKED: other workers take the next batch)."""
    with transaction.atomic():
        due = list(
            queryset.select_for_update(skip_locked=True, of=("self",))
            .filter(**{f"{field}__lte": now})
            .order_by(field)[:BATCH]
        )
        for trigger in due:
            _advance(trigger, field, now)
        Trigger.objects.bulk_update(due, [field, "state"])
    return due


def _advance(trigger: Trigger, field: str, now: datetime) -> None:
    trigger._slot = getattr(trigger, field)
    if field == "next_check_at":
        trigger.next_check_at = now + timedelta(seconds=trigger.check_interval_seconds)
        return
    trigger.next_fire_at = get_kind("time")().next_fire(trigger, max(now, trigger._slot))


def _active(kind_filter: dict):
    return Trigger.objects.filter(enabled=True, scenario__active=True, **kind_filter)


def _fire_due_slots(now: datetime, previous_tick: datetime | None) -> int:
    fired = 0
    for trigger in _claim(_active({"kind": "time"}), "next_fire_at", now):
        if _suspended(trigger):
            continue
        label = f"slot {trigger._slot:%Y-%m-%d %H:%M %Z}"
        missed = previous_tick is not None and previous_tick < trigger._slot - timedelta(
            seconds=TICK_MARK
        )
        if missed and trigger.catch_up == Trigger.CatchUp.SKIP:
            TriggerEvaluation.objects.create(
                trigger=trigger,
                result="skipped",
                message=f"Missed {label}: no tick ran from {previous_tick:%Y-%m-%d %H:%M} "
                "until after it; catch-up policy: skip.",
            )
            continue
        if missed:
            label += ", missed while down: run once for the missed slots"
        fired += trigger_fire(trigger, trigger._slot, {}, kind_label=label) == "fired"
    return fired


def _evaluate_due_checks(now: datetime) -> int:
    evaluated = 0
    for trigger in _claim(
        _active({"next_check_at__isnull": False}).exclude(kind="time"), "next_check_at", now
    ):
        trigger_evaluate(trigger, now)
        evaluated += 1
    return evaluated


def _suspended(trigger: Trigger) -> bool:
    """Gated kinds stop (recorded, never deleted) while the license lacks them."""
    gate = kind_gate(trigger.kind)
    reason = "" if gate.allowed else gate.reason
    if reason != trigger.suspended_reason:
        Trigger.objects.filter(pk=trigger.pk).update(suspended_reason=reason)
        trigger.suspended_reason = reason
        TriggerEvaluation.objects.create(
            trigger=trigger,
            result="suspended" if reason else "unchanged",
            message=reason or "The license allows this kind again: resumed.",
        )
    return bool(reason)


def trigger_evaluate(trigger: Trigger, now: datetime, *, fire: bool = True) -> TriggerEvaluation:
    """Evaluate a polled trigger once; ``fire=False`` is the "Test now" of admin and API."""
    if _suspended(trigger):
        return trigger.evaluations.first()
    if trigger.scenario.runs.filter(status__in=("queued", "running")).exists() and fire:
        return TriggerEvaluation.objects.create(
            trigger=trigger, result="skipped", message="The scenario is running."
        )
    try:
        outcome = get_kind(trigger.kind)().evaluate(trigger, now)
    except Exception as error:  # an evaluation error is recorded, never raised into the tick
        log.exception("trigger %s failed", trigger.pk)
        return TriggerEvaluation.objects.create(
            trigger=trigger, result="error", message=f"{type(error).__name__}: {error}"
        )
    if not fire:
        return TriggerEvaluation(trigger=trigger, result=outcome.result, message=outcome.message)
    if outcome.state is not None:
        Trigger.objects.filter(pk=trigger.pk).update(state=outcome.state)
    if outcome.result == "fired":
        trigger_fire(trigger, now, outcome.params, kind_label=outcome.message)
        return trigger.evaluations.first()
    return TriggerEvaluation.objects.create(
        trigger=trigger, result=outcome.result, message=outcome.message
    )


def triggers_after_run(run) -> None:
    """A run ended: fire the after-scenario triggers that wait for it."""
    candidates = _active({"kind": "after_scenario", "params__scenario": run.scenario_id})
    for trigger in candidates.select_related("scenario__project"):
        if run.status not in trigger.params.get("outcomes", []) or _suspended(trigger):
            continue
        owner = trigger.scenario.effective_run_as()
        from apps.projects.permissions import can

        if owner is None or not can(owner, "run", run.scenario):
            TriggerEvaluation.objects.create(
                trigger=trigger,
                result="error",
                message="The run-as user may not watch that scenario.",
            )
            continue
        trigger_fire(
            trigger,
            run.finished_at or timezone.now(),
            {"upstream_run": run.pk, "upstream_outcome": run.status},
            kind_label=f"{run.scenario} ended {run.status}",
        )
