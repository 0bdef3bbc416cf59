"""Batched slots and checks: the same outcomes as one by one, in queries that grow with
batches, not with triggers (the scale targets of docs/triggers.md rest on this)."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.flow.models import Dataset
from apps.runs.models import Run
from apps.runs.services import RunRequest, run_start, runs_start_many
from apps.scenarios.models import Scenario
from apps.triggers import services
from apps.triggers.models import Trigger, TriggerEvaluation, TriggerFire
from apps.triggers.services import triggers_tick

pytestmark = pytest.mark.django_db


def hourly(make_trigger, scenario, **fields):
    trigger = make_trigger(scenario, "time", {"schedule": "hourly", "minute": 0}, **fields)
    return trigger


def make_due(triggers, slot):
    Trigger.objects.filter(pk__in=[t.pk for t in triggers]).update(next_fire_at=slot)


def test_a_batch_start_follows_each_queue_policy(make_scenario, no_dispatch):
    skip = make_scenario(name="skip")
    queue_one = make_scenario(name="queue", queue_policy="queue_one")
    parallel = make_scenario(name="parallel", queue_policy="parallel", max_parallel=2)
    busy = make_scenario(name="busy")
    run_start(scenario=busy)
    requests = [
        RunRequest(s.pk, "time", "t")
        for s in (skip, skip, queue_one, queue_one, queue_one, parallel, parallel, parallel, busy)
    ]
    starts = runs_start_many(requests)
    lanes = [start.run.lane if start.run else None for start in starts]
    assert lanes == ["0", None, "0", "q", None, "0", "1", None, None]
    assert starts[1].reason == "a run is already active"
    assert starts[4].reason == "a run is already queued"
    assert starts[7].reason == "2 runs are already active"
    numbers = list(Run.objects.filter(scenario=parallel).values_list("number", flat=True))
    assert sorted(numbers) == [1, 2]
    parallel.refresh_from_db()
    assert parallel.run_counter == 2
    # A run started afterwards one by one continues the numbering.
    assert run_start(scenario=skip).run is None
    queue_one.refresh_from_db()
    assert queue_one.run_counter == 2


def test_a_batch_start_snapshots_like_run_start(make_scenario, no_dispatch, cast):
    steps = [{"name": "define", "type": "set_variables", "params": {"variables": {"a": 1}}}]
    scenario = make_scenario(run_as=cast["operator"], steps=steps, variables={"answer": 42})
    (start,) = runs_start_many([RunRequest(scenario.pk, "time", "hourly", {"slot": "x"})])
    one = run_start(scenario=scenario, user=cast["operator"]).run  # skipped: one is active
    assert one is None
    run = Run.objects.get(pk=start.run.pk)
    Run.objects.filter(pk=run.pk).update(lane=None, status="success")
    one = run_start(scenario=scenario, user=cast["operator"]).run
    assert run.run_as == cast["operator"] and run.started_by == cast["operator"]
    assert run.trigger_params == {"slot": "x"} and run.variables["answer"] == 42
    assert (run.number, one.number) == (1, 2)
    assert run.definition == one.definition  # the same snapshot as one by one


def test_a_burst_of_slots_fires_each_once_in_queries_per_batch(
    make_scenario, make_trigger, no_dispatch, django_assert_max_num_queries
):
    def burst(count: int, slot) -> int:
        triggers = [
            hourly(make_trigger, make_scenario(name=f"{slot:%H%M%S}-{i}")) for i in range(count)
        ]
        make_due(triggers, slot)
        with CaptureQueriesContext(connection) as queries:
            assert triggers_tick()["slots"] == count
        assert TriggerFire.objects.filter(trigger__in=triggers, slot=slot).count() == count
        assert Run.objects.filter(scenario__triggers__in=triggers).count() == count
        return len(queries)

    triggers_tick()  # the first tick of a while also leaves its mark: not measured
    now = timezone.now()
    few = burst(3, now - timedelta(seconds=2))
    many = burst(40, now - timedelta(seconds=1))
    assert many == few  # one batch either way: the cost does not grow with the triggers
    fired = TriggerEvaluation.objects.filter(result="fired", run__isnull=False)
    assert fired.count() == 43
    assert not Trigger.objects.filter(kind="time", last_fired_at__isnull=True).exists()


def test_a_slot_already_fired_makes_the_batch_go_one_by_one(
    make_scenario, make_trigger, no_dispatch
):
    triggers = [hourly(make_trigger, make_scenario(name=f"s{i}")) for i in range(3)]
    slot = timezone.now().replace(microsecond=0) - timedelta(seconds=1)
    TriggerFire.objects.create(trigger=triggers[1], slot=slot)  # an older beat got there first
    make_due(triggers, slot)
    assert triggers_tick()["slots"] == 2
    assert Run.objects.count() == 2
    assert not Run.objects.filter(scenario=triggers[1].scenario).exists()


def test_a_scenario_with_two_triggers_due_at_once_runs_by_its_policy(
    make_scenario, make_trigger, no_dispatch
):
    scenario = make_scenario()
    first = hourly(make_trigger, scenario, name="a")
    second = hourly(make_trigger, scenario, name="b")
    make_due([first, second], timezone.now() - timedelta(seconds=1))
    assert triggers_tick()["slots"] == 1
    results = sorted(TriggerEvaluation.objects.values_list("result", "message"))
    assert results[1] == ("skipped", "a run is already active")


def test_a_check_cycle_costs_queries_per_batch_not_per_trigger(
    make_scenario, make_trigger, files_connection, edition, tmp_path
):
    edition("team")
    root = Path(files_connection.config["root"])
    (root / "watched").mkdir()
    (root / "watched" / "a.csv").write_text("a\n1\n")
    dataset = Dataset.objects.create(
        project=make_scenario().project,
        name="watched",
        connection=files_connection,
        format="csv",
        path="watched",
    )

    def cycle(count: int, prefix: str) -> tuple[int, list]:
        triggers = [
            make_trigger(
                make_scenario(name=f"{prefix}{i}"),
                "dataset_change",
                {"datasets": [dataset.name]},
            )
            for i in range(count)
        ]
        Trigger.objects.filter(pk__in=[t.pk for t in triggers]).update(
            next_check_at=timezone.now() - timedelta(seconds=1)
        )
        with CaptureQueriesContext(connection) as queries:
            assert triggers_tick()["checks"] == count
        return len(queries), triggers

    triggers_tick()
    few, _ = cycle(3, "few")  # first looks: baselines
    many, triggers = cycle(30, "many")
    assert many == few
    (root / "watched" / "b.csv").write_text("a\n2\n")
    Trigger.objects.exclude(pk__in=[t.pk for t in triggers]).update(enabled=False)
    Trigger.objects.filter(pk__in=[t.pk for t in triggers]).update(
        next_check_at=timezone.now() - timedelta(seconds=1)
    )
    assert triggers_tick()["checks"] == 30
    fired = TriggerEvaluation.objects.filter(trigger__in=triggers, result="fired")
    assert fired.count() == 30
    assert {e.run.trigger_params["changed_datasets"][0] for e in fired} == {"watched"}


def test_evaluations_older_than_the_retention_are_forgotten(make_scenario, make_trigger, settings):
    settings.CADENZA_TRIGGER_EVALUATION_DAYS = 2
    trigger = hourly(make_trigger, make_scenario())
    old = TriggerEvaluation.objects.create(trigger=trigger, result="unchanged")
    recent = TriggerEvaluation.objects.create(trigger=trigger, result="unchanged")
    TriggerEvaluation.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=3))
    services._forget_old_evaluations(timezone.now())
    assert list(TriggerEvaluation.objects.values_list("pk", flat=True)) == [recent.pk]
    assert Scenario.objects.filter(pk=trigger.scenario_id).exists()


def test_a_check_of_a_busy_scenario_is_skipped_and_says_so(
    make_scenario, make_trigger, files_connection, edition, no_dispatch
):
    edition("team")
    root = Path(files_connection.config["root"])
    (root / "inbox").mkdir()
    busy, idle = make_scenario(name="busy"), make_scenario(name="idle")
    Dataset.objects.create(
        project=busy.project, name="inbox", connection=files_connection, format="csv", path="inbox"
    )
    triggers = [make_trigger(s, "dataset_change", {"datasets": ["inbox"]}) for s in (busy, idle)]
    run_start(scenario=busy)  # queued: it holds its lane
    Trigger.objects.update(next_check_at=timezone.now() - timedelta(seconds=1))
    assert triggers_tick()["checks"] == 2
    results = dict(
        TriggerEvaluation.objects.filter(trigger__in=triggers).values_list("trigger", "message")
    )
    assert results[triggers[0].pk] == "The scenario is running."
    assert results[triggers[1].pk] != "The scenario is running."


def test_a_one_second_check_is_made_every_tick_despite_jitter(
    make_scenario, make_trigger, files_connection, edition
):
    """Ticks come every second, a few ms early or late: a check moved on from the tick's
    own time would be due a few ms after the next tick, and run every other second."""
    edition("team")
    (Path(files_connection.config["root"]) / "inbox").mkdir()
    scenario = make_scenario()
    Dataset.objects.create(
        project=scenario.project,
        name="inbox",
        connection=files_connection,
        format="csv",
        path="inbox",
    )
    trigger = make_trigger(
        scenario, "dataset_change", {"datasets": ["inbox"]}, check_interval_seconds=1
    )
    due = timezone.now() + timedelta(seconds=5)
    Trigger.objects.filter(pk=trigger.pk).update(next_check_at=due)
    ticks = [due + timedelta(seconds=s) for s in (0.05, 1.01, 1.99, 3.0, 3.98)]
    checked = [triggers_tick(now=moment)["checks"] for moment in ticks]
    # 1.01: due at +1 (its own beat), checked. 1.99: not yet due (+2). 3.0: a tick was
    # missed, so the check is late: the next one is half an interval away (+3.5), not due
    # at once; 3.98 makes it.
    assert checked == [1, 1, 0, 1, 1]
    trigger.refresh_from_db()
    assert trigger.next_check_at == due + timedelta(seconds=4.5)


@pytest.mark.django_db(transaction=True)
def test_a_full_batch_of_checks_is_shared_with_a_helper_claimer(
    make_scenario, make_trigger, files_connection, edition, monkeypatch
):
    """A tick that finds a full batch due claims on two connections side by side: every
    due check is evaluated exactly once, both claimers take batches, and the helper's
    connection is closed when the tick ends."""
    monkeypatch.setattr(services, "BATCH", 5)
    edition("team")
    (Path(files_connection.config["root"]) / "inbox").mkdir()
    project = make_scenario().project
    Dataset.objects.create(
        project=project, name="inbox", connection=files_connection, format="csv", path="inbox"
    )
    triggers = [
        make_trigger(make_scenario(name=f"s{i}"), "dataset_change", {"datasets": ["inbox"]})
        for i in range(23)
    ]
    Trigger.objects.update(next_check_at=timezone.now() - timedelta(seconds=1))
    # The main claimer's first batch waits until the helper holds one: both must take part.
    helper_claimed = threading.Event()
    evaluated_by, original = [], services.triggers_evaluate_many

    def evaluate(due, now, **kwargs):
        name = threading.current_thread().name
        evaluated_by.append((name, [t.pk for t in due]))
        if name.startswith("trigger-checks"):
            helper_claimed.set()
        elif len(evaluated_by) == 1:
            assert helper_claimed.wait(10), "the helper claimer took no batch"
        return original(due, now, **kwargs)

    monkeypatch.setattr(services, "triggers_evaluate_many", evaluate)
    backends = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    with connection.cursor() as cursor:
        cursor.execute(backends)
        (before,) = cursor.fetchone()
        assert triggers_tick()["checks"] == 23
        cursor.execute(backends)
        (after,) = cursor.fetchone()
    claimed = [pk for _, pks in evaluated_by for pk in pks]
    assert sorted(claimed) == sorted(t.pk for t in triggers)  # each once
    assert len({name.startswith("trigger-checks") for name, _ in evaluated_by}) == 2
    assert after == before  # the helper's connection did not stay open
    counts = TriggerEvaluation.objects.values_list("trigger_id", flat=True)
    assert sorted(counts) == sorted(t.pk for t in triggers)


def test_a_tick_inside_a_transaction_claims_alone(
    make_scenario, make_trigger, files_connection, edition, monkeypatch
):
    """Inside a transaction (here the test's) a helper's connection could not see the due
    rows: the tick's own thread claims every batch."""
    monkeypatch.setattr(services, "BATCH", 5)
    edition("team")
    (Path(files_connection.config["root"]) / "inbox").mkdir()
    Dataset.objects.create(
        project=make_scenario().project,
        name="inbox",
        connection=files_connection,
        format="csv",
        path="inbox",
    )
    for i in range(12):
        make_trigger(make_scenario(name=f"s{i}"), "dataset_change", {"datasets": ["inbox"]})
    Trigger.objects.update(next_check_at=timezone.now() - timedelta(seconds=1))
    threads, original = set(), services.triggers_evaluate_many

    def evaluate(due, now, **kwargs):
        threads.add(threading.current_thread().name)
        return original(due, now, **kwargs)

    monkeypatch.setattr(services, "triggers_evaluate_many", evaluate)
    assert triggers_tick()["checks"] == 12
    assert threads == {threading.current_thread().name}
