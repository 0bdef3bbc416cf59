"""Charts and dashboards through the REST API and the admin: the permission matrix, validation
errors naming the field, and refreshing a chart's cache on real data."""

from __future__ import annotations

import pytest

from apps.dashboards.models import Chart, Dashboard
from apps.flow import build as engine
from tests.flow.test_build import fresh
from tests.flow.test_quality_api import READ, ROLES, WRITE, admin_errors, errors_of, expected
from tests.runs.admin_forms import action, messages_of

CHARTS = "/api/v1/projects/SALES/charts/"
DASHBOARDS = "/api/v1/projects/SALES/dashboards/"


@pytest.fixture
def chart(orders_flow):
    return Chart.objects.create(
        project=orders_flow["raw"].project, name="by status", dataset=orders_flow["raw"],
        group_by="status", aggregate="sum", value="amount",
    )  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
def test_charts_and_dashboards_matrix(cast, api, chart, role):
    client = api(cast[role])
    board = Dashboard.objects.create(project=chart.project, name="Sales")
    for url, obj in ((CHARTS, chart), (DASHBOARDS, board)):
        assert client.get(url).status_code == expected(READ, role, 200)
        assert client.get(f"{url}{obj.pk}/").status_code == expected(READ, role, 200)
        patched = client.patch(f"{url}{obj.pk}/", {"name": "renamed"})
        assert patched.status_code == expected(WRITE, role, 200)
    refreshed = client.post(f"{CHARTS}{chart.pk}/refresh/")
    assert refreshed.status_code == expected(WRITE, role, 200)
    body = {"name": "days", "dataset": "raw_orders", "group_by": "day"}
    assert client.post(CHARTS, body).status_code == expected(WRITE, role, 201)
    created = client.post(DASHBOARDS, {"name": "Daily", "charts": ["days"]})
    assert created.status_code == expected(WRITE, role, 201)
    for url, obj in ((DASHBOARDS, board), (CHARTS, chart)):
        assert client.delete(f"{url}{obj.pk}/").status_code == expected(WRITE, role, 204)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"group_by": "stauts"}, "group_by", "No column 'stauts' in raw_orders"),
        ({"aggregate": "avg", "value": ""}, "value", "The average needs a value column."),
        ({"aggregate": "max", "value": "amuont"}, "value", "No column 'amuont' in raw_orders"),
        ({"aggregate": "sum", "value": "status"}, "value", "status holds VARCHAR values"),
        ({"name": "by status"}, "name", "already has a chart named 'by status'"),
        ({"dataset": "staff"}, "dataset", "No dataset 'staff' here."),
        ({"kind": "donut"}, "kind", "is not a valid choice"),
    ],
)
def test_chart_errors_name_the_field(cast, api, chart, body, field, message):
    sent = {"name": "c", "dataset": "raw_orders", "group_by": "day", **body}
    errors = errors_of(api(cast["editor"]).post(CHARTS, sent))
    assert message in errors[field][0], errors


def test_dashboards_group_the_projects_charts(cast, api, chart, other_project):
    Chart.objects.create(project=other_project, name="staff", dataset=chart.dataset,
                         group_by="day")  # fmt: skip
    editor = api(cast["editor"])
    refused = editor.post(DASHBOARDS, {"name": "Mixed", "charts": ["by status", "staff"]})
    assert "No chart 'staff' here." in errors_of(refused)["charts"][0]
    created = editor.post(DASHBOARDS, {"name": "Sales", "charts": [chart.pk]})
    assert created.status_code == 201, created.content
    board = created.json()
    assert board["charts"] == ["by status"]
    assert board["page"] == f"http://testserver/projects/SALES/dashboards/{board['id']}/"
    clash = editor.post(DASHBOARDS, {"name": "Sales"})
    assert "already has a dashboard named 'Sales'" in errors_of(clash)["name"][0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_refresh_through_the_api_caches_the_result(cast, api, orders_flow, recipe_run):
    engine.build([fresh(orders_flow["pg"])], "missing", recipe_run[0])
    editor = api(cast["editor"])
    body = {"name": "daily", "dataset": "orders_by_day_pg", "kind": "line", "group_by": "day",
            "aggregate": "sum", "value": "amount"}  # fmt: skip
    created = editor.post(CHARTS, body)
    assert created.status_code == 201, created.content
    assert created.json()["cached"] == {}
    refreshed = editor.post(f"{CHARTS}{created.json()['id']}/refresh/")
    assert refreshed.status_code == 200, refreshed.content
    cached = refreshed.json()["cached"]
    assert cached["values"] == [15.0, 3.0, 1.0] and len(cached["labels"]) == 3
    assert refreshed.json()["cached_at"] is not None
    Chart.objects.filter(name="daily").update(group_by="nope")  # slipped past validation
    failed = editor.post(f"{CHARTS}{created.json()['id']}/refresh/")
    assert "unknown column 'nope' in orders_by_day_pg" in errors_of(failed)["detail"]


# --- the admin ---------------------------------------------------------------------------------


@pytest.fixture
def admin_as(client, cast):
    def login(role):
        client.force_login(cast[role])
        return client

    return login


def test_admin_chart_form_action_and_dashboard_link(admin_as, chart):
    editor = admin_as("editor")
    form = {"project": chart.project_id, "name": "c", "dataset": chart.dataset_id,
            "kind": "bar", "group_by": "dya", "aggregate": "count", "value": ""}  # fmt: skip
    errors = admin_errors(editor.post("/admin/dashboards/chart/add/", form))
    assert "No column 'dya' in raw_orders" in errors["group_by"][0]
    said = messages_of(action(editor, "/admin/dashboards/chart/", "refresh_cache", chart))
    assert said == ["by status: 2 group(s) cached."]
    assert Chart.objects.get(pk=chart.pk).cached == {
        "labels": ["cancelled", "ok"], "values": [7.0, 19.0],
    }  # fmt: skip
    board = Dashboard.objects.create(project=chart.project, name="Sales")
    listing = admin_as("reader").get("/admin/dashboards/dashboard/").content.decode()
    assert f'href="/projects/SALES/dashboards/{board.pk}/"' in listing


def test_admin_pages_render(admin_as, chart):
    board = Dashboard.objects.create(project=chart.project, name="Sales")
    board.charts.add(chart)
    for role in ("editor", "reader"):
        client = admin_as(role)
        for kind, obj in (("chart", chart), ("dashboard", board)):
            assert client.get(f"/admin/dashboards/{kind}/").status_code == 200
            assert client.get(f"/admin/dashboards/{kind}/{obj.pk}/change/").status_code == 200
            add = client.get(f"/admin/dashboards/{kind}/add/")
            assert add.status_code == (200 if role == "editor" else 403)
    assert (
        admin_as("outsider").get(f"/admin/dashboards/chart/{chart.pk}/change/").status_code == 404
    )
