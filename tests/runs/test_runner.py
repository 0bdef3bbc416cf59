"""The runner, executed in-process: run conditions, retries, warnings, variables, timeouts."""

from __future__ import annotations

import pytest

from apps.runs.models import LogLine, Run
from apps.runs.runner import run_execute
from apps.runs.services import run_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def execute(scenario, **kwargs) -> Run:
    started = run_start(scenario=scenario, **kwargs)
    assert started.run is not None, started.reason
    run_execute(started.run.pk)
    return Run.objects.get(pk=started.run.pk)


def statuses(run: Run) -> list[tuple[str, int, str]]:
    return list(run.step_runs.values_list("name", "attempt", "status"))


def messages(run: Run) -> list[str]:
    return list(LogLine.objects.filter(run=run).order_by("seq").values_list("message", flat=True))


def test_multi_step_scenario_outcome_statuses_and_log(make_scenario, no_dispatch, coder_owner):
    scenario = make_scenario(
        steps=[
            {
                "name": "define",
                "type": "set_variables",
                "params": {
                    "variables": {"threshold": 3, "label": "'x' * threshold"},
                    "evaluate": True,
                },
            },
            {
                "name": "compute",
                "type": "python",
                "params": {
                    "code": (
                        "from cadenza import scenario\n"
                        "v = scenario.get_variables()\n"
                        "print('threshold is', v['threshold'], 'label', v['label'])\n"
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
    run = execute(scenario, user=coder_owner)
    assert run.status == "failed"
    assert "flaky" in run.outcome_message, messages(run)
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
    assert "never" not in run.variables
    log = messages(run)
    assert "threshold is 3 label xxx" in log
    assert log.count("failing") == 3
    seqs = list(LogLine.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


def test_warnings_and_proceed_on_failure(make_scenario, no_dispatch, coder_owner):
    scenario = make_scenario(
        steps=[
            {
                "name": "bad",
                "type": "python",
                "proceed_on_failure": True,
                "params": {"code": "raise SystemExit(1)"},
            },
            {"name": "next", "type": "set_variables", "params": {"variables": {"ran": True}}},
        ]
    )
    run = execute(scenario, user=coder_owner)
    assert statuses(run) == [("bad", 1, "warning"), ("next", 1, "success")]
    assert run.status == "warning"


def test_prior_failure_outcome_in_and_reset(make_scenario, no_dispatch, coder_owner):
    scenario = make_scenario(
        steps=[
            {"name": "boom", "type": "python", "params": {"code": "raise RuntimeError('x')"}},
            {
                "name": "catch",
                "type": "set_variables",
                "run_condition": "prior_failure",
                "params": {"variables": {"caught": True}},
            },
            {
                "name": "on success only",
                "type": "set_variables",
                "run_condition": "outcome_in",
                "condition_outcomes": ["success"],
                "params": {"variables": {"no": 1}},
            },
            {
                "name": "recover",
                "type": "set_variables",
                "run_condition": "always",
                "reset_failure_state": True,
                "params": {"variables": {"recovered": True}},
            },
            {"name": "then", "type": "set_variables", "params": {"variables": {"then": True}}},
        ]
    )
    run = execute(scenario, user=coder_owner)
    assert [s for _, _, s in statuses(run)] == [
        "failed",
        "success",
        "skipped",
        "success",
        "success",
    ]
    assert run.status == "success"
    assert "RuntimeError: x" in "\n".join(messages(run))


def test_expression_sees_step_outcomes_and_trigger_params(make_scenario, no_dispatch, cast):
    scenario = make_scenario(
        steps=[
            {"name": "first", "type": "set_variables", "params": {"variables": {"x": 1}}},
            {
                "name": "check",
                "type": "set_variables",
                "run_condition": "expression",
                "condition_expression": (
                    "stepOutcome_first == 'success' and triggerParam_day == 'mon'"
                    " and stepOutput_first['x'] == 1"
                ),
                "params": {"variables": {"checked": True}},
            },
            {
                "name": "broken",
                "type": "set_variables",
                "run_condition": "expression",
                "condition_expression": "undefined_name > 1",
                "params": {"variables": {}},
            },
        ]
    )
    run = execute(scenario, user=cast["owner"], trigger_params={"day": "mon"})
    assert statuses(run) == [
        ("first", 1, "success"),
        ("check", 1, "success"),
        ("broken", 1, "failed"),
    ]
    assert "Run condition error" in run.step_runs.get(name="broken").message


def test_step_timeout_kills_the_child(make_scenario, no_dispatch, coder_owner):
    scenario = make_scenario(
        steps=[
            {
                "name": "slow",
                "type": "python",
                "timeout_seconds": 1,
                "params": {"code": "import time\nprint('sleeping', flush=True)\ntime.sleep(30)"},
            },
        ]
    )
    run = execute(scenario, user=coder_owner)
    assert run.status == "failed"
    step = run.step_runs.get()
    assert step.status == "failed" and "Timed out" in step.message
    assert (step.finished_at - step.started_at).total_seconds() < 5


def test_python_step_needs_a_coder_run_as(make_scenario, no_dispatch, cast):
    scenario = make_scenario(
        steps=[
            {"name": "code", "type": "python", "params": {"code": "print('hi')"}},
        ],
        run_as=cast["editor"],
    )
    run = execute(scenario, user=cast["editor"])
    assert run.status == "failed"
    assert "may not code" in run.step_runs.get().message
    assert "hi" not in messages(run)


def test_script_scenario_runs_steps_through_the_api(make_scenario, no_dispatch, coder_owner):
    scenario = make_scenario(
        kind="python",
        script=(
            "from cadenza import scenario\n"
            "r = scenario.run_step('set_variables', {'variables': {'k': 7}}, name='define k')\n"
            "scenario.log('step said ' + r['status'])\n"
            "assert scenario.get_variables()['k'] == 7\n"
            "scenario.set_project_variables(last_k=7)\n"
            "print(scenario.get_trigger_params())\n"
        ),
    )
    run = execute(scenario, user=coder_owner, trigger_params={"source": "test"})
    assert run.status == "success", messages(run)
    assert statuses(run) == [
        ("script", 1, "success"),
        ("define k", 1, "success"),
        ("set_project_variables_2", 1, "success"),
    ]
    assert "step said success" in messages(run)
    assert "{'source': 'test'}" in messages(run)
    scenario.project.refresh_from_db()
    assert scenario.project.variables["last_k"] == 7


def test_project_variables_step_needs_editor(make_scenario, no_dispatch, cast):
    scenario = make_scenario(
        run_as=cast["operator"],
        steps=[
            {"name": "set", "type": "set_project_variables", "params": {"variables": {"a": 1}}},
        ],
    )
    run = execute(scenario, user=cast["operator"])
    assert run.status == "failed"
    scenario.project.refresh_from_db()
    assert "a" not in scenario.project.variables
