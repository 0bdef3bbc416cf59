from __future__ import annotations

import pytest

from apps.reporters.models import MessagingChannel, Reporter
from apps.runs.models import Run
from apps.runs.runner import run_execute
from apps.runs.services import run_start


@pytest.fixture(autouse=True)
def allow_loopback(settings):
    """The local peers listen on 127.0.0.1, which outbound HTTP refuses by default."""
    settings.CADENZA_OUTBOUND_ALLOW = ["127.0.0.0/8"]
    settings.CADENZA_DELIVERY_BACKOFF = 0


@pytest.fixture
def queued_deliveries(monkeypatch):
    """Deliveries are sent by the test (delivery_send), not by a worker."""
    queued = []
    monkeypatch.setattr(
        "apps.reporters.services.delivery_enqueue",
        lambda delivery_id, countdown=0: queued.append(delivery_id),
    )
    return queued


@pytest.fixture
def channel(db):
    def make(kind, config=None, secrets=None, name=None):
        channel = MessagingChannel(name=name or kind, kind=kind, config=config or {})
        channel.secrets = secrets or {}
        channel.save()
        return channel

    return make


@pytest.fixture
def reporter(make_scenario):
    def make(channel, *, scenario=None, steps=None, **fields):
        scenario = scenario or make_scenario(steps=steps or [])
        return Reporter.objects.create(
            scenario=scenario, name=f"to {channel.name}", channel=channel, **fields
        )

    return make


FAIL = [
    {
        "name": "boom",
        "type": "set_variables",
        "run_condition": "expression",
        "condition_expression": "no_such_name",
        "params": {"variables": {}},
    }
]
PASS = [{"name": "fine", "type": "set_variables", "params": {"variables": {"ok": True}}}]


@pytest.fixture
def finished_run(no_dispatch, cast):
    def run(scenario) -> Run:
        started = run_start(scenario=scenario, user=cast["owner"]).run
        run_execute(started.pk)
        return Run.objects.get(pk=started.pk)

    return run
