"""Run lifecycle services: every run starts, aborts and ends here (DESIGN §5)."""

from __future__ import annotations

import functools
import logging
import os
import queue
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, OuterRef, Q, QuerySet, Subquery
from django.forms.models import model_to_dict
from django.utils import timezone

from apps.runs import claim
from apps.runs.claim import WAITING_LANE
from apps.runs.events import publish_run_state
from apps.runs.models import ACTIVE_STATUSES, FINAL_STATUSES, Run, RunStatus, StepRun
from apps.scenarios.models import Scenario

log = logging.getLogger(__name__)
SKIP_REASONS = {
    "skip": "a run is already active",
    "queue_one": "a run is already queued",
    "parallel": "{scenario.max_parallel} runs are already active",
}
STEP_FIELDS = [
    "name",
    "type",
    "params",
    "enabled",
    "run_condition",
    "condition_outcomes",
    "condition_expression",
    "retries",
    "retry_delay_seconds",
    "retry_backoff",
    "timeout_seconds",
    "warnings_as",
    "proceed_on_failure",
    "reset_failure_state",
]


@dataclass(frozen=True)
class RunStart:
    run: Run | None
    reason: str = ""
    active: Run | None = None


def _lanes(scenario: Scenario) -> list[str]:
    if scenario.queue_policy == Scenario.QueuePolicy.QUEUE_ONE:
        return ["0", WAITING_LANE]
    if scenario.queue_policy == Scenario.QueuePolicy.PARALLEL:
        return [str(lane) for lane in range(scenario.max_parallel)]
    return ["0"]


def _definition(scenario: Scenario, steps=None) -> dict:
    steps = scenario.steps.all() if steps is None else steps
    steps = [model_to_dict(step, fields=STEP_FIELDS) for step in steps]
    return {
        "scenario": {
            "id": scenario.pk,
            "name": scenario.name,
            "kind": scenario.kind,
            "script": scenario.script,
            "run_timeout_seconds": scenario.run_timeout_seconds,
            "queue_policy": scenario.queue_policy,
        },
        "steps": steps,
    }


def run_start(
    *,
    scenario: Scenario,
    user=None,
    trigger_kind: str = "manual",
    trigger_name: str = "",
    trigger_params: dict | None = None,
    parent_run: Run | None = None,
) -> RunStart:
    """Create a run if the queue policy lets it; dispatch it once committed.

    The unique (scenario, lane) constraint decides under races, not a prior check.
    """
    try:
        with transaction.atomic():
            scenario = (
                Scenario.objects.select_for_update().select_related("project").get(pk=scenario.pk)
            )
            # The steps' default ordering joins the scenario and the project: not needed here.
            definition = _definition(scenario, scenario.steps.order_by("position", "id"))
            fields = {
                "scenario": scenario,
                "project": scenario.project,
                "trigger_kind": trigger_kind,
                "trigger_name": trigger_name,
                "trigger_params": trigger_params or {},
                "started_by": user,
                # effective_run_as(), without a query
                "run_as_id": scenario.run_as_id or scenario.updated_by_id or (user and user.pk),
                "parent_run": parent_run,
                "definition": definition,
                "variables": {**scenario.project.variables, **scenario.variables},
            }
            run = _run_in_a_free_lane(scenario, fields)
            if run.lane != WAITING_LANE:
                transaction.on_commit(lambda: run_dispatch(run.pk, stamp=False))
            transaction.on_commit(lambda: publish_run_state(run))
    except _NoFreeLane:
        active = scenario.runs.filter(status__in=ACTIVE_STATUSES).order_by("id").first()
        reason = SKIP_REASONS[scenario.queue_policy].format(scenario=scenario)
        return RunStart(None, reason, active)
    return RunStart(run)


class _NoFreeLane(Exception):
    pass


def _run_in_a_free_lane(scenario: Scenario, fields: dict) -> Run:
    """The run in the first lane the unique (scenario, lane) constraint lets it take. Only a
    lane with another after it is tried in a savepoint: when the last one is taken, the
    whole transaction (the run counter's increment with it) rolls back. So the default
    policy, one lane, costs no savepoint."""
    lanes = _lanes(scenario)
    for lane in lanes:
        last = lane == lanes[-1]
        try:
            with transaction.atomic(savepoint=not last):
                scenario.run_counter += 1
                scenario.save(update_fields=["run_counter"])
                return Run.objects.create(
                    **fields,
                    number=scenario.run_counter,
                    lane=lane,
                    # Sent once committed: stamped here, not by an UPDATE before the send.
                    dispatched_at=None if lane == WAITING_LANE else timezone.now(),
                )
        except IntegrityError:
            if last:
                raise _NoFreeLane from None
            scenario.refresh_from_db(fields=["run_counter"])
    raise AssertionError("unreachable: the last lane returns or raises")


@dataclass(frozen=True)
class RunRequest:
    scenario_id: int
    trigger_kind: str
    trigger_name: str = ""
    trigger_params: dict | None = None


def runs_start_many(requests: list[RunRequest]) -> list[RunStart]:
    """``run_start`` for a batch (a burst of time slots), in a few queries for all of them.

    The same queue policy: the batch's scenarios are locked (in id order, so that batches
    never deadlock), their lanes read once, and the free lanes handed out in request order.
    """
    if not requests:
        return []
    with transaction.atomic():
        scenarios = {
            scenario.pk: scenario
            for scenario in Scenario.objects.select_for_update(of=("self",))
            .select_related("project")
            .prefetch_related("steps")
            .filter(pk__in={request.scenario_id for request in requests})
            .order_by("pk")
        }
        taken: dict[int, set[str]] = {pk: set() for pk in scenarios}
        for scenario_id, lane in Run.objects.filter(
            scenario_id__in=scenarios, lane__isnull=False
        ).values_list("scenario_id", "lane"):
            taken[scenario_id].add(lane)
        starts = [_start_in_batch(scenarios, taken, request) for request in requests]
        created = [start.run for start in starts if start.run]
        Run.objects.bulk_create(created)
        added = Counter(run.scenario_id for run in created)
        by_increment = defaultdict(list)  # a burst adds one run to each: one UPDATE, no CASE
        for scenario_id, count in added.items():
            by_increment[count].append(scenario_id)
        for count, ids in by_increment.items():
            Scenario.objects.filter(pk__in=ids).update(run_counter=F("run_counter") + count)
        transaction.on_commit(lambda: dispatcher.submit(created))
    return starts


def _start_in_batch(scenarios: dict, taken: dict, request: RunRequest) -> RunStart:
    scenario = scenarios.get(request.scenario_id)
    if scenario is None:
        return RunStart(None, "the scenario no longer exists")
    lane = next((lane for lane in _lanes(scenario) if lane not in taken[scenario.pk]), None)
    if lane is None:
        return RunStart(None, SKIP_REASONS[scenario.queue_policy].format(scenario=scenario))
    taken[scenario.pk].add(lane)
    scenario.run_counter += 1
    run_as_id = scenario.run_as_id or scenario.updated_by_id  # effective_run_as(), no query
    return RunStart(
        Run(
            scenario=scenario,
            project=scenario.project,
            number=scenario.run_counter,
            lane=lane,
            trigger_kind=request.trigger_kind,
            trigger_name=request.trigger_name,
            trigger_params=request.trigger_params or {},
            started_by_id=run_as_id,
            run_as_id=run_as_id,
            definition=_definition(scenario),
            variables={**scenario.project.variables, **scenario.variables},
        )
    )


class Dispatcher:
    """Sends batches of new runs to the broker from a thread of this process, so that a
    burst's next batch of runs is created while the last one is being sent (10,000 sends
    take seconds). A send lost with the process leaves its runs queued: the sweep resends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()

    def submit(self, runs: list[Run]) -> None:
        if not runs:
            return
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked child (Celery prefork)
                self._queue = queue.SimpleQueue()
                threading.Thread(target=self._loop, name="cadenza-dispatch", daemon=True).start()
                self._pid = os.getpid()
        self._queue.put(runs)

    def _loop(self) -> None:
        while True:
            runs = self._queue.get()
            try:
                runs_dispatch_many(runs)
            except Exception:  # the sweep resends what stays queued
                log.exception("could not dispatch %d runs", len(runs))
            finally:
                connection.close()  # idle between bursts: hold no database connection


dispatcher = Dispatcher()


def runs_dispatch_many(runs: list[Run]) -> None:
    """Send a batch of new runs to the workers over one broker connection."""
    from apps.runs.tasks import execute

    ready = [run for run in runs if run.lane != WAITING_LANE]
    Run.objects.filter(pk__in=[run.pk for run in ready]).update(dispatched_at=timezone.now())
    try:
        with execute.app.producer_or_acquire() as producer:
            for run in ready:
                execute.apply_async((run.pk,), producer=producer)
    except Exception:  # broker down: the runs stay queued and the sweep sends them again
        log.warning("could not dispatch %d runs; the sweep will retry", len(ready), exc_info=True)
    for run in runs:
        publish_run_state(run)


def run_dispatch(run_id: int, *, stamp: bool = True) -> None:
    """Send the run to the workers; ``stamp=False`` when ``dispatched_at`` is already set."""
    from apps.runs.tasks import execute

    if stamp:
        Run.objects.filter(pk=run_id).update(dispatched_at=timezone.now())
    try:
        execute.delay(run_id)
    except Exception:  # broker down: the run stays queued and the sweep sends it again
        log.warning("could not dispatch run %s; the sweep will retry", run_id, exc_info=True)


def run_claim(run_id: int, worker: str) -> Run | None:
    """queued → running; exactly one caller wins (a redelivered message finds nothing).
    The winner gets the run loaded as the runner reads it (``apps.runs.claim``)."""
    return claim.run_claim(run_id, worker, timezone.now())


def run_finish(
    run_id: int,
    status: str,
    message: str = "",
    *,
    variables=None,
    only_from: tuple[str, ...] = ACTIVE_STATUSES,
    steps_recorded: bool = False,
) -> bool:
    """Record the end of a run once (whoever ends it: runner, reaper, abort of a queued run).

    Does nothing unless the run's status is one of ``only_from``: a conditional update, so
    exactly one caller ends it. ``steps_recorded``: the caller (the runner, after a normal
    walk) has given every step run its final state, so none is left to close here.
    """
    assert status in FINAL_STATUSES, status
    now = timezone.now()
    fields = {"status": status, "finished_at": now, "lane": None, "outcome_message": message}
    if variables is not None:
        fields["variables"] = variables
    with transaction.atomic():
        if not Run.objects.filter(pk=run_id, status__in=only_from).update(**fields):
            return False
        run = _ended_run(run_id)
        if not steps_recorded:
            StepRun.objects.filter(run_id=run_id, status__in=["pending", "running"]).update(
                status="aborted" if status == RunStatus.ABORTED else "failed",
                finished_at=now,
                error=message,
            )
        if run.waiting_id is not None:
            _promote_waiting(run.waiting_id)
    publish_run_state(run)
    _report_end(run)
    return True


def _ended_run(run_id: int) -> Run:
    """The ended run, with what its end depends on read in the same query: the run waiting
    for its lane, whether end reporters or after-scenario triggers listen (mostly none)."""
    return _ended_runs().get(pk=run_id)


@functools.cache
def _ended_runs() -> QuerySet[Run]:
    # Built once per process: building the subqueries cost more CPU than running them.
    from apps.reporters.services import reporters_listening
    from apps.triggers.selectors import after_scenario_watchers

    waiting = Run.objects.filter(
        scenario_id=OuterRef("scenario_id"), lane=WAITING_LANE, status=RunStatus.QUEUED
    )
    return Run.objects.annotate(
        waiting_id=Subquery(waiting.values("pk")[:1]),
        end_reporters=reporters_listening("end"),
        followers=after_scenario_watchers(),
    )


def _report_end(run: Run) -> None:
    # Every end passes here (runner, reaper, abort of a queued run): end reporters fire once.
    from apps.reporters.services import reporters_fire

    try:
        if run.end_reporters:
            reporters_fire(run, "end")
    except Exception:  # a reporter never changes how a run ended
        log.exception("end reporters of run %s failed", run.pk)
    from apps.triggers.services import triggers_after_run

    try:
        if run.followers:
            triggers_after_run(run)
    except Exception:  # nor does a downstream trigger
        log.exception("after-scenario triggers of run %s failed", run.pk)


def _promote_waiting(waiting_id: int) -> None:
    waiting = Run.objects.filter(pk=waiting_id, lane=WAITING_LANE, status=RunStatus.QUEUED)
    try:
        with transaction.atomic():
            if not waiting.update(lane="0"):
                return  # ended or promoted meanwhile
    except IntegrityError:
        return  # another run took the lane first; this one is promoted when that one ends
    transaction.on_commit(lambda: run_dispatch(waiting_id))


def run_abort(run: Run, *, user=None) -> Run:
    """Queued runs end at once; running ones are stopped by their runner within a second.

    The database decides which, not ``run.status``: a run claimed since the caller loaded it
    must be stopped by its runner, which kills its child process, not just marked aborted.
    """
    message = f"Aborted before it started by {user or 'system'}."
    if not run_finish(run.pk, RunStatus.ABORTED, message, only_from=(RunStatus.QUEUED,)):
        Run.objects.filter(
            pk=run.pk, status=RunStatus.RUNNING, abort_requested_at__isnull=True
        ).update(abort_requested_at=timezone.now(), abort_requested_by=user)
    run.refresh_from_db()
    return run


def run_wait(
    run: Run,
    *,
    cancel: threading.Event | None = None,
    on_cancel_abort: bool = False,
    user=None,
    timeout: float | None = None,
    poll: float = 0.2,
) -> Run:
    """Block until ``run`` is final (or cancel is set: then optionally abort it)."""
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        run.refresh_from_db()
        if run.is_final:
            return run
        if cancel is not None and cancel.is_set():
            return run_abort(run, user=user) if on_cancel_abort else run
        if deadline and time.monotonic() > deadline:
            return run
        (cancel or threading.Event()).wait(poll)


def runs_sweep() -> dict:
    """Fail runs whose worker vanished; re-dispatch queued runs whose message was lost.

    A run still queued a while after it was sent is not proof of a lost message: behind a
    backlog it is simply waiting its turn, and sending it again on every sweep multiplied
    the backlog. So only as many are sent again as the broker's queue lacks messages for
    (all of them when it holds none, e.g. after a Redis restart), the oldest first; the
    rest are looked at again by the next sweeps as the queue drains.
    """
    now = timezone.now()
    lost = Run.objects.filter(
        status=RunStatus.RUNNING,
        heartbeat_at__lt=now - timedelta(seconds=settings.CADENZA_REAPER_TIMEOUT),
    ).values_list("pk", "heartbeat_at")
    reaped = 0
    for run_id, heartbeat_at in lost:
        reaped += run_finish(
            run_id,
            RunStatus.FAILED,
            f"Worker lost: no heartbeat since {heartbeat_at:%Y-%m-%d %H:%M:%S %Z}.",
        )
    stale = now - timedelta(seconds=settings.CADENZA_REDISPATCH_AFTER)
    queued = list(
        Run.objects.filter(status=RunStatus.QUEUED, lane__isnull=False)
        .filter(Q(dispatched_at__lt=stale) | Q(dispatched_at__isnull=True, queued_at__lt=stale))
        .exclude(lane=WAITING_LANE)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if queued:
        waiting = broker_backlog()
        if waiting:  # None: the broker cannot say; resend them all, as the claim dedupes
            queued = queued[: max(0, len(queued) - waiting)]
    for run_id in queued:
        run_dispatch(run_id)
    if reaped or queued:
        log.info("sweep: %d run(s) reaped, %d re-dispatched", reaped, len(queued))
    return {"reaped": reaped, "redispatched": len(queued)}


def broker_backlog() -> int | None:
    """Messages waiting in the runs' queue (None when the broker cannot be asked)."""
    from apps.runs.tasks import execute

    try:
        with execute.app.connection_for_read() as broker:
            declared = broker.default_channel.queue_declare(
                queue=settings.CELERY_TASK_DEFAULT_QUEUE, passive=True
            )
            return declared.message_count
    except Exception as error:
        if str(getattr(error, "reply_code", "")) == "404":  # never declared: nothing sent
            return 0
        log.warning("sweep: the broker's queue length is unknown", exc_info=True)
        return None


def runs_recover_after_restart() -> dict:
    """One-process mode at start-up: nothing can be running, and the broker forgot its queue."""
    running = Run.objects.filter(status=RunStatus.RUNNING).values_list("pk", flat=True)
    failed = sum(
        run_finish(pk, RunStatus.FAILED, "Worker lost: the process restarted.")
        for pk in list(running)
    )
    queued = list(
        Run.objects.filter(status=RunStatus.QUEUED, lane__isnull=False)
        .exclude(lane=WAITING_LANE)
        .values_list("pk", flat=True)
    )
    for run_id in queued:
        run_dispatch(run_id)
    return {"failed": failed, "redispatched": len(queued)}
