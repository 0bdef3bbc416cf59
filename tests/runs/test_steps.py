"""Step types that reach outside the run: SQL, shell, other scenarios, log retention."""

from __future__ import annotations

import pytest

from apps.accounts.models import ProfileKind
from apps.accounts.services import profile_assign
from apps.runs.models import LogLine, Run
from apps.runs.runner import run_execute
from apps.runs.services import run_finish, run_start
from tests.runs.test_runner import execute, messages

pytestmark = [pytest.mark.timeout(60)]
WAREHOUSE = ["default", "sql_warehouse"]


@pytest.fixture
def coder_owner(cast):
    profile_assign(user=cast["owner"], kind=ProfileKind.CODER)
    return cast["owner"]


@pytest.mark.django_db(transaction=True, databases=WAREHOUSE)
def test_sql_step_runs_on_a_named_connection_and_outputs_rows(
    make_scenario, no_dispatch, coder_owner
):
    scenario = make_scenario(
        steps=[
            {
                "name": "create",
                "type": "sql",
                "params": {
                    "connection": "warehouse",
                    "sql": "CREATE TABLE IF NOT EXISTS sales (region TEXT, amount INT)",
                },
            },
            {
                "name": "load",
                "type": "sql",
                "params": {
                    "connection": "warehouse",
                    "sql": "INSERT INTO sales VALUES ('north', 3), ('south', 4), ('east', 5)",
                },
            },
            {
                "name": "read",
                "type": "sql",
                "params": {
                    "connection": "warehouse",
                    "max_rows": 2,
                    "sql": "SELECT region, amount FROM sales ORDER BY amount",
                },
            },
            {
                "name": "gate",
                "type": "set_variables",
                "run_condition": "expression",
                "condition_expression": "stepOutput_read['rows'][0][1] == 3",
                "params": {"variables": {"first_amount_checked": True}},
            },
        ]
    )
    run = execute(scenario, user=coder_owner)
    assert run.status == "success", messages(run)
    read = run.step_runs.get(name="read").output
    assert read == {
        "columns": ["region", "amount"],
        "rows": [["north", 3], ["south", 4]],
        "truncated": True,
    }
    assert run.step_runs.get(name="load").output == {"rowcount": 3}
    assert run.variables["first_amount_checked"] is True


@pytest.mark.django_db(transaction=True, databases=WAREHOUSE)
def test_sql_errors_fail_the_step_with_the_database_message(
    make_scenario, no_dispatch, coder_owner
):
    scenario = make_scenario(
        steps=[
            {
                "name": "bad",
                "type": "sql",
                "params": {"connection": "warehouse", "sql": "SELECT * FROM no_such_table"},
            },
        ]
    )
    run = execute(scenario, user=coder_owner)
    assert run.status == "failed"
    assert "no such table" in run.step_runs.get().message


@pytest.mark.django_db(transaction=True)
def test_unknown_sql_connection_is_a_params_error(make_scenario, no_dispatch, coder_owner):
    scenario = make_scenario(
        steps=[
            {"name": "bad", "type": "sql", "params": {"connection": "nope", "sql": "SELECT 1"}},
        ]
    )
    run = execute(scenario, user=coder_owner)
    assert "Unknown connection 'nope'" in run.step_runs.get().message


@pytest.mark.django_db(transaction=True)
def test_shell_step_is_off_unless_allowed(make_scenario, no_dispatch, coder_owner, settings):
    settings.CADENZA_ALLOW_SHELL = False
    scenario = make_scenario(
        steps=[
            {"name": "sh", "type": "shell", "params": {"command": "echo should-not-run"}},
        ]
    )
    run = execute(scenario, user=coder_owner)
    assert run.status == "failed"
    assert "turned off" in run.step_runs.get().message
    assert "should-not-run" not in messages(run)


@pytest.mark.django_db(transaction=True)
def test_shell_step_gets_run_facts_as_environment_never_interpolated(
    make_scenario, no_dispatch, coder_owner, settings
):
    settings.CADENZA_ALLOW_SHELL = True
    scenario = make_scenario(
        variables={"target": "$(touch /tmp/cadenza-pwned); x"},
        steps=[
            {
                "name": "sh",
                "type": "shell",
                "params": {
                    "command": 'echo "project=$CADENZA_PROJECT target=$CADENZA_VAR_target"; '
                    'test -z "$SECRET_KEY" && echo no-secret'
                },
            }
        ],
    )
    run = execute(scenario, user=coder_owner)
    assert run.status == "success", messages(run)
    log = messages(run)
    assert "project=SALES target=$(touch /tmp/cadenza-pwned); x" in log
    assert "no-secret" in log


@pytest.mark.django_db(transaction=True)
def test_run_scenario_step_waits_and_takes_the_outcome(make_scenario, monkeypatch, cast):
    # The child run executes in-process as soon as it is dispatched.
    import threading

    monkeypatch.setattr(
        "apps.runs.services.run_dispatch",
        lambda run_id, **_: threading.Thread(target=_execute_and_close, args=(run_id,)).start(),
    )
    child = make_scenario(
        name="Child",
        steps=[
            {
                "name": "warn",
                "type": "set_variables",
                "run_condition": "expression",
                "condition_expression": "triggerParam_mode == 'fail' and undefined",
                "params": {"variables": {}},
            },
        ],
    )
    parent = make_scenario(
        name="Parent",
        steps=[
            {
                "name": "call",
                "type": "run_scenario",
                "params": {"scenario": "Child", "params": {"mode": "fail"}},
            },
        ],
    )
    started = run_start(scenario=parent, user=cast["owner"])
    _wait_final(started.run)
    run = Run.objects.get(pk=started.run.pk)
    child_run = Run.objects.get(scenario=child)
    assert child_run.parent_run_id == run.pk and child_run.trigger_kind == "scenario"
    assert child_run.status == "failed"
    assert run.status == "failed"
    assert run.step_runs.get().output["outcome"] == "failed"


def _execute_and_close(run_id):
    from django.db import connection

    try:
        run_execute(run_id)
    finally:
        connection.close()


def _wait_final(run, bound=30.0):
    import time

    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.is_final:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run.pk} still {run.status} after {bound} s")


@pytest.mark.django_db(transaction=True)
def test_abort_scenario_step_aborts_the_other_scenarios_runs(make_scenario, no_dispatch, cast):
    other = make_scenario(name="Other")
    queued = run_start(scenario=other, user=cast["owner"]).run
    killer = make_scenario(
        name="Killer",
        steps=[
            {"name": "stop", "type": "abort_scenario", "params": {"scenario": "Other"}},
        ],
    )
    run = execute(killer, user=cast["owner"])
    assert run.status == "success"
    queued.refresh_from_db()
    assert queued.status == "aborted"


@pytest.mark.django_db(transaction=True)
def test_clean_run_logs_keeps_the_newest_runs_per_scenario(make_scenario, no_dispatch, cast):
    noisy = make_scenario(name="Noisy")
    for _ in range(5):
        old = run_start(scenario=noisy, user=cast["owner"]).run
        LogLine.objects.create(run=old, seq=1, ts=old.queued_at, message="old")
        run_finish(old.pk, "success")
    cleaner = make_scenario(
        name="Cleaner",
        steps=[
            {"name": "clean", "type": "clean_run_logs", "params": {"keep_runs": 2}},
        ],
    )
    run = execute(cleaner, user=cast["owner"])
    assert run.status == "success", messages(run)
    assert list(noisy.runs.values_list("number", flat=True).order_by("number")) == [4, 5]
    assert Run.objects.filter(pk=run.pk).exists()  # never the running cleaner itself
