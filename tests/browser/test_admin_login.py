"""Logging into the admin with a real browser, as a superuser and as a project reader."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from apps.accounts.models import ProfileKind
from apps.projects.models import Membership, Role
from tests.conftest import PASSWORD, make_user

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "admin.png"

ADD_PROJECT = "/admin/projects/project/add/"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]


def _log_in(page: Page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(f"{live_server.url}/admin/")
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()


def test_superuser_logs_in_and_sees_projects(page: Page, live_server, project):
    get_user_model().objects.create_superuser("root", password=PASSWORD)
    _log_in(page, live_server, "root")
    projects = page.locator('a[href="/admin/projects/project/"]', has_text="Projects")
    expect(projects).to_be_visible()
    expect(page.locator(f'a.addlink[href="{ADD_PROJECT}"]')).to_be_visible()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_reader_sees_their_project_and_cannot_add(page: Page, live_server, project, other_project):
    # A reader profile: a designer may create projects whatever their role in this one.
    reader = make_user("rita", profile=ProfileKind.READER, is_staff=True)
    Membership.objects.create(project=project, user=reader, role=Role.READER)
    _log_in(page, live_server, "rita")

    page.click('a[href="/admin/projects/project/"]')
    expect(page.get_by_role("heading", name="Select project to view")).to_be_visible()
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(project.key)
    expect(page.locator("#result_list")).not_to_contain_text(other_project.key)
    # Neither the "Add project" button nor the sidebar's "Add" beside Projects.
    expect(page.locator(f'a[href="{ADD_PROJECT}"]')).to_have_count(0)
    assert page.goto(f"{live_server.url}{ADD_PROJECT}").status == 403
