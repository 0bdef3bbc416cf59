"""The demo's scenarios run to success through the real runner, its triggers fire, and its
reporter appends to run_log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.demo import definitions as demo
from apps.flow import storage
from apps.flow.models import Dataset
from apps.ml.models import ModelVersion
from apps.reporters.services import delivery_send
from apps.runs.models import LogLine, Run
from apps.runs.runner import run_execute
from apps.runs.services import run_start
from apps.scenarios.models import Scenario
from apps.triggers.models import Trigger
from apps.triggers.services import trigger_evaluate

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def queued(name: str) -> Run:
    return Run.objects.get(scenario__name=name, status="queued")


def execute(run: Run) -> Run:
    run_execute(run.pk)
    run.refresh_from_db()
    log = LogLine.objects.filter(run=run).order_by("seq").values_list("message", flat=True)
    assert run.status == "success", f"{run.outcome_message}\n" + "\n".join(log)
    return run


def rows(name: str) -> list[dict]:
    _, frames = storage.read_frames(Dataset.objects.get(project__key="DEMO", name=name))
    return [row for frame in frames for row in frame.to_dict("records")]


def test_build_then_retrain_succeed_and_the_run_is_logged(seed, delivered):
    seed()
    build = execute(queued(demo.BUILD_AND_CHECK))  # the first run the seed queued
    assert {s.name: s.status for s in build.step_runs.all()} == {
        step["name"]: "success" for step in demo.SCENARIOS[0]["steps"]
    }
    assert Dataset.objects.get(name="orders_by_day").row_count == 120
    # The after-scenario trigger queued the retraining; it trains once, on fresh features.
    retrain = execute(queued(demo.RETRAIN))
    assert retrain.trigger_kind == "after_scenario"
    assert ModelVersion.objects.filter(model__name="returns_model").count() == 1
    # The reporter's delivery appends one row to run_log.
    for pk in delivered:
        assert delivery_send(pk).status == "sent"
    logged = rows("run_log")
    assert [(r["scenario"], r["outcome"]) for r in logged] == [(demo.BUILD_AND_CHECK, "success")]

    # A second round: nothing changed, so nothing is rebuilt and the model is not retrained.
    again = execute(run_start(scenario=build.scenario, user=build.run_as).run)
    assert again.step_runs.get(name="Build daily totals").output["recipes"] == []
    second = execute(queued(demo.RETRAIN))
    assert second.step_runs.get(name="Train").status == "skipped"
    assert ModelVersion.objects.filter(model__name="returns_model").count() == 1


def test_a_csv_dropped_in_the_folder_fires_the_ingestion(seed, edition, var_dir):
    edition("team")
    seed()
    trigger = Trigger.objects.get(kind="dataset_change")
    now = timezone.now()
    assert trigger_evaluate(trigger, now).result == "unchanged"  # the first look: a baseline
    drop = var_dir / "data" / "demo" / "drop"
    sample = (drop / "orders-week-18.csv").read_text().splitlines()
    (drop / "more-orders.csv").write_text("\n".join([sample[0], *sample[1:6]]) + "\n")
    trigger.refresh_from_db()
    # Waits out the grace delay (a file still being copied is not read half-written).
    assert trigger_evaluate(trigger, now + timedelta(seconds=5)).result == "waiting"
    trigger.refresh_from_db()
    fired = trigger_evaluate(trigger, now + timedelta(seconds=10))
    assert fired.result == "fired", fired.message
    assert fired.run.trigger_params["changed_datasets"] == ["drop_folder"]
    execute(fired.run)
    assert Dataset.objects.get(name="dropped_orders").row_count == len(sample) - 1 + 5


def test_ingest_drop_folder_succeeds_when_run_by_hand(seed, var_dir):
    """The community edition has no dataset-change trigger: the scenario still runs."""
    seed()
    sample = var_dir / "data" / "demo" / "drop" / "orders-week-18.csv"
    scenario = Scenario.objects.get(name=demo.INGEST)
    run = execute(run_start(scenario=scenario, user=scenario.effective_run_as()).run)
    counted = run.step_runs.get(name="Count rows").output
    assert counted == {"dropped_orders.rows": len(sample.read_text().splitlines()) - 1}
