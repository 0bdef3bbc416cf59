"""Queue policies under concurrent run_start calls, the promotion of the waiting run, the
sweep's re-dispatch of lost messages, and aborts decided by the database (DESIGN §5)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.runs.models import ACTIVE_STATUSES, Run
from apps.runs.services import RunStart, run_abort, run_claim, run_finish, run_start, runs_sweep

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]
CALLERS = 50


def start_concurrently(scenario, user) -> list[RunStart]:
    """CALLERS threads call run_start at the same moment, each on its own connection."""
    barrier = threading.Barrier(CALLERS)
    results: list[RunStart | None] = [None] * CALLERS
    errors: list[BaseException] = []

    def call(index: int) -> None:
        try:
            barrier.wait(timeout=20)
            results[index] = run_start(scenario=scenario, user=user)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=call, args=(index,)) for index in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors
    return results


@pytest.mark.parametrize(
    ("policy", "max_parallel", "lanes", "reason"),
    [
        ("skip", 2, ["0"], "a run is already active"),
        ("queue_one", 2, ["0", "q"], "a run is already queued"),
        ("parallel", 3, ["0", "1", "2"], "3 runs are already active"),
    ],
    ids=["skip", "queue_one", "parallel"],
)
def test_concurrent_starts_respect_the_queue_policy(
    make_scenario, cast, no_dispatch, policy, max_parallel, lanes, reason
):
    scenario = make_scenario(queue_policy=policy, max_parallel=max_parallel)
    results = start_concurrently(scenario, cast["owner"])

    created = [result.run for result in results if result.run is not None]
    refused = [result for result in results if result.run is None]
    assert len(created) == len(lanes)
    assert len(refused) == CALLERS - len(lanes)
    assert {result.reason for result in refused} == {reason}
    assert {result.active.pk for result in refused} <= {run.pk for run in created}
    active = Run.objects.filter(scenario=scenario, status__in=ACTIVE_STATUSES)
    assert sorted(active.values_list("lane", flat=True)) == lanes
    assert Run.objects.filter(scenario=scenario).count() == len(lanes)  # refusals leave nothing
    assert sorted(active.values_list("number", flat=True)) == list(range(1, len(lanes) + 1))
    # Every run holding a real lane is dispatched; the one waiting in lane "q" is not.
    assert sorted(no_dispatch) == sorted(active.exclude(lane="q").values_list("pk", flat=True))


@pytest.mark.parametrize("policy", ["skip", "queue_one"])
def test_a_refused_start_in_the_callers_transaction_undoes_only_itself(
    make_scenario, no_dispatch, policy
):
    """The last lane is tried without a savepoint of its own: a refusal rolls back
    run_start's own block (the counter with it), never the caller's transaction."""
    scenario = make_scenario(queue_policy=policy)
    runs = [run_start(scenario=scenario).run for _ in range(2 if policy == "queue_one" else 1)]
    with transaction.atomic():
        scenario.variables = {"kept": True}
        scenario.save(update_fields=["variables"])
        refused = run_start(scenario=scenario)
        assert refused.run is None and refused.active == runs[0]
        scenario.refresh_from_db()  # the caller's transaction still works
    assert scenario.variables == {"kept": True}
    assert scenario.run_counter == len(runs)
    after = run_finish(runs[0].pk, "success") and run_start(scenario=scenario).run
    assert after is not None and after.number == len(runs) + 1


def test_finishing_the_running_run_promotes_and_dispatches_the_waiting_one(
    make_scenario, cast, no_dispatch
):
    scenario = make_scenario(queue_policy="queue_one")
    running = run_start(scenario=scenario, user=cast["owner"]).run
    waiting = run_start(scenario=scenario, user=cast["owner"]).run
    assert (running.lane, waiting.lane) == ("0", "q")
    assert run_claim(running.pk, "test-worker")
    assert not run_claim(waiting.pk, "test-worker")  # a waiting run cannot be executed yet
    assert no_dispatch == [running.pk]

    assert run_finish(running.pk, "success")
    running.refresh_from_db()
    waiting.refresh_from_db()
    assert (running.status, running.lane) == ("success", None)
    assert (waiting.status, waiting.lane) == ("queued", "0")
    assert no_dispatch == [running.pk, waiting.pk]
    assert run_claim(waiting.pk, "test-worker")
    assert run_start(scenario=scenario, user=cast["owner"]).run.lane == "q"  # free again


class RunsQueue:
    """The broker's runs queue (the harness's Redis), as a backlog no worker has reached."""

    def __init__(self, name: str):
        from config.celery import app

        self.app, self.name = app, name

    def purge(self) -> None:
        with self.app.connection_for_write() as broker:
            broker.default_channel.queue_purge(self.name)

    def put(self, count: int) -> None:
        from kombu import Queue

        with self.app.producer_or_acquire() as producer:
            Queue(self.name, channel=producer.channel).declare()
            for _ in range(count):
                producer.publish({"backlog": True}, routing_key=self.name)


@pytest.fixture
def runs_queue(settings):
    queue = RunsQueue(settings.CELERY_TASK_DEFAULT_QUEUE)
    queue.put(0)  # declared
    queue.purge()
    yield queue
    queue.purge()


def test_sweep_dispatches_again_queued_runs_whose_message_is_old(
    make_scenario, cast, no_dispatch, settings, runs_queue
):
    settings.CADENZA_REDISPATCH_AFTER = 30
    long_ago = timezone.now() - timedelta(seconds=60)
    scenario = make_scenario(queue_policy="parallel", max_parallel=3)
    lost, fresh, never_sent = (run_start(scenario=scenario).run for _ in range(3))
    Run.objects.filter(pk=lost.pk).update(dispatched_at=long_ago)
    Run.objects.filter(pk=fresh.pk).update(dispatched_at=timezone.now())
    Run.objects.filter(pk=never_sent.pk).update(dispatched_at=None, queued_at=long_ago)
    queue_one = make_scenario(name="Queued", queue_policy="queue_one")
    run_claim(run_start(scenario=queue_one).run.pk, "test-worker")
    behind = run_start(scenario=queue_one).run
    Run.objects.filter(pk=behind.pk).update(queued_at=long_ago)  # waits its turn: not sent
    no_dispatch.clear()

    assert runs_sweep() == {"reaped": 0, "redispatched": 2}
    assert sorted(no_dispatch) == sorted([lost.pk, never_sent.pk])


def test_the_sweep_resends_only_as_many_runs_as_the_broker_lacks_messages_for(
    make_scenario, no_dispatch, settings, runs_queue
):
    """Behind a backlog a run waits its turn: resending every run queued for a while, on
    every sweep, multiplied the backlog. Only what the queue lacks is resent, oldest first."""
    settings.CADENZA_REDISPATCH_AFTER = 30
    scenario = make_scenario(queue_policy="parallel", max_parallel=5)
    runs = [run_start(scenario=scenario).run.pk for _ in range(5)]
    Run.objects.filter(pk__in=runs).update(dispatched_at=timezone.now() - timedelta(seconds=60))
    no_dispatch.clear()

    runs_queue.put(5)  # every message is still waiting
    assert runs_sweep() == {"reaped": 0, "redispatched": 0}
    runs_queue.purge()
    runs_queue.put(3)  # two were lost
    assert runs_sweep() == {"reaped": 0, "redispatched": 2}
    assert no_dispatch == runs[:2]
    runs_queue.purge()  # the broker lost them all (a restart without persistence)
    no_dispatch.clear()
    assert runs_sweep() == {"reaped": 0, "redispatched": 5}
    assert no_dispatch == runs


def test_abort_trusts_the_database_not_a_stale_copy(make_scenario, cast, no_dispatch):
    scenario = make_scenario(queue_policy="queue_one")
    run = run_start(scenario=scenario, user=cast["owner"]).run
    waiting = run_start(scenario=scenario, user=cast["owner"]).run
    assert run_claim(run.pk, "test-worker")  # claimed after `run` was loaded: it says queued

    run = run_abort(run, user=cast["operator"])
    assert run.status == "running", "a running run is stopped by its runner, not marked"
    assert run.abort_requested_at is not None and run.abort_requested_by == cast["operator"]

    waiting = run_abort(waiting, user=cast["operator"])
    assert (waiting.status, waiting.lane) == ("aborted", None)
    assert waiting.outcome_message == "Aborted before it started by olga."
