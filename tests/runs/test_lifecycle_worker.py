"""The run lifecycle against a real `celery worker` process on PostgreSQL and Redis:
dispatch, SIGKILLed workers and the reaper, queue_one after a restart, duplicate delivery,
abort latency (DESIGN §5)."""

from __future__ import annotations

import re
import time

import pytest

from apps.runs.models import LogLine, Run
from apps.runs.services import run_abort, run_start, runs_sweep
from apps.runs.tasks import execute
from tests.processes import process_state, reap_session, wait_until

pytestmark = [
    pytest.mark.worker,
    pytest.mark.timeout(120),
    pytest.mark.django_db(transaction=True),
]
BOUND = 30  # seconds for a run to reach a state
REAPER_TIMEOUT = 3  # seconds; the worker beats every second
FAST_REAPER = {"CADENZA_REAPER_TIMEOUT": REAPER_TIMEOUT, "CADENZA_RUN_HEARTBEAT_SECONDS": 1}
SLEEPER = (
    "import os, time\n"
    "from cadenza import scenario\n"
    "print('pid', os.getpid(), flush=True)\n"
    "time.sleep(scenario.get_trigger_params().get('sleep', 60))\n"
)


def start(scenario, user, **kwargs) -> Run:
    started = run_start(scenario=scenario, user=user, **kwargs)
    assert started.run is not None, started.reason
    return started.run


def finished(run: Run, *, timeout: float = BOUND, every: float = 0.05) -> Run:
    def final():
        run.refresh_from_db()
        return run.is_final

    wait_until(final, timeout=timeout, what=f"run {run.pk} final", every=every)
    return run


def child_pid(run: Run) -> int:
    """Wait until the run's Python step is running and its child has printed its pid."""

    def printed():
        line = LogLine.objects.filter(run=run, message__regex=r"^pid \d+$").first()
        running = run.step_runs.filter(status="running").exists()
        return running and line and int(line.message.split()[1])

    return wait_until(printed, timeout=BOUND, what=f"run {run.pk} child started")


def messages(run: Run) -> list[str]:
    return list(LogLine.objects.filter(run=run).order_by("seq").values_list("message", flat=True))


def statuses(run: Run) -> list[tuple[str, int, str]]:
    return list(run.step_runs.values_list("name", "attempt", "status"))


def sweep_until_final(run: Run) -> Run:
    def reaped():
        runs_sweep()
        run.refresh_from_db()
        return run.is_final

    wait_until(reaped, timeout=REAPER_TIMEOUT + 10, what=f"run {run.pk} reaped", every=0.1)
    return run


def test_multi_step_scenario_runs_in_the_worker(celery_worker_process, make_scenario, coder_owner):
    worker = celery_worker_process()
    scenario = make_scenario(
        steps=[
            {
                "name": "define",
                "type": "set_variables",
                "params": {"variables": {"threshold": 3}},
            },
            {
                "name": "compute",
                "type": "python",
                "params": {
                    "code": (
                        "from cadenza import scenario\n"
                        "v = scenario.get_variables()\n"
                        "print('threshold is', v['threshold'])\n"
                        "scenario.set_variables(rows=v['threshold'] * 10)\n"
                    )
                },
            },
            {
                "name": "gated",
                "type": "set_variables",
                "run_condition": "expression",
                "condition_expression": "rows > 100",
                "params": {"variables": {"never": True}},
            },
            {
                "name": "flaky",
                "type": "python",
                "retries": 2,
                "retry_delay_seconds": 0.05,
                "params": {"code": "import sys; print('failing'); sys.exit(3)"},
            },
            {"name": "after failure", "type": "set_variables", "params": {"variables": {"a": 1}}},
            {
                "name": "finally",
                "type": "set_variables",
                "run_condition": "always",
                "params": {"variables": {"cleaned": "yes"}},
            },
        ]
    )
    run = finished(start(scenario, coder_owner))
    log = messages(run)
    assert run.status == "failed", log
    assert run.worker.endswith(f":{worker.pid}")  # executed by the worker, not by this process
    assert run.outcome_message == "Failed step(s): flaky"
    assert statuses(run) == [
        ("define", 1, "success"),
        ("compute", 1, "success"),
        ("gated", 1, "skipped"),
        ("flaky", 1, "failed"),
        ("flaky", 2, "failed"),
        ("flaky", 3, "failed"),
        ("after failure", 1, "skipped"),
        ("finally", 1, "success"),
    ]
    assert run.variables["rows"] == 30 and run.variables["cleaned"] == "yes"
    assert "threshold is 3" in log
    assert log.count("failing") == 3
    assert log.count("Step 'flaky' failed: Python code failed: exit code 3") == 3
    assert "Step 'gated' skipped: condition 'rows > 100' is false" in log
    assert "Step 'after failure' skipped: a prior step failed" in log
    assert run.lane is None


def test_killed_worker_run_is_reaped_and_its_child_dies(
    celery_worker_process, sandbox_sessions, make_scenario, coder_owner, settings
):
    settings.CADENZA_REAPER_TIMEOUT = REAPER_TIMEOUT  # runs_sweep runs in this process
    worker = celery_worker_process(**FAST_REAPER)
    scenario = make_scenario(
        steps=[{"name": "sleep", "type": "python", "params": {"code": SLEEPER}}]
    )
    run = start(scenario, coder_owner)
    pid = child_pid(run)
    sandbox_sessions.append(pid)
    assert process_state(pid) in ("R", "S")

    worker.kill()
    killed = time.monotonic()
    run = sweep_until_final(run)
    reaper_latency = time.monotonic() - killed
    print(f"reaper latency after SIGKILL: {reaper_latency:.2f} s")

    assert run.status == "failed"
    assert run.outcome_message.startswith("Worker lost: no heartbeat since")
    assert reaper_latency < REAPER_TIMEOUT + 3
    assert statuses(run) == [("sleep", 1, "failed")]
    assert not Run.objects.filter(status="running").exists()
    # The child leads its own session, so the worker's death does not reach it by itself:
    # the sandbox asks the kernel to SIGKILL it when its parent dies.
    wait_until(
        lambda: all(state == "Z" for state in reap_session(pid).values()),
        timeout=5,
        what=f"the sandbox child {pid} of the killed worker ended",
    )
    assert process_state(pid) is None


def test_queued_run_executes_after_a_worker_restart(
    celery_worker_process, sandbox_sessions, make_scenario, coder_owner, settings
):
    settings.CADENZA_REAPER_TIMEOUT = REAPER_TIMEOUT
    first = celery_worker_process(**FAST_REAPER)
    scenario = make_scenario(
        queue_policy="queue_one",
        steps=[{"name": "sleep", "type": "python", "params": {"code": SLEEPER}}],
    )
    long = start(scenario, coder_owner, trigger_params={"sleep": 60})
    sandbox_sessions.append(child_pid(long))
    waiting = start(scenario, coder_owner, trigger_params={"sleep": 0})
    assert (waiting.status, waiting.lane) == ("queued", "q")
    assert run_start(scenario=scenario, user=coder_owner).run is None  # one queued at most

    first.kill()
    long = sweep_until_final(long)
    assert long.status == "failed" and "Worker lost" in long.outcome_message
    waiting.refresh_from_db()
    assert (waiting.status, waiting.lane) == ("queued", "0")
    assert waiting.dispatched_at is not None

    second = celery_worker_process(**FAST_REAPER)
    waiting = finished(waiting)
    assert waiting.status == "success", messages(waiting)
    assert waiting.worker.endswith(f":{second.pid}")
    assert statuses(waiting) == [("sleep", 1, "success")]


def test_a_message_delivered_twice_executes_the_run_once(
    celery_worker_process, make_scenario, coder_owner, no_dispatch
):
    worker = celery_worker_process()
    scenario = make_scenario(
        steps=[
            {
                "name": "hello",
                "type": "python",
                "params": {"code": "import time; print('hello'); time.sleep(0.5)"},
            },
            {"name": "after", "type": "set_variables", "params": {"variables": {"x": 1}}},
        ]
    )
    run = start(scenario, coder_owner)
    assert no_dispatch == [run.pk]  # nothing sent yet: this test sends the message itself
    deliveries = [execute.delay(run.pk), execute.delay(run.pk)]
    run = finished(run)

    def both_handled():
        log = worker.log.read_text()
        return all(f"runs.execute[{task.id}] succeeded" in log for task in deliveries)

    wait_until(both_handled, timeout=BOUND, what="both deliveries handled by the worker")
    run.refresh_from_db()
    assert run.status == "success", messages(run)
    assert statuses(run) == [("hello", 1, "success"), ("after", 1, "success")]
    log = messages(run)
    assert len([line for line in log if re.match(r"Run #\d+ of .* started by", line)]) == 1
    assert log.count("hello") == 1


def test_abort_stops_a_long_python_step_within_two_seconds(
    celery_worker_process, sandbox_sessions, make_scenario, coder_owner
):
    celery_worker_process()
    scenario = make_scenario(
        steps=[{"name": "sleep", "type": "python", "params": {"code": SLEEPER}}]
    )
    run = start(scenario, coder_owner)
    pid = child_pid(run)
    sandbox_sessions.append(pid)

    requested = time.monotonic()
    run_abort(run, user=coder_owner)
    run = finished(run, timeout=10, every=0.01)
    abort_latency = time.monotonic() - requested
    print(f"abort latency: {abort_latency:.3f} s")

    assert run.status == "aborted", messages(run)
    assert abort_latency < 2.0
    assert statuses(run) == [("sleep", 1, "aborted")]
    assert "Abort requested: stopping" in messages(run)
    assert process_state(pid) is None, "the child outlived the abort"
