"""PostgreSQL restarts (an immediate shutdown, as a crash) while a worker runs a scenario
(issue #8). Every thread of the run holds its own connection, and each must notice that it
died: the log writer, the heartbeat watcher, the runner itself."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.utils import timezone

from apps.runs.models import Run
from apps.runs.services import runs_sweep
from tests.faults.conftest import restart_postgres
from tests.faults.ticker import (
    assert_log_complete,
    logged,
    start,
    stored_lines,
    stored_ticks,
    ticker_step,
)
from tests.processes import wait_until, worker_database_url

pytestmark = [
    pytest.mark.worker,
    pytest.mark.fault,
    pytest.mark.timeout(150),
    pytest.mark.django_db(transaction=True),
]
BOUND = 30
REAPER_TIMEOUT = 8  # the run beats every second: only a lost worker gets this far behind
FAST_HEARTBEAT = {"CADENZA_RUN_HEARTBEAT_SECONDS": 1, "CADENZA_REAPER_TIMEOUT": REAPER_TIMEOUT}
NOOP = {"name": "noop", "type": "set_variables", "params": {"variables": {"x": 1}}}


@pytest.fixture
def worker(session_postgres, celery_worker_process, settings):
    """A worker whose commits are durable. The test cluster runs with
    synchronous_commit=off, for speed: a crash then loses the last fraction of a second of
    commits — log lines included, seen by other sessions and gone after the restart (measured:
    8 lines). The guarantee under test, "a stored line is never lost", is the one a
    production database gives with its default, synchronous_commit=on."""
    settings.CADENZA_REAPER_TIMEOUT = REAPER_TIMEOUT  # runs_sweep runs in this process
    durable = urlencode({"options": "-c synchronous_commit=on"})
    url = worker_database_url()
    url += ("&" if "?" in url else "?") + durable
    return celery_worker_process(DATABASE_URL=url, **FAST_HEARTBEAT)


def test_a_restart_during_a_step_leaves_the_run_whole(
    session_postgres, worker, make_scenario, coder_owner, go_file
):
    run = start(make_scenario(steps=[ticker_step(go_file), NOOP]), coder_owner)
    wait_until(lambda: stored_lines(run) >= 10, timeout=BOUND, what="the ticker's first lines")

    ticks_before = stored_ticks(run)
    session_postgres.stop()
    wait_until(
        lambda: (
            logged(worker, "could not store log lines; retrying")
            and logged(worker, "heartbeat failed; retrying")
        ),
        timeout=BOUND,
        what="the log writer and the heartbeat met the outage",
    )
    restart_postgres(session_postgres)
    restarted = timezone.now()
    # The watcher reconnected (a live run is not taken for a lost one), and the writer
    # stores lines again while the run goes on (the live log resumes).
    wait_until(
        lambda: Run.objects.get(pk=run.pk).heartbeat_at > restarted,
        timeout=BOUND,
        what="the heartbeat resumed",
    )
    wait_until(lambda: logged(worker, "log lines stored again"), timeout=BOUND, what="lines stored")
    go_file.touch()

    run = finished(run)
    assert run.status == "success", run.outcome_message
    assert list(run.step_runs.values_list("name", "status")) == [
        ("ticker", "success"),
        ("noop", "success"),
    ]
    assert assert_log_complete(run) > ticks_before  # it printed on through the outage
    after_restart(worker, make_scenario, coder_owner)


def test_an_outage_at_the_end_of_a_step_still_ends_the_run(
    session_postgres, worker, make_scenario, coder_owner, go_file
):
    """The runner's own write (the step's result) meets the outage: the run cannot go on,
    and still ends — failed, by its runner, with every line the step printed."""
    run = start(make_scenario(steps=[ticker_step(go_file), NOOP]), coder_owner)
    wait_until(lambda: stored_lines(run) >= 10, timeout=BOUND, what="the ticker's first lines")

    ticks_before = stored_ticks(run)
    session_postgres.stop()
    wait_until(
        lambda: logged(worker, "could not store log lines; retrying"),
        timeout=BOUND,
        what="the log writer met the outage",
    )
    go_file.touch()
    wait_until(lambda: logged(worker, f"run {run.pk} crashed"), timeout=BOUND, what="crash")
    restart_postgres(session_postgres)

    run = finished(run)
    assert run.status == "failed"
    assert run.outcome_message.startswith("Internal error: OperationalError"), run.outcome_message
    assert list(run.step_runs.values_list("name", "status")) == [("ticker", "failed")]
    assert assert_log_complete(run) > ticks_before  # it printed on through the outage
    after_restart(worker, make_scenario, coder_owner)


def finished(run: Run) -> Run:
    """Wait for the run to end, sweeping as beat would: the sweep must not reap a live run,
    and would end a run its runner abandoned."""

    def final():
        runs_sweep()
        run.refresh_from_db()
        return run.is_final

    wait_until(final, timeout=BOUND * 2, what=f"run {run.pk} final", every=0.2)
    return run


def after_restart(worker, make_scenario, coder_owner) -> None:
    """The same worker runs the next scenario; nothing is left running."""
    run = finished(start(make_scenario(name="after", steps=[NOOP]), coder_owner))
    assert run.status == "success", run.outcome_message
    assert run.worker.endswith(f":{worker.pid}")
    assert not Run.objects.filter(status__in=["queued", "running"]).exists()
