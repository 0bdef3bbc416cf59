"""Triggers on real PostgreSQL: slots fire once, polled kinds fire on change, gates hold."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.utils import timezone

from apps.accounts.models import InstalledLicense, ProfileKind
from apps.accounts.services import profile_assign
from apps.flow.models import Dataset
from apps.flow.storage import sql_connect
from apps.runs.models import Run
from apps.runs.runner import run_execute
from apps.system.models import Heartbeat
from apps.triggers.models import Trigger, TriggerFire
from apps.triggers.services import trigger_evaluate, trigger_fire, trigger_save, triggers_tick

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def runs_of(scenario) -> list[Run]:
    return list(Run.objects.filter(scenario=scenario).order_by("id"))


def due_now(trigger: Trigger, seconds_ago: float = 1) -> None:
    Trigger.objects.filter(pk=trigger.pk).update(
        next_fire_at=timezone.now() - timedelta(seconds=seconds_ago)
    )


def test_a_slot_fires_exactly_once_even_with_two_ticks_racing(
    make_scenario, make_trigger, no_dispatch
):
    scenario = make_scenario()
    trigger = make_trigger(scenario, "time", {"schedule": "every_minutes", "every": 1})
    assert trigger.crontab is None and trigger.interval.every == 1  # beat's schedule row
    due_now(trigger)
    barrier = threading.Barrier(2)

    def tick():
        barrier.wait()
        try:
            triggers_tick()
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    [t.start() for t in threads]
    [t.join(20) for t in threads]
    assert len(runs_of(scenario)) == 1
    trigger.refresh_from_db()
    assert trigger.next_fire_at > timezone.now()
    slot = TriggerFire.objects.get(trigger=trigger).slot
    assert trigger_fire(trigger, slot, {}) == "duplicate"  # a redelivered slot: no second run
    assert runs_of(scenario)[0].trigger_params["slot"] == slot.isoformat()


def test_editing_and_disabling_take_effect_at_once(make_scenario, make_trigger, cast, no_dispatch):
    scenario = make_scenario()
    trigger = make_trigger(scenario, "time", {"schedule": "daily", "time": "03:00"})
    assert trigger.crontab.hour == "3" and trigger.crontab.minute == "0"
    trigger.params = {"schedule": "hourly", "minute": 7}
    trigger = trigger_save(trigger, user=cast["owner"])
    assert trigger.next_fire_at.minute == 7 and trigger.crontab.hour == "*"
    trigger.enabled = False
    trigger = trigger_save(trigger, user=cast["owner"])
    assert trigger.next_fire_at is None
    Trigger.objects.filter(pk=trigger.pk).update(next_fire_at=timezone.now() - timedelta(1))
    triggers_tick()
    assert runs_of(scenario) == []


@pytest.mark.parametrize("policy,expected_runs", [("skip", 0), ("once", 1)])
def test_missed_slots_follow_the_catch_up_policy(
    make_scenario, make_trigger, no_dispatch, policy, expected_runs
):
    scenario = make_scenario()
    trigger = make_trigger(scenario, "time", {"schedule": "hourly", "minute": 0}, catch_up=policy)
    due_now(trigger, seconds_ago=3 * 3600)  # everything was down for three hours:
    Heartbeat.objects.create(name="trigger-tick", at=timezone.now() - timedelta(hours=4))
    triggers_tick()
    triggers_tick()
    assert len(runs_of(scenario)) == expected_runs
    last = trigger.evaluations.first()
    assert ("catch-up policy: skip" in last.message) == (policy == "skip")


def test_a_late_slot_in_a_backlog_still_fires(make_scenario, make_trigger, no_dispatch):
    """Ticks were running (a burst kept them busy): late is not missed, whatever the policy."""
    scenario = make_scenario()
    trigger = make_trigger(scenario, "time", {"schedule": "hourly"}, catch_up="skip")
    due_now(trigger, seconds_ago=300)
    Heartbeat.objects.create(name="trigger-tick", at=timezone.now() - timedelta(seconds=5))
    triggers_tick()
    assert len(runs_of(scenario)) == 1


def test_a_slot_right_after_a_short_outage_is_late_not_missed(
    make_scenario, make_trigger, no_dispatch
):
    """Ticks stopped 2 s before the slot, their mark then at its stalest (refreshed every
    30 s, last 29 s before they stopped): a restart, not downtime; the slot fires."""
    scenario = make_scenario()
    trigger = make_trigger(scenario, "time", {"schedule": "hourly"}, catch_up="skip")
    due_now(trigger, seconds_ago=3)
    Heartbeat.objects.create(name="trigger-tick", at=timezone.now() - timedelta(seconds=34))
    triggers_tick()
    assert len(runs_of(scenario)) == 1


def test_inactive_scenarios_do_not_fire(make_scenario, make_trigger, no_dispatch):
    scenario = make_scenario(active=False)
    due_now(make_trigger(scenario, "time", {"schedule": "hourly"}))
    triggers_tick()
    assert runs_of(scenario) == []


@pytest.fixture
def watched(files_connection, project):
    root = Path(files_connection.config["root"])
    (root / "drop").mkdir()
    return Dataset.objects.create(
        project=project, name="drop", connection=files_connection, format="csv", path="drop"
    ), root / "drop"


def test_a_file_in_a_watched_folder_fires_once(
    watched, make_scenario, make_trigger, edition, no_dispatch
):
    edition("team")
    dataset, folder = watched
    scenario = make_scenario()
    trigger = make_trigger(
        scenario, "dataset_change", {"datasets": ["drop"]}, check_interval_seconds=1
    )
    now = timezone.now()
    assert trigger_evaluate(trigger, now).result == "unchanged"  # baseline
    (folder / "a.csv").write_text("x\n1\n")
    trigger.refresh_from_db()
    evaluation = trigger_evaluate(trigger, now + timedelta(seconds=1))
    assert evaluation.result == "fired" and evaluation.run is not None
    assert evaluation.run.trigger_params["changed_datasets"] == ["drop"]
    run_execute(evaluation.run.pk)
    trigger.refresh_from_db()
    assert trigger_evaluate(trigger, now + timedelta(seconds=2)).result == "unchanged"
    assert len(runs_of(scenario)) == 1


def test_a_slowly_growing_file_fires_once_after_the_grace_delay(
    watched, make_scenario, make_trigger, edition, no_dispatch
):
    edition("team")
    dataset, folder = watched
    scenario = make_scenario()
    trigger = make_trigger(scenario, "dataset_change", {"datasets": ["drop"]}, grace_seconds=10)
    start = timezone.now()
    trigger_evaluate(trigger, start)
    results = []
    for second in range(1, 6):  # the file grows for five checks
        with open(folder / "big.csv", "a") as handle:
            handle.write(f"{second}\n" * 1000)
        trigger.refresh_from_db()
        results.append(trigger_evaluate(trigger, start + timedelta(seconds=second)).result)
    for second in (8, 16, 20):  # then stops changing
        trigger.refresh_from_db()
        evaluation = trigger_evaluate(trigger, start + timedelta(seconds=second))
        results.append(evaluation.result)
        if evaluation.run:
            run_execute(evaluation.run.pk)
    assert results == ["waiting"] * 5 + ["waiting", "fired", "unchanged"]
    assert len(runs_of(scenario)) == 1


def test_a_changed_sql_result_fires_once(
    pg_connection, make_scenario, make_trigger, edition, no_dispatch
):
    edition("team")
    with sql_connect(pg_connection) as db:
        db.cursor().execute("DROP TABLE IF EXISTS inbox; CREATE TABLE inbox (id int)")
    scenario = make_scenario()
    trigger = make_trigger(
        scenario, "sql_change", {"connection": "warehouse", "sql": "SELECT count(*) FROM inbox"}
    )
    now = timezone.now()
    results = [trigger_evaluate(trigger, now).result]
    trigger.refresh_from_db()
    results.append(trigger_evaluate(trigger, now).result)
    with sql_connect(pg_connection) as db:
        db.cursor().execute("INSERT INTO inbox VALUES (1), (2)")
    for _ in range(2):
        trigger.refresh_from_db()
        evaluation = trigger_evaluate(trigger, now)
        results.append(evaluation.result)
        if evaluation.run:
            run_execute(evaluation.run.pk)
    assert results == ["unchanged", "unchanged", "fired", "unchanged"]
    assert runs_of(scenario)[0].trigger_params["rows"] == [["2"]]


def test_custom_python_keeps_state_and_fires_with_params(
    make_scenario, make_trigger, edition, cast, no_dispatch
):
    edition("enterprise")
    profile_assign(user=cast["owner"], kind=ProfileKind.CODER)
    scenario = make_scenario()
    trigger = make_trigger(
        scenario,
        "custom_python",
        {
            "code": (
                "from cadenza import trigger\n"
                "count = (trigger.get_state() or 0) + 1\n"
                "trigger.set_state(count)\n"
                "if count == 3:\n"
                "    trigger.fire({'count': count})\n"
            )
        },
    )
    results = []
    for _ in range(4):
        trigger.refresh_from_db()
        evaluation = trigger_evaluate(trigger, timezone.now())
        results.append(evaluation.result)
        if evaluation.run:
            run_execute(evaluation.run.pk)
    assert results == ["unchanged", "unchanged", "fired", "unchanged"]
    trigger.refresh_from_db()
    assert trigger.state["user"] == 4
    assert runs_of(scenario)[0].trigger_params["count"] == 3


def test_gates_refuse_creation_and_suspend_on_downgrade(
    make_scenario, make_trigger, edition, cast, no_dispatch
):
    scenario = make_scenario()
    with pytest.raises(PermissionDenied, match="Team edition"):
        make_trigger(scenario, "sql_change", {"connection": "x", "sql": "SELECT 1"})
    with pytest.raises(PermissionDenied, match="Enterprise edition"):
        make_trigger(scenario, "custom_python", {"code": "pass"})
    edition("enterprise")
    with pytest.raises(PermissionDenied, match="coder profile"):
        make_trigger(scenario, "custom_python", {"code": "pass"}, user=cast["editor"])
    trigger = make_trigger(scenario, "dataset_change", {"datasets": ["gone"]})
    InstalledLicense.objects.all().delete()  # back to community
    evaluation = trigger_evaluate(trigger, timezone.now())
    assert evaluation.result == "suspended" and "Team edition" in evaluation.message
    trigger.refresh_from_db()
    assert trigger.suspended_reason and Trigger.objects.filter(pk=trigger.pk).exists()
    edition("team")
    trigger.refresh_from_db()
    evaluation = trigger_evaluate(trigger, timezone.now())
    trigger.refresh_from_db()
    assert trigger.suspended_reason == ""
    assert trigger.evaluations.filter(message__contains="resumed").exists()


def test_after_scenario_fires_on_the_chosen_outcomes(
    make_scenario, make_trigger, cast, no_dispatch
):
    upstream = make_scenario(name="Load")
    downstream = make_scenario(name="Report")
    make_trigger(downstream, "after_scenario", {"scenario": upstream.pk, "outcomes": ["success"]})
    from apps.runs.services import run_start

    run = run_start(scenario=upstream, user=cast["owner"]).run
    run_execute(run.pk)
    [fired] = runs_of(downstream)
    assert fired.trigger_kind == "after_scenario"
    assert fired.trigger_params["upstream_run"] == run.pk
    assert fired.trigger_params["upstream_outcome"] == "success"


def test_a_suspended_trigger_can_still_be_switched_off(
    make_scenario, make_trigger, edition, cast, pg_connection
):
    edition("team")
    params = {"connection": "warehouse", "sql": "SELECT 1"}
    trigger = make_trigger(make_scenario(), "sql_change", params)
    InstalledLicense.objects.all().delete()
    trigger.enabled = False
    trigger = trigger_save(trigger, user=cast["owner"])
    assert not trigger.enabled and trigger.next_check_at is None
    trigger.enabled = True
    with pytest.raises(PermissionDenied, match="Team edition"):
        trigger_save(trigger, user=cast["owner"])
