from __future__ import annotations

import pytest

from apps.scenarios.models import Scenario, Step


@pytest.fixture
def make_scenario(project, cast):
    """A scenario of the SALES project, run as the project owner, with the given steps."""

    def make(name="Nightly", steps=(), **fields):
        fields.setdefault("run_as", cast["owner"])
        scenario = Scenario.objects.create(project=project, name=name, **fields)
        for position, step in enumerate(steps):
            Step.objects.create(scenario=scenario, position=position, **step)
        return scenario

    return make


@pytest.fixture
def no_dispatch(monkeypatch):
    """Runs stay queued until the test executes them in-process."""
    sent = []
    monkeypatch.setattr("apps.runs.services.run_dispatch", sent.append)
    return sent
