"""Triggers: saved through one service (which keeps beat's schedule rows in step), fired
through one service (one run per trigger and slot), evaluated in claimed batches."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule

from apps.runs.models import Run
from apps.runs.services import RunRequest, run_start, runs_start_many
from apps.system.bulk import insert_rows
from apps.triggers.kinds import Evaluation, TriggerKind, get_kind, kind_gate
from apps.triggers.kinds.time import crontab_fields
from apps.triggers.models import Trigger, TriggerEvaluation, TriggerFire

log = logging.getLogger(__name__)
BATCH = 500
# A slot is *missed* when no tick ran for a while before it came due (everything was down);
# a slot that is merely late (a backlog of due triggers) still fires. Ticks leave a mark at
# most every TICK_MARK seconds, so the mark is at most that stale while ticks run: only a mark
# older than the slot by more than twice that shows that no tick ran in the TICK_MARK seconds
# before it. A shorter outage (a beat or worker restart) makes a slot late, never missed.
TICK_MARK = 30
# A tick works through batches for at most this long; beat sends the next one each second
# (and idle workers take those, in parallel, on the batches still due).
TICK_BUDGET = 5.0
RETENTION_CHUNK = 10_000
# What an evaluation reads of a claimed trigger (the rest is deferred, loaded if touched).
CHECK_COLUMNS = (
    "id name kind enabled params state scenario_id check_interval_seconds grace_seconds "
    "next_check_at suspended_reason"
).split()
COPY_FROM = 100  # evaluations: from this many at once, COPY (PostgreSQL)
# Threads claiming polled checks side by side in one tick (PostgreSQL; see _evaluate_due_checks).
CHECK_CLAIMERS = 2


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


def trigger_check_use(kind: str, params: dict, user, project_id: int | None) -> None:
    """ValidationError on ``params`` when ``user`` may not use what valid params name (a
    SQL trigger's connection, a watched dataset's, outside their groups)."""
    refusal = get_kind(kind)().refusal(params, user, project_id)
    if refusal:
        raise ValidationError({"params": [refusal]})


def _use_changes(trigger: Trigger) -> bool:
    """Does this save start using what the params name (new, re-enabled, kind or params
    changed)? A teammate's edit of its name or grace is not a use of its connection."""
    if trigger.pk is None:
        return True
    stored = Trigger.objects.filter(pk=trigger.pk).values("kind", "params", "enabled").first()
    return stored != {"kind": trigger.kind, "params": trigger.params, "enabled": True}


@transaction.atomic
def trigger_save(trigger: Trigger, *, user) -> Trigger:
    """Validate, check the license and profile, keep beat's schedule rows in sync."""
    gate = kind_gate(trigger.kind, user)
    if trigger.enabled and not gate.allowed:  # switching a trigger off is always allowed
        raise PermissionDenied(gate.reason)
    trigger.params = trigger_validate(trigger.kind, trigger.params)
    if trigger.enabled and _use_changes(trigger):
        trigger_check_use(trigger.kind, trigger.params, user, trigger.scenario.project_id)
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
    """The system tick (beat sends it every second): due time slots, then due checks.

    A tick works through claimed batches until nothing is due or its budget is spent; ticks
    running at once on several workers take disjoint batches (SKIP LOCKED), which is how a
    burst fans out over the workers.
    """
    now = now or timezone.now()
    previous = _mark_tick(now)
    deadline = time.monotonic() + TICK_BUDGET
    return {
        "slots": _fire_due_slots(now, previous, deadline),
        "checks": _evaluate_due_checks(now, deadline),
    }


def _mark_tick(now: datetime) -> datetime | None:
    """When ticks last ran (before this one); refreshed every TICK_MARK seconds at most."""
    from apps.system.models import Heartbeat

    mark = Heartbeat.objects.filter(name="trigger-tick").values_list("at", flat=True).first()
    if mark is None or (now - mark).total_seconds() >= TICK_MARK:
        Heartbeat.objects.update_or_create(name="trigger-tick", defaults={"at": now})
        _forget_old_evaluations(now)
    return mark


def _forget_old_evaluations(now: datetime) -> None:
    """Retention: evaluations older than the setting go, a bounded chunk at a time."""
    cutoff = now - timedelta(days=settings.CADENZA_TRIGGER_EVALUATION_DAYS)
    old = TriggerEvaluation.objects.filter(at__lt=cutoff).values("pk")[:RETENTION_CHUNK]
    TriggerEvaluation.objects.filter(pk__in=old).delete()


def _claim(queryset, field: str, now: datetime) -> list[Trigger]:
    """Lock a batch of due triggers (SKIP LOCKED: other workers take the next batch) and
    move their due time on. The caller's transaction keeps the locks while it fires."""
    due = list(
        queryset.select_for_update(skip_locked=True, of=("self",))
        .filter(**{f"{field}__lte": now})
        .order_by(field)[:BATCH]
    )
    moved = defaultdict(list)  # new due time → triggers: a burst shares a handful of values
    for trigger in due:
        _advance(trigger, field, now)
        moved[getattr(trigger, field)].append(trigger.pk)
    for value, ids in moved.items():
        Trigger.objects.filter(pk__in=ids).update(**{field: value})
    return due


def _claim_checks(polled, now: datetime) -> list[Trigger]:
    """Claim a batch of due checks and move each on (``_next_check``). On PostgreSQL this is
    one statement (UPDATE … RETURNING over a SKIP LOCKED subquery): the trigger ids never
    travel as a 500-item IN list, whose client-side quoting cost more than the query."""
    if connection.vendor != "postgresql":
        with transaction.atomic():
            return _claim(polled, "next_check_at", now)
    due = (
        polled.select_for_update(skip_locked=True, of=("self",))
        .filter(next_check_at__lte=now)
        .order_by("next_check_at")
        .values("pk")[:BATCH]
    )
    table = connection.ops.quote_name(Trigger._meta.db_table)
    scenarios = connection.ops.quote_name(Trigger.scenario.field.related_model._meta.db_table)
    runs = connection.ops.quote_name(Run._meta.db_table)
    columns = ", ".join(f"t.{column}" for column in CHECK_COLUMNS)
    step = "t.check_interval_seconds * interval '1 second'"
    with transaction.atomic():  # one statement; Django compiles FOR UPDATE only inside one
        inner, params = due.query.sql_with_params()
        sql = (
            f"UPDATE {table} AS t SET next_check_at = GREATEST(t.next_check_at + {step}, "
            f"%s + {step} / 2) FROM {scenarios} AS s WHERE s.id = t.scenario_id AND "
            f"t.id IN ({inner}) RETURNING {columns}, s.project_id AS scenario_project_id, "
            "COALESCE(s.run_as_id, s.updated_by_id) AS scenario_run_as_id, "
            f"EXISTS (SELECT 1 FROM {runs} AS r WHERE r.scenario_id = t.scenario_id AND "
            "r.lane IS NOT NULL) AS scenario_busy"
        )
        return list(Trigger.objects.raw(sql, [now, *params]))


def _advance(trigger: Trigger, field: str, now: datetime) -> None:
    trigger._slot = getattr(trigger, field)
    if field == "next_check_at":
        trigger.next_check_at = _next_check(trigger._slot, trigger.check_interval_seconds, now)
        return
    trigger.next_fire_at = get_kind("time")().next_fire(trigger, max(now, trigger._slot))


def _next_check(due: datetime, interval: int, now: datetime) -> datetime:
    """The next check, on the trigger's own beat: due + interval, so that ticks' jitter
    does not stretch a 1 s interval to 2 s. A trigger far behind (a long cycle) is not made
    due again at once: at least half an interval from now. (The claim's SQL says the same.)"""
    step = timedelta(seconds=interval)
    return max(due + step, now + step / 2)


def _active(kind_filter: dict):
    return Trigger.objects.filter(enabled=True, scenario__active=True, **kind_filter)


def _fire_due_slots(now: datetime, previous_tick: datetime | None, deadline: float) -> int:
    fired = 0
    while time.monotonic() < deadline:
        with transaction.atomic():
            due = _claim(_active({"kind": "time"}), "next_fire_at", now)
            if not due:
                break
            fired += _fire_slots(_unsuspended(due), previous_tick)
    return fired


def _fire_slots(triggers: list[Trigger], previous_tick: datetime | None) -> int:
    """Fire a claimed batch of slots at once; a missed slot follows its catch-up policy."""
    skipped, firing = [], []
    for trigger in triggers:
        label = f"slot {trigger._slot:%Y-%m-%d %H:%M %Z}"
        missed = previous_tick is not None and previous_tick < trigger._slot - timedelta(
            seconds=2 * TICK_MARK
        )
        if missed and trigger.catch_up == Trigger.CatchUp.SKIP:
            message = (
                f"Missed {label}: no tick ran from {previous_tick:%Y-%m-%d %H:%M} "
                "until after it; catch-up policy: skip."
            )
            skipped.append(TriggerEvaluation(trigger=trigger, result="skipped", message=message))
            continue
        if missed:
            label += ", missed while down: run once for the missed slots"
        firing.append((trigger, trigger._slot, label))
    TriggerEvaluation.objects.bulk_create(skipped)
    return _fire_many(firing)


def _fire_many(firing: list[tuple[Trigger, datetime, str]]) -> int:
    """``trigger_fire`` for a batch: runs, fires and evaluations in a few bulk writes.
    A slot fired already (a racing tick, an old beat) breaks the batch's unique key: then
    the batch goes one by one, where each such slot is a recorded duplicate."""
    try:
        with transaction.atomic():
            starts = runs_start_many(
                [
                    RunRequest(t.scenario_id, t.kind, t.name, {"slot": slot.isoformat()})
                    for t, slot, _ in firing
                ]
            )
            pairs = list(zip(firing, starts, strict=True))
            now = timezone.now()
            insert_rows(
                TriggerFire,
                ["trigger_id", "slot", "run_id", "created_at"],
                [(t.pk, slot, start.run and start.run.pk, now) for (t, slot, _), start in pairs],
            )
    except IntegrityError:
        return sum(
            trigger_fire(t, slot, {}, kind_label=label) == "fired" for t, slot, label in firing
        )
    _record(
        [
            (t.pk, "fired", label, start.run.pk) if start.run else (t.pk, "skipped", start.reason)
            for (t, _, label), start in pairs
        ]
    )
    Trigger.objects.filter(pk__in=[t.pk for t, _, _ in firing]).update(last_fired_at=now)
    return sum(1 for _, start in pairs if start.run)


def _evaluate_due_checks(now: datetime, deadline: float) -> int:
    """Claim and evaluate due checks until none is due or the deadline passes.

    When a tick finds a full batch due on PostgreSQL, CHECK_CLAIMERS claim side by side: this
    thread and helper threads with connections of their own (SKIP LOCKED gives each its own
    batches). A batch spends about as long waiting for the database (its claim, its COPY) as
    evaluating, so one claimer evaluates while another waits. A tick with less than a batch
    due (most ticks) opens no connection; inside a transaction (a caller's, a test's) the
    helpers could not see its rows, so this thread claims alone.
    """
    polled = _polled_checks()
    first = _claim_checks(polled, now)
    alone = (
        len(first) < BATCH
        or CHECK_CLAIMERS < 2
        or connection.vendor != "postgresql"
        or connection.in_atomic_block
    )
    if alone:
        return _evaluate_checks(now, deadline, first)
    with ThreadPoolExecutor(CHECK_CLAIMERS - 1, thread_name_prefix="trigger-checks") as pool:
        helpers = [
            pool.submit(_evaluate_checks_in_helper, now, deadline)
            for _ in range(CHECK_CLAIMERS - 1)
        ]
        evaluated = _evaluate_checks(now, deadline, first)
    return evaluated + sum(helper.result() for helper in helpers)


def _evaluate_checks_in_helper(now: datetime, deadline: float) -> int:
    try:
        return _evaluate_checks(now, deadline, _claim_checks(_polled_checks(), now))
    finally:
        connection.close()  # this helper thread's own connection


def _evaluate_checks(now: datetime, deadline: float, due: list[Trigger]) -> int:
    """Evaluate the claimed batch ``due``, then claim and evaluate more until none is due."""
    evaluated = 0
    kinds: dict[str, TriggerKind] = {}  # one instance per kind and claimer: it memoizes reads
    polled = _polled_checks()
    while due:
        triggers_evaluate_many(due, now, kinds=kinds)
        evaluated += len(due)
        due = _claim_checks(polled, now) if time.monotonic() < deadline else []
    return evaluated


def _polled_checks():
    return _active({"next_check_at__isnull": False}).exclude(kind="time")


def _unsuspended(triggers: list[Trigger]) -> list[Trigger]:
    """Gated kinds stop (recorded, never deleted) while the license lacks them; the license
    is read once per kind and batch, and only a change of reason is written."""
    reasons = {}
    for key in {trigger.kind for trigger in triggers}:
        gate = kind_gate(key)
        reasons[key] = "" if gate.allowed else gate.reason
    changed = [t for t in triggers if reasons[t.kind] != t.suspended_reason]
    for trigger in changed:
        trigger.suspended_reason = reasons[trigger.kind]
    if changed:
        Trigger.objects.bulk_update(changed, ["suspended_reason"])
        TriggerEvaluation.objects.bulk_create(
            TriggerEvaluation(
                trigger=t,
                result="suspended" if t.suspended_reason else "unchanged",
                message=t.suspended_reason or "The license allows this kind again: resumed.",
            )
            for t in changed
        )
    return [t for t in triggers if not t.suspended_reason]


def triggers_evaluate_many(
    triggers: list[Trigger], now: datetime, *, kinds: dict | None = None
) -> dict[int, TriggerEvaluation | None]:
    """Evaluate polled triggers: a few queries per batch (license, running scenarios, what
    the kinds prefetch, the new states, the evaluations), plus one fire per change."""
    kinds = {} if kinds is None else kinds
    live = _unsuspended(triggers)
    # Active runs hold a lane. A tick's claim says which scenarios are busy; otherwise ask.
    unknown = {t.scenario_id for t in live if not hasattr(t, "scenario_busy")}
    running = {t.scenario_id for t in live if getattr(t, "scenario_busy", False)}
    if unknown:
        running.update(
            Run.objects.filter(scenario_id__in=unknown, lane__isnull=False).values_list(
                "scenario_id", flat=True
            )
        )
    for key in {t.kind for t in live}:
        kinds.setdefault(key, get_kind(key)())
        kinds[key].prefetch([t for t in live if t.kind == key])
    records, moved, fired = [], [], []  # records: (trigger id, result, message)
    for trigger in live:
        if trigger.scenario_id in running:
            records.append((trigger.pk, "skipped", "The scenario is running."))
            continue
        outcome = _outcome(kinds[trigger.kind], trigger, now)
        if outcome.state is not None and outcome.state != trigger.state:
            trigger.state = outcome.state
            moved.append(trigger)
        if outcome.result == "fired":
            fired.append((trigger, outcome))
        else:
            records.append((trigger.pk, outcome.result, outcome.message))
    Trigger.objects.bulk_update(moved, ["state"])
    results = dict.fromkeys((t.pk for t in triggers), None)
    results.update((record.trigger_id, record) for record in _record(records))
    for trigger, outcome in fired:
        trigger_fire(trigger, now, outcome.params, kind_label=outcome.message)
    return results


def _record(records: list[tuple]) -> list[TriggerEvaluation]:
    """Store evaluations, each (trigger id, result, message[, run id]). A cycle writes
    thousands: from COPY_FROM on they are copied, not returned (nobody waits for them)."""
    records = [(*record, None)[:4] for record in records]
    if len(records) < COPY_FROM:
        return TriggerEvaluation.objects.bulk_create(
            TriggerEvaluation(trigger_id=pk, result=result, message=message, run_id=run)
            for pk, result, message, run in records
        )
    at = timezone.now()
    insert_rows(
        TriggerEvaluation,
        ["trigger_id", "at", "result", "message", "run_id"],
        [(pk, at, result, message, run) for pk, result, message, run in records],
    )
    return []


def _outcome(kind: TriggerKind, trigger: Trigger, now: datetime) -> Evaluation:
    try:
        outcome = kind.evaluate(trigger, now)
    except Exception as error:  # an evaluation error is recorded, never raised into the tick
        log.exception("trigger %s failed", trigger.pk)
        return Evaluation("error", f"{type(error).__name__}: {error}")
    return outcome


def trigger_evaluate(trigger: Trigger, now: datetime, *, fire: bool = True) -> TriggerEvaluation:
    """Evaluate a polled trigger once; ``fire=False`` is the "Test now" of admin and API."""
    if not fire:
        if not _unsuspended([trigger]):
            return trigger.evaluations.first()
        kind = get_kind(trigger.kind)()
        kind.prefetch([trigger])
        outcome = _outcome(kind, trigger, now)
        return TriggerEvaluation(trigger=trigger, result=outcome.result, message=outcome.message)
    return triggers_evaluate_many([trigger], now)[trigger.pk] or trigger.evaluations.first()


def triggers_after_run(run) -> None:
    """A run ended: fire the after-scenario triggers that wait for it."""
    candidates = _active({"kind": "after_scenario", "params__scenario": run.scenario_id})
    for trigger in candidates.select_related("scenario__project"):
        if run.status not in trigger.params.get("outcomes", []) or not _unsuspended([trigger]):
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
