"""manage.py run_scenario: start as the run-as user, wait, and exit non-zero on failure."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.runs.models import Run

SET_A = {"name": "define", "type": "set_variables", "params": {"variables": {"a": 1}}}
BROKEN = {
    "name": "broken",
    "type": "set_variables",
    "params": {"variables": {"x": "nope +"}, "evaluate": True},
}


def run_scenario(*args) -> str:
    out = StringIO()
    call_command("run_scenario", *args, stdout=out)
    return out.getvalue()


def test_starts_a_run_as_the_run_as_user_with_params(make_scenario, cast, no_dispatch):
    make_scenario(steps=[SET_A])
    output = run_scenario("SALES", "Nightly", "--param", "day=2024-01-31", "--param", "n=3")
    run = Run.objects.get()
    assert f"Started run #1 of SALES / Nightly (id {run.pk}) as alice." in output
    assert (run.trigger_kind, run.started_by, run.run_as) == ("command", cast["owner"],
                                                              cast["owner"])  # fmt: skip
    assert run.trigger_params == {"day": "2024-01-31", "n": 3}
    assert run.status == "queued"


def test_scenario_may_be_named_by_id(make_scenario, no_dispatch):
    scenario = make_scenario()
    run_scenario("SALES", str(scenario.pk))
    assert Run.objects.get().scenario == scenario


def test_refused_by_the_queue_policy_is_an_error(make_scenario, no_dispatch):
    make_scenario()
    run_scenario("SALES", "Nightly")
    with pytest.raises(CommandError, match=r"not started, a run is already active \(run #1\)"):
        run_scenario("SALES", "Nightly")
    assert Run.objects.count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["SALES", "Missing"], "No scenario 'Missing' in project 'SALES'"),
        (["HR", "Nightly"], "No scenario 'Nightly' in project 'HR'"),
        (["SALES", "Nightly", "--param", "novalue"], "use KEY=VALUE"),
        (["SALES", "Nightly", "--wait", "--timeout", "0"], "--timeout must be a positive number"),
    ],
)
def test_bad_arguments_are_errors(make_scenario, no_dispatch, args, message):
    make_scenario()
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        run_scenario(*args)
    assert not Run.objects.exists()


def test_a_scenario_without_run_as_user_is_refused(make_scenario, no_dispatch):
    make_scenario(run_as=None)
    with pytest.raises(CommandError, match="has no run-as user"):
        run_scenario("SALES", "Nightly")
    assert not Run.objects.exists()


def test_wait_gives_up_after_the_timeout(make_scenario, no_dispatch):
    make_scenario()
    with pytest.raises(CommandError, match=r"Run #1 is still queued after 0.3 s"):
        run_scenario("SALES", "Nightly", "--wait", "--timeout", "0.3")
    assert Run.objects.get().status == "queued"  # waiting gave up; the run goes on


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
def test_inline_run_that_succeeds(make_scenario, no_dispatch):
    make_scenario(steps=[SET_A])
    output = run_scenario("SALES", "Nightly", "--inline")
    assert "Run #1 ended success in" in output
    assert Run.objects.get().status == "success"


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
def test_inline_run_that_fails_is_an_error(make_scenario, no_dispatch):
    make_scenario(steps=[BROKEN])
    with pytest.raises(CommandError, match=r"Run #1 ended failed in [0-9.]+ s: Failed step"):
        run_scenario("SALES", "Nightly", "--inline")
    assert Run.objects.get().status == "failed"
