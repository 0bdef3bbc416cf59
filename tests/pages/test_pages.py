"""The live dashboard pages through Django's test client: who sees what, who may press
which button (404 for outsiders, 403 without the right), and what the actions do."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.runs.models import Run, RunStatus
from apps.scenarios.models import Scenario
from apps.triggers.models import Trigger

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]


def urls(scenario: Scenario, run: Run) -> dict[str, str]:
    key = scenario.project.key
    return {
        "dashboard": reverse("project-dashboard", args=[key]),
        "scenario": reverse("scenario", args=[key, scenario.pk]),
        "run": reverse("run", args=[key, run.pk]),
        "panels": reverse("run-panels", args=[key, run.pk]),
    }


def actions(scenario: Scenario, run: Run) -> dict[str, str]:
    key = scenario.project.key
    return {
        "run": reverse("scenario-run", args=[key, scenario.pk]),
        "abort": reverse("run-abort", args=[key, run.pk]),
        "active": reverse("scenario-active", args=[key, scenario.pk]),
        "trigger": reverse("trigger-enabled", args=[key, scenario.pk, scenario.trigger.pk]),
    }


def test_outsider_gets_404_on_every_page_and_action(stage, cast, client_for):
    scenario = stage()
    client = client_for(cast["outsider"])
    for name, url in urls(scenario, scenario.active_run).items():
        assert client.get(url).status_code == 404, name
    for name, url in actions(scenario, scenario.active_run).items():
        assert client.post(url).status_code == 404, name
    assert Run.objects.count() == 4
    assert client.get(reverse("monitor")).content.count(b"data-run=") == 0


def test_anonymous_users_are_sent_to_log_in(stage, client):
    scenario = stage()
    response = client.get(urls(scenario, scenario.active_run)["run"])
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_reader_sees_everything_but_no_buttons_and_gets_403_on_actions(stage, cast, client_for):
    scenario = stage()
    client = client_for(cast["reader"])
    page = client.get(urls(scenario, scenario.active_run)["scenario"]).content.decode()
    assert "daily" in page and "on failure" in page and "If some prior step failed" in page
    assert 'id="run-button"' not in page and "Abort #" not in page
    assert "Deactivate" not in page and ">Disable<" not in page
    run_page = client.get(urls(scenario, scenario.active_run)["run"]).content.decode()
    assert 'id="live-log"' in run_page and 'id="abort-form"' not in run_page
    for name, url in actions(scenario, scenario.active_run).items():
        assert client.post(url).status_code == 403, name
    scenario.refresh_from_db()
    assert scenario.active and Run.objects.count() == 4


def test_operator_runs_with_params_and_aborts(stage, cast, client_for):
    scenario = stage("Hourly")
    scenario.active_run.delete()
    client = client_for(cast["operator"])
    page = client.get(urls(scenario, scenario.finished[0])["scenario"]).content.decode()
    assert 'id="run-button"' in page and "Deactivate" not in page  # operators run, not edit

    response = client.post(actions(scenario, scenario.finished[0])["run"], {"params": '{"day": 3}'})
    run = Run.objects.get(scenario=scenario, status=RunStatus.QUEUED)
    assert response["Location"] == reverse("run", args=["SALES", run.pk])
    assert (run.trigger_kind, run.started_by, run.trigger_params) == (
        "manual", cast["operator"], {"day": 3}
    )  # fmt: skip
    page = client.get(response["Location"]).content.decode()
    assert 'id="abort-form"' in page

    skipped = client.post(actions(scenario, run)["run"], follow=True).content.decode()
    assert "Not started: a run is already active" in skipped
    client.post(actions(scenario, run)["abort"])
    run.refresh_from_db()
    assert run.status == RunStatus.ABORTED and run.abort_requested_at is None  # ended at once


def test_run_parameters_must_be_a_json_object(stage, cast, client_for):
    scenario = stage()
    scenario.active_run.delete()
    client = client_for(cast["operator"])
    for bad in ["{nope", "[1, 2]"]:
        page = client.post(actions(scenario, scenario.finished[0])["run"], {"params": bad},
                           follow=True).content.decode()  # fmt: skip
        assert "Parameters:" in page
    assert not Run.objects.filter(status=RunStatus.QUEUED).exists()


def test_editor_switches_auto_triggers_and_a_trigger(stage, cast, client_for):
    scenario = stage()
    client = client_for(cast["editor"])
    act = actions(scenario, scenario.active_run)
    client.post(act["active"], {"active": "off"})
    scenario.refresh_from_db()
    assert not scenario.active and scenario.run_as == cast["owner"]  # not an edit of the scenario
    client.post(act["trigger"], {"enabled": "off"})
    trigger = Trigger.objects.get(pk=scenario.trigger.pk)
    assert not trigger.enabled and trigger.next_fire_at is None  # beat's side follows
    client.post(act["trigger"], {"enabled": "on"})
    assert Trigger.objects.get(pk=trigger.pk).next_fire_at is not None
    page = client.get(urls(scenario, scenario.active_run)["scenario"]).content.decode()
    assert "Activate" in page and "auto-triggers off" in page


def test_dashboard_shows_outcomes_next_fire_running_and_strip(stage, cast, client_for):
    scenario = stage()
    page = client_for(cast["reader"]).get(urls(scenario, scenario.active_run)["dashboard"])
    html = page.content.decode()
    assert f"#{scenario.finished[-1].number}" in html and 'data-status="warning"' in html
    assert 'data-status="queued"' in html  # running now: the active (queued) run
    assert scenario.trigger.next_fire_at.strftime("%Y-%m-%d %H:%M") in html
    strip = [cell for cell in page.context["scenarios"][0].strip if cell["status"]]
    assert [cell["status"] for cell in strip] == ["success", "failed", "warning"]
    assert len(page.context["scenarios"][0].strip) == 30


def test_monitoring_lists_visible_runs_and_filters(stage, cast, client_for, other_project):
    scenario = stage()
    hidden = Scenario.objects.create(project=other_project, name="Payroll")
    Run.objects.create(scenario=hidden, project=other_project, number=1, status="failed")
    client = client_for(cast["reader"])
    page = client.get(reverse("monitor"))
    assert len(page.context["recent"]) == 4 and len(page.context["queued"]) == 1
    assert [run.status for run in page.context["failures"]] == ["failed"]
    assert b"Payroll" not in page.content
    filtered = client.get(reverse("monitor"), {"status": "failed", "scenario": scenario.pk})
    assert [run.pk for run in filtered.context["recent"]] == [scenario.finished[1].pk]
    sections = client.get(reverse("monitor"), {"sections": 1, "status": "bogus"})
    assert b"<form" not in sections.content and len(sections.context["recent"]) == 4
