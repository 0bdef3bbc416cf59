"""The runner: the only code that walks steps and records their results (DESIGN §5).

A run executes in the worker thread that claimed it. Each step runs in a thread of its own
so that the runner can enforce timeouts and aborts; steps that run child processes (Python,
shell) kill them as soon as their ``cancel`` event is set.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.utils import timezone

from apps.runs.events import publish_log_lines, publish_run_state
from apps.runs.logs import LogWriter
from apps.runs.models import Run, RunStatus, StepRun
from apps.runs.services import run_claim, run_finish
from apps.runs.step_context import StepContext
from apps.scenarios.expressions import ExpressionError, evaluate
from apps.scenarios.models import Step, variable_name
from apps.scenarios.steps import StepError, StepResult, get_step_type, validate_params
from apps.system.log_format import bind_run

log = logging.getLogger(__name__)
SEVERITY = {"success": 0, "warning": 1, "failed": 2}
SCRIPT_STEP = {
    "name": "script",
    "type": "python",
    "enabled": True,
    "run_condition": "always",
    "retries": 0,
    "timeout_seconds": None,
    "warnings_as": "warning",
    "proceed_on_failure": False,
    "reset_failure_state": False,
    "condition_outcomes": [],
    "condition_expression": "",
    "retry_delay_seconds": 0,
    "retry_backoff": 1.0,
}
FINISH_TIMEOUT = 60.0  # seconds the runner keeps trying to record the end through a DB outage
IDLE_CHECK = 1.0  # seconds of a step after which the runner checks its connection


def run_execute(run_id: int) -> None:
    worker = f"{socket.gethostname()}:{os.getpid()}"
    run = _claim(run_id, worker)
    if run is None:
        return
    bind_run(run)
    publish_run_state(run)
    runner = Runner(run)
    status, message, walked = RunStatus.FAILED, "Internal error", False
    try:
        status, message = runner.execute()
        walked = True  # every step run has its final state
    except Exception as error:  # the run must end, whatever happened
        log.exception("run %s crashed", run_id)
        runner.log(f"Internal error: {error}", level="error")
        message = f"Internal error: {type(error).__name__}: {error}"
    finally:
        last_lines = runner.close()
        ended = _finish(run_id, status, message, runner.scenario_variables, walked)
        if last_lines and not ended:  # no final state went out to make viewers read them
            publish_log_lines(run_id, last_lines)


def _claim(run_id: int, worker: str) -> Run | None:
    """The claim is the task's first statement, made without a health check: a connection
    that broke since the last task (a database restart) fails here, and is made anew. Had
    the server applied the claim before the connection broke, the retry finds the run
    claimed, and the reaper ends it (never heartbeated) as for a lost worker."""
    try:
        return run_claim(run_id, worker)
    except (InterfaceError, OperationalError):
        if connection.in_atomic_block:
            raise
        log.warning("run %s: the database connection broke; reconnecting", run_id)
        connection.close()
        return run_claim(run_id, worker)


def _finish(run_id: int, status: str, message: str, variables: dict, walked: bool) -> bool:
    """``run_finish``, retried through a database outage: a run whose connection broke must
    still end with its real outcome, not wait for the reaper's "worker lost"."""
    deadline, pause = time.monotonic() + FINISH_TIMEOUT, 0.1
    while True:
        try:
            return run_finish(run_id, status, message, variables=variables, steps_recorded=walked)
        except DatabaseError:
            if time.monotonic() > deadline:
                raise  # the heartbeat has stopped: the reaper ends the run
            log.warning("run %s: could not record its end; retrying", run_id, exc_info=True)
        time.sleep(pause)
        pause = min(pause * 2, 2.0)
        _check_connection()


class Runner:
    def __init__(self, run: Run):
        self.run, self.scenario, self.project = run, run.scenario, run.project
        self.user = run.run_as
        self.thread = threading.current_thread()
        self.writer = LogWriter(run.pk, last_seq=0)  # claimed just now: nobody logged yet
        self.abort = threading.Event()
        self.timed_out = False
        self.outcome = "success"
        self.step_outcomes: dict[str, str] = {}
        self.step_outputs: dict[str, object] = {}
        self.project_variables = dict(self.project.variables)
        self.scenario_variables = dict(run.variables)
        self.position = 0
        timeout = run.definition["scenario"].get("run_timeout_seconds")
        self.deadline = run.started_at + timedelta(seconds=timeout) if timeout else None
        self.last_beat = run.heartbeat_at or timezone.now()
        watcher.add(self)

    # -- the walk ------------------------------------------------------------------------------

    def execute(self) -> tuple[str, str]:
        definition = self.run.definition
        self.log(
            f"Run #{self.run.number} of {self.scenario} started by {self.run.trigger_kind}"
            f"{f' ({self.run.trigger_name})' if self.run.trigger_name else ''}, "
            f"as {self.user or 'nobody'}"
        )
        if definition["scenario"]["kind"] == "python":
            steps = [{**SCRIPT_STEP, "params": {"code": definition["scenario"]["script"]}}]
        else:
            steps = definition["steps"]
        self._report_start()
        for step in steps:
            if self.abort.is_set():
                break
            self.run_step(step)
        return self._final()

    def _report_start(self) -> None:
        """Start reporters go out before the first step: their first attempt is made here."""
        from apps.reporters.services import reporters_fire

        if not self.run.start_reporters:
            return
        try:
            for delivery in reporters_fire(self.run, "start", send_now=True):
                self.log(f"Start message via {delivery.channel.name}: {delivery.status}")
        except Exception as error:  # a reporter never fails the run
            log.exception("start reporters of run %s failed", self.run.pk)
            self.log(f"Start reporters failed: {error}", level="warning")

    def _final(self) -> tuple[str, str]:
        if self.timed_out:
            return RunStatus.FAILED, "The run timed out."
        if self.abort.is_set():
            return RunStatus.ABORTED, "Aborted on request."
        failed = [name for name, outcome in self.step_outcomes.items() if outcome == "failed"]
        message = f"Failed step(s): {', '.join(failed)}" if self.outcome == "failed" else ""
        return self.outcome, message

    def run_step(self, step: dict) -> StepRun | None:
        position, self.position = self.position, self.position + 1
        if not step.get("enabled", True):
            return self._record_skip(position, step, "disabled")
        if step.get("reset_failure_state"):
            self.outcome = "success"
        try:
            go, why = self._should_run(step)
        except ExpressionError as error:
            go, why = None, f"Run condition error: {error}"
        if go is None:
            step_run = self._record_skip(position, step, why, status="failed")
            self._account(step, "failed", None)
            return step_run
        if not go:
            return self._record_skip(position, step, why)
        return self._run_with_retries(position, step)

    def run_nested_step(self, step_type: str, params: dict, name: str | None) -> dict:
        """A step asked for by a script (``scenario.run_step``): recorded like any other."""
        try:
            get_step_type(step_type)
        except KeyError:
            raise StepError(f"Unknown step type {step_type!r}.") from None
        step = {
            **SCRIPT_STEP,
            "run_condition": "always",
            "type": step_type,
            "params": params,
            "name": name or f"{step_type}_{self.position}",
        }
        step_run = self._run_with_retries(self.position, step)
        self.position += 1
        step_run.refresh_from_db()
        return {"status": step_run.status, "output": step_run.output, "message": step_run.message}

    def _should_run(self, step: dict) -> tuple[bool, str]:
        condition = step.get("run_condition", Step.Condition.NO_PRIOR_FAILURE)
        if condition == Step.Condition.ALWAYS:
            return True, ""
        if condition == Step.Condition.NO_PRIOR_FAILURE:
            return self.outcome != "failed", "a prior step failed"
        if condition == Step.Condition.PRIOR_FAILURE:
            return self.outcome == "failed", "no prior step failed"
        if condition == Step.Condition.OUTCOME_IN:
            allowed = step.get("condition_outcomes") or []
            return self.outcome in allowed, f"outcome {self.outcome} is not in {allowed}"
        result = evaluate(step.get("condition_expression") or "False", self.names())
        return bool(result), f"condition {step.get('condition_expression')!r} is false"

    def _run_with_retries(self, position: int, step: dict) -> StepRun:
        delay = float(step.get("retry_delay_seconds") or 0)
        attempts = int(step.get("retries") or 0) + 1
        for attempt in range(1, attempts + 1):
            if attempt > 1 or threading.current_thread() is not self.thread:
                _check_connection()  # after a retry delay; a nested step's thread
            step_run = StepRun.objects.create(
                run=self.run,
                position=position,
                name=step["name"],
                type=step["type"],
                step=step,
                attempt=attempt,
                status=StepRun.Status.RUNNING,
                started_at=timezone.now(),
            )
            suffix = f" (attempt {attempt}/{attempts})" if attempts > 1 else ""
            self.log(f"Step {step['name']!r} started{suffix}", step_run=step_run)
            began = time.monotonic()
            result = self._execute(step, step_run)
            if time.monotonic() - began >= IDLE_CHECK:
                _check_connection()
            status = self._apply_policies(step, result.status)
            self._save(step_run, status, result)
            if status != "failed" or attempt == attempts or self.abort.is_set():
                break
            self.log(
                f"Step {step['name']!r} failed; retrying in {delay:g} s",
                level="warning",
                step_run=step_run,
            )
            if self.abort.wait(delay):
                break
            delay *= float(step.get("retry_backoff") or 1)
        self._account(step, status, result.output)
        return step_run

    def _apply_policies(self, step: dict, status: str) -> str:
        if status == "warning":
            status = step.get("warnings_as") or "warning"
        if status == "failed" and step.get("proceed_on_failure"):
            status = "warning"
        return status

    def _account(self, step: dict, status: str, output) -> None:
        name = variable_name(step["name"])
        self.step_outcomes[name], self.step_outputs[name] = status, output
        if status in SEVERITY and SEVERITY[status] > SEVERITY[self.outcome]:
            self.outcome = status

    def _execute(self, step: dict, step_run: StepRun) -> StepResult:
        ctx = StepContext(self, step, step_run)
        box: dict[str, StepResult] = {}
        thread = threading.Thread(target=self._call, args=(ctx, step, box), daemon=True)
        thread.start()
        deadline = self._step_deadline(step)
        while thread.is_alive():
            thread.join(0.05)
            if self.abort.is_set() or (deadline and timezone.now() >= deadline):
                ctx.cancel.set()
                thread.join(2.0)  # sandboxed children die at once; give in-process steps a moment
                if self.timed_out:
                    return StepResult("failed", message="The run timed out.")
                if self.abort.is_set():
                    return StepResult("aborted", message="Aborted.")
                return StepResult("failed", message=f"Timed out after {step['timeout_seconds']} s.")
        return box.get("result") or StepResult("failed", message="The step returned nothing.")

    def _step_deadline(self, step: dict):
        limits = [self.deadline] if self.deadline else []
        if step.get("timeout_seconds"):
            limits.append(timezone.now() + timedelta(seconds=step["timeout_seconds"]))
        return min(limits) if limits else None

    def _call(self, ctx: StepContext, step: dict, box: dict) -> None:
        try:
            params = validate_params(step["type"], step.get("params") or {})
            box["result"] = get_step_type(step["type"])().run(ctx, params) or StepResult()
        except StepError as error:
            box["result"] = StepResult("failed", message=str(error))
        except Exception as error:
            messages = getattr(error, "messages", None)
            text = "; ".join(messages) if messages else f"{type(error).__name__}: {error}"
            ctx.log(traceback.format_exc(), level="error")
            box["result"] = StepResult("failed", message=text)
        finally:
            connection.close()  # the step thread's own connection

    def _save(self, step_run: StepRun, status: str, result: StepResult) -> None:
        step_run.status = status
        step_run.finished_at = timezone.now()
        step_run.output = result.output
        step_run.message = result.message
        if status == "failed":
            step_run.error = result.message
        step_run.save(update_fields=["status", "finished_at", "output", "message", "error"])
        level = {"failed": "error", "warning": "warning"}.get(status, "info")
        detail = f": {result.message}" if result.message else ""
        self.log(f"Step {step_run.name!r} {status}{detail}", level=level, step_run=step_run)

    def _record_skip(self, position: int, step: dict, why: str, status: str = "skipped"):
        now = timezone.now()
        step_run = StepRun.objects.create(
            run=self.run,
            position=position,
            name=step["name"],
            type=step["type"],
            step=step,
            status=status,
            started_at=now,
            finished_at=now,
            message=why,
            error=why if status == "failed" else "",
        )
        self.log(
            f"Step {step['name']!r} {status}: {why}",
            level="error" if status == "failed" else "info",
            step_run=step_run,
        )
        return step_run

    # -- variables, logging and the watcher ---------------------------------------------------

    def names(self) -> dict:
        params = self.run.trigger_params or {}
        names = {
            **self.project_variables,
            **self.scenario_variables,
            "outcome": self.outcome,
            "triggerParams": params,
            "triggerKind": self.run.trigger_kind,
            "projectKey": self.project.key,
            "scenarioName": self.scenario.name,
            "runNumber": self.run.number,
        }
        names.update({f"triggerParam_{key}": value for key, value in params.items()})
        names.update({f"stepOutcome_{key}": value for key, value in self.step_outcomes.items()})
        names.update({f"stepOutput_{key}": value for key, value in self.step_outputs.items()})
        return names

    def log(self, message: str, *, level: str = "info", step_run: StepRun | None = None) -> None:
        self.writer.write(message, level=level, step_run_id=step_run.pk if step_run else None)

    def notice(self, abort_requested: bool, now) -> None:
        """The watcher's news: stop on an abort request or when the run's time is up."""
        if abort_requested and not self.abort.is_set():
            self.log("Abort requested: stopping", level="warning")
            self.abort.set()
        if self.deadline and now >= self.deadline and not self.timed_out:
            self.log("The run timed out: stopping", level="error")
            self.timed_out = True
            self.abort.set()

    def close(self) -> list[dict]:
        """Stop watching and store the last log lines; they are returned unpublished: the
        final run state, published next, makes every viewer read them from the database."""
        watcher.discard(self)
        return self.writer.close(publish=False)


class Watcher:
    """Heartbeats, abort requests and run timeouts for every run this process executes, from
    one thread: one query per poll for all of them, where a thread per run cost a thread
    start and, for any run longer than a poll, a database connection of its own.

    A database outage pauses the heartbeat, never ends it: the watcher reconnects and goes
    on, or the live runs would be reaped as "worker lost" after any restart.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pid: int | None = None
        self._runners: set[Runner] = set()

    def add(self, runner: Runner) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked child (Celery prefork)
                self._runners = set()
                threading.Thread(target=self._loop, name="cadenza-run-watcher", daemon=True).start()
                self._pid = os.getpid()
            if not self._runners:
                self._changed.notify()  # wake the idle watcher; a busy one polls on its own
            self._runners.add(runner)

    def discard(self, runner: Runner) -> None:
        with self._lock:
            self._runners.discard(runner)

    def _loop(self) -> None:
        failing = False
        while True:
            with self._lock:
                if not self._runners:
                    connection.close()  # idle: hold no connection (nor block a DROP DATABASE)
                    while not self._runners:
                        self._changed.wait()
            time.sleep(settings.CADENZA_ABORT_POLL_SECONDS)
            with self._lock:
                runners = list(self._runners)
            try:
                self._watch(runners)
            except DatabaseError:
                if not failing:
                    ids = [runner.run.pk for runner in runners]
                    log.warning("runs %s: heartbeat failed; retrying", ids, exc_info=True)
                failing = True
                connection.close()
                continue
            except Exception:  # a bug here must not stop watching every run
                log.exception("watching runs failed")
            failing = False

    def _watch(self, runners: list[Runner]) -> None:
        if not runners:
            return
        now, period = timezone.now(), settings.CADENZA_RUN_HEARTBEAT_SECONDS
        beat = [r for r in runners if (now - r.last_beat).total_seconds() >= period]
        if beat:
            Run.objects.filter(pk__in=[r.run.pk for r in beat]).update(heartbeat_at=now)
            for runner in beat:
                runner.last_beat = now
        requested = set(
            Run.objects.filter(
                pk__in=[r.run.pk for r in runners], abort_requested_at__isnull=False
            ).values_list("pk", flat=True)
        )
        for runner in runners:
            runner.notice(runner.run.pk in requested, now)


watcher = Watcher()


def _check_connection() -> None:
    """Where the runner resumes its own writes after a while (a step may have outlived a
    database restart), drop a broken connection: Django reuses a thread's connection
    unchecked until ``close_old_connections``, which Celery calls per task, not per step.
    With CONN_HEALTH_CHECKS this costs one ``SELECT 1``, so it is not paid after a step of a
    few milliseconds: a restart then is as (un)likely as between any two statements. Inside a
    transaction (an in-process test) the connection is not ours to drop."""
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()
