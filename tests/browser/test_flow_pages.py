"""A dashboard draws its cached charts, and an exported flow document opens in the browser."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from apps.dashboards.models import Chart, Dashboard
from apps.dashboards.services import chart_refresh
from apps.flow import build as engine
from apps.flow.documentation import flow_docs_export
from tests.conftest import PASSWORD
from tests.flow.conftest import files_connection, orders_flow, pg_connection, recipe_run  # noqa: F401
from tests.flow.test_build import fresh

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "dashboard.png"
pytestmark = [pytest.mark.browser, pytest.mark.timeout(90), pytest.mark.django_db(transaction=True)]


def _log_in(page: Page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{live_server.url}/")


def test_dashboard_and_flow_documentation_in_a_browser(
    page: Page, live_server, project, cast, orders_flow, recipe_run
):
    engine.build([fresh(orders_flow["pg"])], "missing", recipe_run[0])
    chart = Chart.objects.create(
        project=project,
        name="Revenue by day",
        dataset=fresh(orders_flow["clean"]),
        group_by="day",
        aggregate="sum",
        value="amount",
    )
    chart_refresh(chart)
    dashboard = Dashboard.objects.create(project=project, name="Sales")
    dashboard.charts.add(chart)
    _log_in(page, live_server, cast["reader"].username)

    page.goto(f"{live_server.url}/projects/{project.key}/dashboards/{dashboard.pk}/")
    canvas = page.locator(f'canvas[data-chart="chart-data-{chart.pk}"]')
    expect(canvas).to_have_attribute("data-drawn", "true")
    assert canvas.bounding_box()["height"] > 50
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    name = flow_docs_export(project)[0].name
    page.goto(f"{live_server.url}/projects/{project.key}/exports/")
    page.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name="Lineage")).to_be_visible()
    expect(page.locator("svg text", has_text="orders_by_day_pg")).to_be_visible()
