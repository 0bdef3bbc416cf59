"""The claim (apps/runs/claim.py): queued → running for exactly one caller, and the run
loaded as the ORM would load it — on PostgreSQL both in one statement."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction

from apps.reporters.models import MessagingChannel, Reporter
from apps.runs.models import Run
from apps.runs.runner import run_execute
from apps.runs.services import run_claim, run_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]
STEPS = [{"name": "set", "type": "set_variables", "params": {"variables": {"x": 1}}}]


def fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.fields}


def test_the_claimed_run_is_loaded_as_the_orm_loads_it(make_scenario, no_dispatch, cast):
    scenario = make_scenario(steps=STEPS, variables={"region": "eu", "n": [1, 2]})
    run = run_start(scenario=scenario, trigger_params={"slot": "x"}).run

    claimed = run_claim(run.pk, "host:1")

    expected = Run.objects.select_related("scenario", "project", "run_as").get(pk=run.pk)
    assert expected.status == "running" and expected.worker == "host:1"
    assert fields(claimed) == fields(expected)  # the claimed values, JSON decoded, aware times
    assert claimed.variables == {"region": "eu", "n": [1, 2]}
    assert claimed.definition["steps"][0]["name"] == "set"
    assert fields(claimed.scenario) == fields(expected.scenario)
    assert fields(claimed.project) == fields(expected.project)
    assert claimed.run_as == cast["owner"] and fields(claimed.run_as) == fields(expected.run_as)
    assert claimed.scenario.project is claimed.project
    assert claimed.start_reporters is False


def test_a_run_without_run_as_user_and_start_reporters(make_scenario, no_dispatch):
    scenario = make_scenario(steps=STEPS, run_as=None, queue_policy="parallel", max_parallel=3)
    channel = MessagingChannel.objects.create(name="hook", kind="webhook", config={})
    Reporter.objects.create(scenario=scenario, name="end", channel=channel, when="end")
    assert run_claim(run_start(scenario=scenario).run.pk, "w").start_reporters is False
    Reporter.objects.create(scenario=scenario, name="off", channel=channel, when="start",
                            enabled=False)  # fmt: skip
    assert run_claim(run_start(scenario=scenario).run.pk, "w").start_reporters is False
    Reporter.objects.create(scenario=scenario, name="both", channel=channel, when="both")

    claimed = run_claim(run_start(scenario=scenario).run.pk, "w")

    assert claimed.run_as is None and claimed.run_as_id is None
    assert claimed.start_reporters is True


def test_only_queued_runs_in_a_lane_are_claimable(make_scenario, no_dispatch):
    scenario = make_scenario(steps=STEPS, queue_policy="queue_one")
    active, waiting = run_start(scenario=scenario).run, run_start(scenario=scenario).run
    assert waiting.lane == "q"

    assert run_claim(waiting.pk, "w") is None  # waits for its lane
    assert run_claim(active.pk, "w") is not None
    assert run_claim(active.pk, "w") is None  # a redelivered message
    assert run_claim(10**9, "w") is None
    assert Run.objects.get(pk=waiting.pk).status == "queued"


def test_a_claim_blocked_by_a_racing_claim_rechecks_the_row_and_loses(make_scenario, no_dispatch):
    """The other claim holds the row until it commits; this one must then see `running`,
    not the `queued` of its snapshot (the conditions are on the locked row)."""
    run = run_start(scenario=make_scenario(steps=STEPS)).run
    holding, results = threading.Event(), {}

    def first():
        with transaction.atomic():
            results["first"] = run_claim(run.pk, "first")
            holding.set()
            threading.Event().wait(0.5)  # the second claim is waiting on the row lock
        connections.close_all()

    def second():
        holding.wait(10)
        results["second"] = run_claim(run.pk, "second")
        connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    assert results["first"] is not None and results["first"].worker == "first"
    assert results["second"] is None
    assert Run.objects.get(pk=run.pk).worker == "first"


def test_many_simultaneous_claims_have_one_winner(make_scenario, no_dispatch):
    run = run_start(scenario=make_scenario(steps=STEPS)).run
    start, winners = threading.Barrier(8), []

    def claim(n):
        start.wait(10)
        if run_claim(run.pk, f"w{n}") is not None:
            winners.append(n)
        connections.close_all()

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    assert len(winners) == 1
    assert Run.objects.get(pk=run.pk).worker == f"w{winners[0]}"


def test_the_prepared_claim_outlives_a_rollback_and_is_made_again_after_a_reconnect(
    make_scenario, no_dispatch
):
    scenario = make_scenario(steps=STEPS, queue_policy="parallel", max_parallel=5)
    first, second, third = (run_start(scenario=scenario).run for _ in range(3))
    assert run_claim(first.pk, "w") is not None

    with pytest.raises(RuntimeError), transaction.atomic():
        assert run_claim(second.pk, "w") is not None
        raise RuntimeError("rolled back")
    assert Run.objects.get(pk=second.pk).status == "queued"
    assert run_claim(second.pk, "w") is not None  # prepared before the rollback: still there

    connections["default"].close()  # a new database session knows no prepared statement
    assert run_claim(third.pk, "w").worker == "w"


def test_a_run_claimed_over_a_connection_the_server_dropped_reconnects(make_scenario, no_dispatch):
    """The worker skips the health check before a run (config/celery.py): the claim itself
    must survive a connection the database closed since the last task."""
    run = run_start(scenario=make_scenario(steps=STEPS)).run
    pid = connection.cursor().connection.info.backend_pid
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()
    connection.health_check_done = True  # as the prerun hook leaves it for runs.execute

    run_execute(run.pk)

    run.refresh_from_db()
    assert run.status == "success" and run.step_runs.get().status == "success"
