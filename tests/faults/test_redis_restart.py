"""Redis, the broker and channel layer of the distributed mode, restarts mid-run (issue #8).

Redis keeps nothing here (no persistence, as a flushed or replaced server): what was in
flight on it is gone, and the database has to be enough to recover (DESIGN §5, §10).
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer

from apps.runs.events import project_group
from apps.runs.models import Run
from apps.runs.services import runs_sweep
from tests.faults.ticker import (
    assert_log_complete,
    logged,
    start,
    stored_lines,
    stored_ticks,
    ticker_step,
)
from tests.processes import wait_until

pytestmark = [
    pytest.mark.worker,
    pytest.mark.fault,
    pytest.mark.timeout(150),
    pytest.mark.django_db(transaction=True),
]
BOUND = 30
BROKER_LOST = "Connection to broker lost"
RECONNECTED = "Connected to redis://"


def test_a_redis_restart_mid_run_loses_no_log_line_and_no_run(
    on_dedicated_redis, celery_worker_process, make_scenario, coder_owner, go_file, settings
):
    redis = on_dedicated_redis
    settings.CADENZA_REDISPATCH_AFTER = 1  # runs_sweep, called below as beat would call it
    worker = celery_worker_process(REDIS_URL=redis.url)
    ticker = make_scenario(name="ticker", steps=[ticker_step(go_file)])
    noop = {"name": "noop", "type": "set_variables", "params": {"variables": {"x": 1}}}
    quick = [make_scenario(name=name, steps=[noop]) for name in ("during", "after")]
    run = start(ticker, coder_owner)
    wait_until(lambda: stored_lines(run) >= 10, timeout=BOUND, what="the ticker's first lines")

    ticks_before = stored_ticks(run)
    redis.stop()
    wait_until(
        lambda: logged(worker, BROKER_LOST), timeout=BOUND, what="the worker lost its broker"
    )
    # Started while the broker is down: dispatching fails, the run stays queued, the sweep
    # sends it again once Redis is back (the database is the source of truth).
    during = start(quick[0], coder_owner)
    assert Run.objects.get(pk=during.pk).status == "queued"
    redis.start()
    wait_until(
        lambda: logged(worker, RECONNECTED, count=2), timeout=BOUND, what="the worker reconnected"
    )
    go_file.touch()  # the run's message is acknowledged after the reconnection

    run = finished(run)
    assert run.status == "success", run.outcome_message
    assert assert_log_complete(run) > ticks_before  # it printed on through the restart

    during = finished(during, sweep=True)
    assert during.status == "success", during.outcome_message
    # The worker's channel layer reconnected too: it publishes the new run's states.
    after, published = start_listening(quick[1], coder_owner)
    assert finished(after).status == "success", after.outcome_message
    assert published == ["running", "success"]
    assert worker.process.poll() is None, f"the worker died:\n{worker}"
    assert not Run.objects.filter(status__in=["queued", "running"]).exists()


def finished(run: Run, *, sweep: bool = False) -> Run:
    def final():
        if sweep:
            runs_sweep()
        run.refresh_from_db()
        return run.is_final

    wait_until(final, timeout=BOUND * 2, what=f"run {run.pk} final", every=0.2)
    return run


def start_listening(scenario, user) -> tuple[Run, list[str]]:
    """Start a run while listening to its project's group: the states the worker published
    (this process publishes only "queued", on start)."""
    layer = get_channel_layer()

    async def listen():
        channel = await layer.new_channel()
        await layer.group_add(project_group(scenario.project_id), channel)
        run = await sync_to_async(start)(scenario, user)
        states = []
        while "success" not in states:
            message = await asyncio.wait_for(layer.receive(channel), timeout=BOUND)
            state = message.get("run") or {}
            if state.get("id") == run.pk and state["status"] != "queued":
                states.append(state["status"])
        return run, states

    return async_to_sync(listen)()
