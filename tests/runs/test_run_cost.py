"""What a trivial run costs the database (issue #8): counted statements, never timings.

A one-step ``set_variables`` run is what the throughput benchmark measures; every statement
it makes is paid once per run by the worker. The counts pin what the runner needs, so that
an extra lookup shows here instead of as a slower benchmark weeks later:

run_execute: the claim, which also loads the run with its scenario, project, run-as user
and whether start reporters listen (one prepared UPDATE in a WITH; apps/runs/claim.py), the
step run's insert and its result (INSERT, UPDATE), the log lines (INSERT), the end (UPDATE)
and the ended run with its waiting run, end reporters and after-scenario triggers (SELECT).
The lookups skipped when nothing listens are covered where something does (tests/reporters,
tests/triggers, the queue policies).

run_start (the web process, a trigger): the scenario locked with its project, its steps for
the snapshot, the run counter, the run (stamped as dispatched: it is sent on commit).

The counts are those CaptureQueriesContext lists, BEGIN, COMMIT and savepoints included; a
thread other than the caller's (the log flusher, the watcher) is not counted, and only
touches the database for a run that lasts longer than a flush interval or a poll.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.runs.models import LogLine
from apps.runs.runner import run_execute
from apps.runs.services import run_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]
TRIVIAL = [{"name": "set", "type": "set_variables", "params": {"variables": {"x": 1}}}]
RUN_EXECUTE_STATEMENTS = 10  # 6 statements, 2 transactions (BEGIN, COMMIT)
RUN_START_STATEMENTS = 6  # 4 statements and a transaction: one lane needs no savepoint


def test_a_trivial_run_costs_the_worker_six_statements(make_scenario, no_dispatch):
    warm = make_scenario(name="Warm-up", steps=TRIVIAL)  # first run: imports, caches
    run_execute(run_start(scenario=warm).run.pk)
    run = run_start(scenario=make_scenario(steps=TRIVIAL)).run

    with CaptureQueriesContext(connection) as executed:
        run_execute(run.pk)

    statements = [query["sql"] for query in executed.captured_queries]
    assert len(statements) <= RUN_EXECUTE_STATEMENTS, "\n".join(statements)
    assert statements[0].startswith("EXECUTE cadenza_run_claim"), statements[0]  # prepared
    run.refresh_from_db()
    assert run.status == "success" and run.variables["x"] == 1
    assert list(run.step_runs.values_list("name", "status")) == [("set", "success")]
    assert LogLine.objects.filter(run=run).count() == 4


def test_starting_a_trivial_run_costs_four_statements(make_scenario, no_dispatch):
    scenario = make_scenario(steps=TRIVIAL)
    run_start(scenario=make_scenario(name="Warm-up", steps=TRIVIAL))

    with CaptureQueriesContext(connection) as executed:
        run = run_start(scenario=scenario).run

    statements = [query["sql"] for query in executed.captured_queries]
    assert len(statements) <= RUN_START_STATEMENTS, "\n".join(statements)
    assert no_dispatch[-1] == run.pk and run.dispatched_at is not None
