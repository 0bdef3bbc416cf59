"""The run list renders rows without RunSerializer, and must say exactly what it would."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.runs.api import LIST_FIELDS, RunSerializer, run_row
from apps.runs.models import Run

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/St_Johns"])
def test_a_list_row_is_what_the_serializer_renders(make_scenario, cast, zone):
    scenario = make_scenario()
    now = timezone.now()
    parent = Run.objects.create(scenario=scenario, project=scenario.project, number=1)
    Run.objects.create(
        scenario=scenario,
        project=scenario.project,
        number=2,
        status="failed",
        trigger_kind="time",
        trigger_name="hourly",
        trigger_params={"slot": "x", "nested": [1, {"a": None}]},
        started_by=cast["operator"],
        run_as=cast["owner"],
        parent_run=parent,
        started_at=now - timedelta(seconds=90.5),
        finished_at=now,
        abort_requested_at=now - timedelta(seconds=3),
        outcome_message="Step 'x' failed",
    )
    runs = Run.objects.order_by("id")
    with timezone.override(zone):  # the current time zone: UTC unless a request sets one
        expected = RunSerializer(runs, many=True).data
        rows = [run_row(row) for row in runs.values(*LIST_FIELDS)]
    assert rows == [dict(item) for item in expected]
    assert rows[1]["queued_at"].endswith("Z") == (zone == "UTC")
    assert rows[1]["duration_seconds"] == 90.5 and rows[0]["started_by"] is None


def test_the_list_endpoint_serves_those_rows(make_scenario, cast, client):
    scenario = make_scenario()
    Run.objects.create(scenario=scenario, project=scenario.project, number=1, status="failed")
    client.force_login(cast["reader"])
    url = f"/api/v1/projects/{scenario.project.key}/runs/?status=failed"
    body = client.get(url).json()
    assert [row["number"] for row in body["results"]] == [1]
    assert body["results"][0]["scenario_name"] == scenario.name
