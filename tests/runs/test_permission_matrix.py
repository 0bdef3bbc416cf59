"""The permission matrix for scenarios, steps and runs: every role × API and admin.

Non-members get 404, members without the right 403. Readers see scenarios, runs and logs;
operators also run and abort; editors also write scenarios and delete run history.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.runs.models import LogLine, Run
from apps.runs.services import run_start
from apps.scenarios.models import Scenario, Step
from tests.runs.admin_forms import action, scenario_form

ROLES = ["superuser", "owner", "editor", "operator", "reader", "outsider"]
API = "/api/v1/projects/SALES"


def expect(superuser, owner, editor, operator, reader, outsider=404) -> dict[str, int]:
    return dict(zip(ROLES, [superuser, owner, editor, operator, reader, outsider], strict=True))


READ = expect(200, 200, 200, 200, 200)
EDIT = expect(200, 200, 200, 403, 403)
CREATED = expect(201, 201, 201, 403, 403)
DELETED = expect(204, 204, 204, 403, 403)
STARTED = expect(201, 201, 201, 201, 403)
ABORTED = expect(202, 202, 202, 202, 403)


@pytest.fixture
def scenario(make_scenario):
    return make_scenario(steps=[{"name": "define", "type": "set_variables",
                                 "params": {"variables": {"a": 1}}}])  # fmt: skip


@pytest.fixture
def run(scenario, no_dispatch):
    started = run_start(scenario=scenario).run
    LogLine.objects.create(run=started, seq=1, ts=timezone.now(), message="hello")
    return started


# --- API -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_api_scenario_list(cast, api, scenario, role):
    response = api(cast[role]).get(f"{API}/scenarios/")
    assert response.status_code == READ[role]
    if response.status_code == 200:
        assert [s["name"] for s in response.json()["results"]] == ["Nightly"]


@pytest.mark.parametrize("role", ROLES)
def test_api_scenario_detail(cast, api, scenario, role):
    response = api(cast[role]).get(f"{API}/scenarios/{scenario.pk}/")
    assert response.status_code == READ[role]
    assert ("Nightly" in response.content.decode()) == (READ[role] == 200)


@pytest.mark.parametrize("role", ROLES)
def test_api_scenario_create(cast, api, project, role):
    response = api(cast[role]).post(f"{API}/scenarios/", {"name": "Hourly"})
    assert response.status_code == CREATED[role]
    assert Scenario.objects.filter(name="Hourly").exists() == (CREATED[role] == 201)


@pytest.mark.parametrize("role", ROLES)
def test_api_scenario_update(cast, api, scenario, role):
    response = api(cast[role]).patch(f"{API}/scenarios/{scenario.pk}/", {"description": "x"})
    assert response.status_code == EDIT[role]
    scenario.refresh_from_db()
    assert (scenario.description == "x") == (EDIT[role] == 200)


@pytest.mark.parametrize("role", ROLES)
def test_api_scenario_delete(cast, api, scenario, role):
    response = api(cast[role]).delete(f"{API}/scenarios/{scenario.pk}/")
    assert response.status_code == DELETED[role]
    assert Scenario.objects.filter(pk=scenario.pk).exists() == (DELETED[role] != 204)


@pytest.mark.parametrize("role", ROLES)
def test_api_step_list(cast, api, scenario, role):
    response = api(cast[role]).get(f"{API}/steps/")
    assert response.status_code == READ[role]
    if response.status_code == 200:
        assert [s["name"] for s in response.json()["results"]] == ["define"]


@pytest.mark.parametrize("role", ROLES)
def test_api_step_create(cast, api, scenario, role):
    step = {"scenario": scenario.pk, "name": "more", "type": "set_variables",
            "params": {"variables": {}}}  # fmt: skip
    response = api(cast[role]).post(f"{API}/steps/", step)
    assert response.status_code == CREATED[role]
    assert Step.objects.filter(name="more").exists() == (CREATED[role] == 201)


@pytest.mark.parametrize("role", ROLES)
def test_api_step_update(cast, api, scenario, role):
    step = scenario.steps.get()
    response = api(cast[role]).patch(f"{API}/steps/{step.pk}/", {"enabled": False})
    assert response.status_code == EDIT[role]
    step.refresh_from_db()
    assert step.enabled == (EDIT[role] != 200)


@pytest.mark.parametrize("role", ROLES)
def test_api_run_action(cast, api, scenario, no_dispatch, role):
    response = api(cast[role]).post(f"{API}/scenarios/{scenario.pk}/run/")
    assert response.status_code == STARTED[role]
    assert Run.objects.filter(scenario=scenario).count() == (STARTED[role] == 201)


@pytest.mark.parametrize("role", ROLES)
def test_api_abort_action(cast, api, run, role):
    response = api(cast[role]).post(f"{API}/runs/{run.pk}/abort/")
    assert response.status_code == ABORTED[role]
    run.refresh_from_db()
    assert (run.status == "aborted") == (ABORTED[role] == 202)


@pytest.mark.parametrize("role", ROLES)
def test_api_run_list(cast, api, run, role):
    response = api(cast[role]).get(f"{API}/runs/")
    assert response.status_code == READ[role]
    if response.status_code == 200:
        assert [r["id"] for r in response.json()["results"]] == [run.pk]


@pytest.mark.parametrize("role", ROLES)
def test_api_run_detail(cast, api, run, role):
    response = api(cast[role]).get(f"{API}/runs/{run.pk}/")
    assert response.status_code == READ[role]
    assert ("step_runs" in response.json()) == (READ[role] == 200)


@pytest.mark.parametrize("role", ROLES)
def test_api_run_logs(cast, api, run, role):
    response = api(cast[role]).get(f"{API}/runs/{run.pk}/logs/")
    assert response.status_code == READ[role]
    assert ("hello" in response.content.decode()) == (READ[role] == 200)


# --- admin ---------------------------------------------------------------------------------


@pytest.fixture
def admin_as(client, cast):
    def login(role):
        client.force_login(cast[role])
        return client

    return login


@pytest.mark.parametrize("role", ROLES)
def test_admin_scenario_changelist(admin_as, scenario, role):
    page = admin_as(role).get("/admin/scenarios/scenario/").content.decode()
    assert ("Nightly" in page) == (role != "outsider")


@pytest.mark.parametrize("role", ROLES)
def test_admin_scenario_change_page(admin_as, scenario, role):
    response = admin_as(role).get(f"/admin/scenarios/scenario/{scenario.pk}/change/")
    assert response.status_code == READ[role]
    if response.status_code == 200:
        assert ('name="_save"' in response.content.decode()) == (EDIT[role] == 200)


@pytest.mark.parametrize("role", ROLES)
def test_admin_scenario_change_post(admin_as, scenario, role):
    step = scenario.steps.get()
    form = scenario_form(scenario.project, description="edited", initial=1, steps=[{
        "id": step.pk, "scenario": scenario.pk, "name": "define",
        "params": '{"variables": {"a": 1}}',
    }])  # fmt: skip
    response = admin_as(role).post(f"/admin/scenarios/scenario/{scenario.pk}/change/", form)
    assert response.status_code == {**EDIT, "superuser": 302, "owner": 302, "editor": 302}[role]
    scenario.refresh_from_db()
    assert (scenario.description == "edited") == (EDIT[role] == 200)


@pytest.mark.parametrize("role", ROLES)
def test_admin_run_now_action(admin_as, scenario, no_dispatch, role):
    action(admin_as(role), "/admin/scenarios/scenario/", "run_now", scenario)
    assert Run.objects.filter(scenario=scenario).count() == (STARTED[role] == 201)


@pytest.mark.parametrize("role", ROLES)
def test_admin_run_changelist(admin_as, run, role):
    page = admin_as(role).get("/admin/runs/run/").content.decode()
    assert ("SALES / Nightly #1" in page) == (role != "outsider")


@pytest.mark.parametrize("role", ROLES)
def test_admin_run_change_page(admin_as, run, role):
    response = admin_as(role).get(f"/admin/runs/run/{run.pk}/change/")
    assert response.status_code == READ[role]
    assert ("hello" in response.content.decode()) == (READ[role] == 200)


@pytest.mark.parametrize("role", ROLES)
def test_admin_run_delete(admin_as, run, role):
    Run.objects.filter(pk=run.pk).update(status="success", lane=None)
    response = admin_as(role).post(f"/admin/runs/run/{run.pk}/delete/", {"post": "yes"})
    expected = {**EDIT, "superuser": 302, "owner": 302, "editor": 302}[role]
    assert response.status_code == expected
    assert Run.objects.filter(pk=run.pk).exists() == (expected != 302)
