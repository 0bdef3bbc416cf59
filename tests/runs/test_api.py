"""The runs API: filters, ordering, detail with step runs, abort, and logs by ``?after=``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.services import token_create
from apps.runs.models import LogLine, Run, StepRun
from apps.runs.services import run_start

RUNS = "/api/v1/projects/SALES/runs/"
DAY = datetime(2024, 3, 1, tzinfo=UTC)


def make_run(scenario, number: int, status: str = "success", *, day: int = 0, **fields) -> Run:
    run = Run.objects.create(
        scenario=scenario, project=scenario.project, number=number, status=status, **fields
    )
    Run.objects.filter(pk=run.pk).update(queued_at=DAY + timedelta(days=day))
    return run


@pytest.fixture
def history(make_scenario):
    """Nightly: runs 1 (success, Mar 1), 2 (failed, Mar 2), 3 (success, Mar 3); Hourly: 1."""
    nightly, hourly = make_scenario("Nightly"), make_scenario("Hourly")
    runs = [
        make_run(nightly, 1, day=0),
        make_run(nightly, 2, "failed", day=1),
        make_run(nightly, 3, day=2),
        make_run(hourly, 1, "warning", day=3),
    ]
    return nightly, hourly, runs


def numbers(response) -> list[tuple[str, int]]:
    assert response.status_code == 200, response.content
    return [(run["scenario_name"], run["number"]) for run in response.json()["results"]]


def test_runs_list_is_newest_first(cast, api, history):
    response = api(cast["reader"]).get(RUNS)
    assert numbers(response) == [("Hourly", 1), ("Nightly", 3), ("Nightly", 2), ("Nightly", 1)]
    # Cursor pages: no total count (a COUNT(*) over the whole history is what made it slow).
    assert response.json()["next"] is None and "count" not in response.json()


def test_runs_list_pages_by_cursor_with_its_filters(cast, api, make_scenario):
    scenario = make_scenario()
    for number in range(1, 121):
        make_run(scenario, number, "failed" if number % 2 else "success")
    client = api(cast["reader"])
    seen, url, params = [], RUNS, {"status": "failed"}
    while url:
        page = client.get(url, params).json()
        seen += [run["number"] for run in page["results"]]
        url, params = page["next"], None  # the link carries the filter and the cursor
    assert seen == list(range(119, 0, -2))
    back = client.get(client.get(RUNS).json()["next"]).json()["previous"]
    assert [run["number"] for run in client.get(back).json()["results"]][:2] == [120, 119]


def test_runs_list_filters(cast, api, history):
    nightly, _, _ = history
    client = api(cast["reader"])
    by_scenario = client.get(RUNS, {"scenario": nightly.pk})
    assert numbers(by_scenario) == [("Nightly", 3), ("Nightly", 2), ("Nightly", 1)]
    assert numbers(client.get(RUNS, {"status": "failed"})) == [("Nightly", 2)]
    window = {"since": "2024-03-02T00:00:00Z", "until": "2024-03-04T00:00:00Z"}
    assert numbers(client.get(RUNS, window)) == [("Nightly", 3), ("Nightly", 2)]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "bogus"}, "status"),
        ({"since": "yesterday"}, "since"),
        ({"scenario": "x"}, "scenario"),
    ],
)
def test_runs_list_bad_filter_names_the_field(cast, api, history, query, field):
    response = api(cast["reader"]).get(RUNS, query)
    assert response.status_code == 400
    assert field in response.json()


def test_runs_list_queries_do_not_grow_with_runs(cast, api, make_scenario):
    scenario = make_scenario()

    def list_queries(count: int) -> int:
        for number in range(Run.objects.count() + 1, count + 1):
            make_run(scenario, number, started_by=cast["operator"], run_as=cast["owner"])
        with CaptureQueriesContext(connection) as queries:
            assert len(api(cast["reader"]).get(RUNS).json()["results"]) == count
        return len(queries)

    assert list_queries(2) == list_queries(7)


def test_runs_list_with_a_token_is_three_queries(cast, make_scenario):
    """The token (with its user and profile), the project the reader may view, the page: the
    permission subquery is asked once, not again for the runs of a project already checked."""
    scenario = make_scenario()
    for number in range(1, 4):
        make_run(scenario, number, started_by=cast["operator"], run_as=cast["owner"])
    _, key = token_create(user=cast["reader"], name="ci")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.get(RUNS)  # the first use notes the token's last_used_at
    with CaptureQueriesContext(connection) as queries:
        response = client.get(RUNS, {"status": "success"})
    assert [run["number"] for run in response.json()["results"]] == [3, 2, 1]
    # The two lookups by a unique key are statements prepared by the first request.
    statements = [query["sql"].split("_")[:2] for query in queries[:2]]
    assert statements == [["EXECUTE cadenza", "api"], ["EXECUTE cadenza", "visible"]]
    assert len(queries) == 3 and ' FROM "runs_run" r ' in queries[2]["sql"]
    assert "projects_membership" not in queries[2]["sql"]


def test_run_detail_has_step_runs(cast, api, make_scenario):
    run = make_run(make_scenario(), 1)
    for position, name in enumerate(["extract", "load"]):
        StepRun.objects.create(run=run, position=position, name=name, type="python",
                               status="success", output={"rows": position})  # fmt: skip
    body = api(cast["reader"]).get(f"{RUNS}{run.pk}/").json()
    assert [(s["name"], s["status"], s["output"]) for s in body["step_runs"]] == [
        ("extract", "success", {"rows": 0}),
        ("load", "success", {"rows": 1}),
    ]
    assert "definition" in body and "variables" in body


def test_run_of_another_project_is_not_reachable_through_this_one(cast, api, other_project):
    from apps.scenarios.models import Scenario

    payroll = Scenario.objects.create(project=other_project, name="Payroll")
    run = make_run(payroll, 1)
    assert api(cast["superuser"]).get(f"{RUNS}{run.pk}/").status_code == 404
    assert api(cast["superuser"]).post(f"{RUNS}{run.pk}/abort/").status_code == 404


def test_abort_a_queued_run_ends_it(cast, api, make_scenario, no_dispatch):
    run = run_start(scenario=make_scenario()).run
    response = api(cast["operator"]).post(f"{RUNS}{run.pk}/abort/")
    assert response.status_code == 202
    assert response.json()["status"] == "aborted"
    run.refresh_from_db()
    assert run.status == "aborted" and run.lane is None


def test_abort_a_running_run_asks_its_runner(cast, api, make_scenario, no_dispatch):
    run = run_start(scenario=make_scenario()).run
    Run.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now())
    response = api(cast["operator"]).post(f"{RUNS}{run.pk}/abort/")
    assert response.status_code == 202
    assert response.json()["status"] == "running"
    assert response.json()["abort_requested_at"] is not None
    run.refresh_from_db()
    assert run.abort_requested_by == cast["operator"]


# --- logs ----------------------------------------------------------------------------------


@pytest.fixture
def logged_run(make_scenario):
    run = make_run(make_scenario(), 1, "running")
    LogLine.objects.bulk_create(
        LogLine(run=run, seq=seq, ts=timezone.now(), level="info", message=f"line {seq}")
        for seq in range(1, 11)
    )
    return run


def test_logs_after_a_seq_in_order(cast, api, logged_run):
    url = f"{RUNS}{logged_run.pk}/logs/"
    page = api(cast["reader"]).get(url, {"after": 3, "limit": 4}).json()
    assert [line["seq"] for line in page["lines"]] == [4, 5, 6, 7]
    assert page["lines"][0]["message"] == "line 4"
    assert (page["next_after"], page["has_more"], page["run_status"]) == (7, True, "running")
    rest = api(cast["reader"]).get(url, {"after": page["next_after"]}).json()
    assert [line["seq"] for line in rest["lines"]] == [8, 9, 10]
    assert (rest["next_after"], rest["has_more"]) == (10, False)
    empty = api(cast["reader"]).get(url, {"after": 10}).json()
    assert (empty["lines"], empty["next_after"]) == ([], 10)


def test_logs_default_from_the_start(cast, api, logged_run):
    page = api(cast["reader"]).get(f"{RUNS}{logged_run.pk}/logs/").json()
    assert [line["seq"] for line in page["lines"]] == list(range(1, 11))


@pytest.mark.parametrize(
    ("query", "field"),
    [({"limit": 5001}, "limit"), ({"limit": 0}, "limit"), ({"after": -1}, "after")],
)
def test_logs_bad_query_names_the_field(cast, api, logged_run, query, field):
    response = api(cast["reader"]).get(f"{RUNS}{logged_run.pk}/logs/", query)
    assert response.status_code == 400
    assert field in response.json()
