"""Chart caches and documentation exports, refreshed by scenario steps."""

from __future__ import annotations

import pytest

from apps.dashboards.models import Chart, Dashboard
from apps.flow import build as engine
from apps.flow.documentation import exports_folder
from apps.ml.models import SavedModel
from apps.ml.training import model_train
from tests.flow.test_build import fresh
from tests.runs.test_runner import execute, messages

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@pytest.fixture
def built(orders_flow, recipe_run):
    engine.build([fresh(orders_flow["pg"])], "missing", recipe_run[0])
    return orders_flow


def test_refresh_charts_step_caches_grouped_results(
    built, project, make_scenario, no_dispatch, cast
):
    chart = Chart.objects.create(
        project=project,
        name="Revenue by day",
        dataset=fresh(built["clean"]),
        group_by="day",
        aggregate="sum",
        value="amount",
    )
    Chart.objects.create(
        project=project,
        name="Orders per day",
        dataset=fresh(built["pg"]),
        group_by="day",
        kind="line",
    )
    run = execute(
        make_scenario(steps=[{"name": "charts", "type": "refresh_charts", "params": {}}]),
        user=cast["owner"],
    )
    assert run.status == "success", messages(run)
    chart.refresh_from_db()
    assert chart.cached == {
        "labels": ["2026-01-01", "2026-01-02", "2026-01-03"],
        "values": [15.0, 3.0, 1.0],
    }
    assert chart.cached_at is not None
    assert run.step_runs.get().output == {"charts": {"Orders per day": 3, "Revenue by day": 3}}


def test_a_chart_on_an_unknown_column_fails_the_step(
    built, project, make_scenario, no_dispatch, cast
):
    Chart.objects.create(
        project=project, name="Bad", dataset=fresh(built["clean"]), group_by="weekday"
    )
    run = execute(
        make_scenario(
            steps=[{"name": "charts", "type": "refresh_charts", "params": {"charts": ["Bad"]}}]
        ),
        user=cast["owner"],
    )
    assert "unknown column 'weekday'" in run.step_runs.get().message


def test_flow_and_model_documentation_exports(
    built, project, make_scenario, no_dispatch, cast, recipe_run
):
    model = SavedModel.objects.create(
        project=project,
        name="amounts",
        dataset=fresh(built["clean"]),
        target="amount",
        task="regression",
        algorithm="linear_regression",
    )
    from apps.flow.models import Dataset

    # Enough rows to train on: the raw orders repeated.
    raw = built["root"] / "raw_orders.csv"
    lines = raw.read_text().splitlines()
    raw.write_text("\n".join(lines + lines[1:] * 5) + "\n")
    engine.build([Dataset.objects.get(name="orders_clean")], "force", recipe_run[0])
    model_train(model)
    run = execute(
        make_scenario(
            steps=[
                {"name": "flow docs", "type": "export_flow_docs", "params": {}},
                {"name": "model docs", "type": "export_model_docs", "params": {"model": "amounts"}},
            ]
        ),
        user=cast["owner"],
    )
    assert run.status == "success", messages(run)
    files = run.step_runs.get(name="flow docs").output["files"]
    assert [name.rsplit(".", 1)[1] for name in files] == ["html", "md"]
    html = (exports_folder(project) / files[0]).read_text()
    assert "<svg" in html and "orders_by_day_pg" in html and "SELECT order_id" in html
    markdown = (exports_folder(project) / files[1]).read_text()
    assert "**clean** (sql)" in markdown and "| amount |" in markdown
    model_files = run.step_runs.get(name="model docs").output["files"]
    model_html = (exports_folder(project) / model_files[0]).read_text()
    assert "v1 (active)" in model_html and "r2 =" in model_html


def test_exports_page_lists_and_serves_files_to_readers_only(built, project, client, cast):
    from apps.flow.documentation import flow_docs_export

    name = flow_docs_export(project)[0].name
    client.force_login(cast["reader"])
    page = client.get(f"/projects/{project.key}/exports/")
    assert name in page.content.decode()
    download = client.get(f"/projects/{project.key}/exports/{name}")
    assert download.status_code == 200 and download["Content-Type"] == "text/html"
    assert client.get(f"/projects/{project.key}/exports/..%2Fsecret_key").status_code == 404
    client.force_login(cast["outsider"])
    assert client.get(f"/projects/{project.key}/exports/{name}").status_code == 404


def test_dashboard_page_embeds_cached_data_safely(built, project, client, cast):
    chart = Chart.objects.create(
        project=project,
        name="c",
        dataset=fresh(built["clean"]),
        group_by="day",
        cached={"labels": ["</script><b>x"], "values": [1.0]},
    )
    dashboard = Dashboard.objects.create(project=project, name="Sales")
    dashboard.charts.add(chart)
    client.force_login(cast["reader"])
    page = client.get(f"/projects/{project.key}/dashboards/{dashboard.pk}/").content.decode()
    assert "chart.umd.min.js" in page and f'data-chart="chart-data-{chart.pk}"' in page
    assert "</script><b>x" not in page
