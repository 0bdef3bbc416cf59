"""A staged SALES project for the page tests: scenarios with steps, a time trigger and its
evaluation, a reporter, and finished and active runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.reporters.models import MessagingChannel, Reporter
from apps.runs.models import Run, RunStatus, StepRun
from apps.runs.services import run_start
from apps.scenarios.models import Scenario
from apps.triggers.models import Trigger, TriggerEvaluation
from apps.triggers.services import trigger_save

STEPS = [
    {"name": "define", "type": "set_variables", "params": {"variables": {"a": 1}}},
    {"name": "notify", "type": "set_variables", "params": {"variables": {"b": 2}},
     "run_condition": "prior_failure"},
]  # fmt: skip


def finished_run(scenario, user, status: str, *, days_ago: int = 0, seconds: float = 3) -> Run:
    run = Run.objects.create(
        scenario=scenario,
        project=scenario.project,
        number=Run.objects.filter(scenario=scenario).count() + 1,
        status=status,
        started_by=user,
        run_as=user,
    )
    start = timezone.now() - timedelta(days=days_ago, seconds=seconds)
    Run.objects.filter(pk=run.pk).update(
        queued_at=start, started_at=start, finished_at=start + timedelta(seconds=seconds)
    )
    StepRun.objects.create(run=run, position=0, name="define", type="set_variables",
                           status=status, started_at=start,
                           finished_at=start + timedelta(seconds=seconds))  # fmt: skip
    run.refresh_from_db()
    return run


@pytest.fixture
def stage(make_scenario, cast, no_dispatch):
    """``stage(name)``: a staged scenario, with ``.trigger``, ``.finished`` and ``.active_run``."""
    channel, _ = MessagingChannel.objects.get_or_create(
        name="ops hook", kind="webhook", defaults={"config": {"url": "http://127.0.0.1:9/"}}
    )

    def make(name: str = "Nightly"):
        scenario = make_scenario(name, steps=STEPS, description="Loads the sales")
        scenario.trigger = trigger_save(
            Trigger(scenario=scenario, name="daily", kind="time",
                    params={"schedule": "daily", "time": "03:00"}),
            user=cast["owner"],
        )  # fmt: skip
        TriggerEvaluation.objects.create(trigger=scenario.trigger, result="skipped", message="busy")
        Reporter.objects.create(scenario=scenario, name="on failure", channel=channel,
                                condition="outcome == 'failed'")  # fmt: skip
        scenario.finished = [
            finished_run(scenario, cast["owner"], RunStatus.SUCCESS, days_ago=3),
            finished_run(scenario, cast["owner"], RunStatus.FAILED, days_ago=1),
            finished_run(scenario, cast["owner"], RunStatus.WARNING),
        ]
        Scenario.objects.filter(pk=scenario.pk).update(run_counter=len(scenario.finished))
        scenario.active_run = run_start(scenario=scenario, user=cast["owner"]).run
        return scenario

    return make


@pytest.fixture
def client_for():
    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make
