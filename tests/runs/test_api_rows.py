"""The run list reads its page in SQL written by hand (apps/runs/history.py) and drives DRF's
cursor paginator with it: it must serve exactly what RunSerializer over the ORM would."""

from __future__ import annotations

import json
from base64 import b64encode
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from apps.runs.api import RunCursorPagination, RunFilterSerializer, RunSerializer
from apps.runs.history import COLUMNS, run_history_page
from apps.runs.models import Run
from apps.scenarios.models import Scenario
from apps.system.renderers import FastJSONRenderer

pytestmark = pytest.mark.django_db
DAY = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/St_Johns", "Atlantic/Reykjavik"])
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
        expected = JSONRenderer().render(RunSerializer(runs, many=True).data)
        rows = run_history_page(scenario.project.pk, {}, descending=False, limit=10)
    assert FastJSONRenderer().render(rows) == expected  # byte for byte, keys in order
    assert JSONRenderer().render(rows) == expected  # the browsable API's renderer too
    shown = json.loads(expected)
    assert shown[1]["queued_at"].endswith("Z") == (zone in ("UTC", "Atlantic/Reykjavik"))
    assert shown[1]["duration_seconds"] == 90.5 and shown[0]["started_by"] is None


def test_the_page_reads_what_the_serializer_shows_in_its_order():
    shown = [name for name in RunSerializer.Meta.fields if name != "duration_seconds"]
    assert [name for name, *_ in COLUMNS] == shown


def test_the_list_endpoint_serves_those_rows(make_scenario, cast, client):
    scenario = make_scenario()
    Run.objects.create(scenario=scenario, project=scenario.project, number=1, status="failed")
    client.force_login(cast["reader"])
    url = f"/api/v1/projects/{scenario.project.key}/runs/?status=failed"
    body = client.get(url).json()
    assert [row["number"] for row in body["results"]] == [1]
    assert body["results"][0]["scenario_name"] == scenario.name


@pytest.fixture
def many_runs(make_scenario, other_project):
    """23 runs a day apart (First has the even numbers, Second the odd; every third failed),
    and runs of another project that must never show."""
    first, second = make_scenario("First"), make_scenario("Second")
    runs = [
        Run(scenario=(first, second)[n % 2], project=first.project, number=n,
            status="failed" if n % 3 == 0 else "success", queued_at=DAY + timedelta(days=n))
        for n in range(1, 24)
    ]  # fmt: skip
    other = Scenario.objects.create(project=other_project, name="Elsewhere")
    runs += [Run(scenario=other, project=other_project, number=n) for n in range(1, 4)]
    Run.objects.bulk_create(runs)
    for run in Run.objects.filter(project=first.project):  # queued_at is auto_now_add
        Run.objects.filter(pk=run.pk).update(queued_at=DAY + timedelta(days=run.number))
    return first, second


def cursor(**tokens) -> str:
    return b64encode(urlencode(tokens).encode()).decode()


def reference(path: str, project) -> dict:
    """What DRF's CursorPagination serves for ``path`` over the ORM, with RunSerializer."""
    request = Request(APIRequestFactory().get(path))
    query = RunFilterSerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    filters = query.validated_data
    lookups = {"scenario": "scenario_id", "status": "status", "since": "queued_at__gte",
               "until": "queued_at__lt"}  # fmt: skip
    runs = Run.objects.filter(project=project, **{lookups[k]: v for k, v in filters.items()})
    paginator = RunCursorPagination()
    page = paginator.paginate_queryset(runs.order_by("-id"), request)
    return json.loads(json.dumps(
        paginator.get_paginated_response(RunSerializer(page, many=True).data).data
    ))  # fmt: skip


def test_every_page_and_link_is_drf_s_own_over_the_orm(cast, api, many_runs, monkeypatch):
    monkeypatch.setattr(RunCursorPagination, "page_size", 4)
    first, _ = many_runs
    project, client = first.project, api(cast["reader"])
    base = f"/api/v1/projects/{project.key}/runs/"
    ids = sorted(Run.objects.filter(project=project).values_list("id", flat=True))
    mixes = [{}, {"status": "failed"}, {"scenario": first.pk},
             {"since": "2024-03-05T00:00:00Z", "until": "2024-03-20T00:00:00Z"}]  # fmt: skip
    crafted = [{"p": ids[10]}, {"o": 2, "p": ids[10]}, {"r": 1, "p": ids[10]},
               {"r": 1, "o": 3, "p": ids[12]}, {"o": 5}, {"p": ids[-1] + 100},
               {"r": 1, "p": ids[0] - 1}]  # fmt: skip
    served = 0
    for filters in mixes:
        query = {key: str(value) for key, value in filters.items()}
        paths = [f"{base}?{urlencode(query)}"]
        paths += [f"{base}?{urlencode({**query, 'cursor': cursor(**c)})}" for c in crafted]
        seen = set()
        while paths:  # every page, and every page its next and previous links lead to
            path = paths.pop()
            if path in seen:
                continue
            seen.add(path)
            response = client.get(path)
            assert response.status_code == 200, response.content
            assert response.json() == reference(path, project), path
            served += 1
            paths += [link.removeprefix("http://testserver") for link in
                      (response.json()["next"], response.json()["previous"]) if link]  # fmt: skip
    assert served > 40


@pytest.mark.parametrize("tokens", [{"p": "abc"}, {"p": "9" * 30}, {"o": "x"}, {"r": "y"}])
def test_a_forged_cursor_is_a_404_naming_it(cast, api, many_runs, tokens):
    first, _ = many_runs
    url = f"/api/v1/projects/{first.project.key}/runs/"
    response = api(cast["reader"]).get(url, {"cursor": cursor(**tokens)})
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


def test_the_page_is_one_query_on_the_runs_table(cast, api, many_runs):
    first, _ = many_runs
    url = f"/api/v1/projects/{first.project.key}/runs/"
    with CaptureQueriesContext(connection) as queries:
        response = api(cast["reader"]).get(url, {"status": "failed", "scenario": first.pk})
    assert [run["number"] for run in response.json()["results"]] == [18, 12, 6]
    pages = [query["sql"] for query in queries if '"runs_run"' in query["sql"]]
    assert len(pages) == 1 and "LIMIT" in pages[0]
