"""The scenarios and steps API: validation naming the field, run-as, code rights, the schema."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.runs.models import Run
from apps.scenarios.models import Scenario, Step

SCENARIOS = "/api/v1/projects/SALES/scenarios/"
STEPS = "/api/v1/projects/SALES/steps/"


def test_create_scenario_runs_as_its_editor(cast, api):
    response = api(cast["editor"]).post(
        SCENARIOS,
        {"name": "Hourly", "tags": ["ops"], "variables": {"limit": 3}, "queue_policy": "queue_one"},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["run_as"] is None and body["effective_run_as"] == "bob"
    assert body["updated_by"] == "bob" and body["steps"] == [] and body["last_run"] is None
    scenario = Scenario.objects.get(pk=body["id"])
    assert (scenario.tags, scenario.variables) == (["ops"], {"limit": 3})
    assert scenario.effective_run_as() == cast["editor"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "Nightly"}, "name"),
        ({"name": "x", "variables": [1, 2]}, "variables"),
        ({"name": "x", "tags": "ops"}, "tags"),
        ({"name": "x", "tags": [{"a": 1}]}, "tags"),
        ({"name": "x", "max_parallel": 0}, "max_parallel"),
        ({"name": "x", "kind": "java"}, "kind"),
        ({"name": "x", "queue_policy": "whenever"}, "queue_policy"),
        ({"description": "no name"}, "name"),
    ],
)
def test_scenario_validation_names_the_field(cast, api, scenario, payload, field):
    response = api(cast["editor"]).post(SCENARIOS, payload)
    assert response.status_code == 400
    assert field in response.json()
    assert Scenario.objects.count() == 1


def test_only_a_superuser_may_set_someone_else_as_run_as(cast, api, scenario):
    url = f"{SCENARIOS}{scenario.pk}/"
    refused = api(cast["editor"]).patch(url, {"run_as": cast["owner"].pk})
    assert refused.status_code == 400
    assert "superuser" in refused.json()["run_as"][0]
    allowed = api(cast["superuser"]).patch(url, {"run_as": cast["operator"].pk})
    assert allowed.status_code == 200
    scenario.refresh_from_db()
    assert scenario.run_as == cast["operator"] and scenario.updated_by == cast["superuser"]


def test_an_edit_by_someone_else_makes_the_scenario_run_as_them(cast, api, scenario):
    response = api(cast["editor"]).patch(f"{SCENARIOS}{scenario.pk}/", {"description": "x"})
    assert response.status_code == 200
    assert response.json()["effective_run_as"] == "bob"
    scenario.refresh_from_db()
    assert scenario.run_as is None and scenario.updated_by == cast["editor"]


def test_a_script_needs_the_coder_profile(cast, api):
    payload = {"name": "Script", "kind": "python", "script": "print(1)"}
    refused = api(cast["editor"]).post(SCENARIOS, payload)
    assert refused.status_code == 403
    assert not Scenario.objects.filter(name="Script").exists()


def test_a_coder_writes_a_script_and_a_designer_may_not_change_it(cast, api, coder_editor):
    created = api(coder_editor).post(
        SCENARIOS, {"name": "Script", "kind": "python", "script": "print(1)"}
    )
    assert created.status_code == 201, created.content
    url = f"{SCENARIOS}{created.json()['id']}/"
    owner = api(cast["owner"])  # an admin of the project, but a designer
    assert owner.patch(url, {"script": "print(2)"}).status_code == 403
    assert owner.patch(url, {"description": "renamed, script untouched"}).status_code == 200
    assert Scenario.objects.get(name="Script").script == "print(1)"


def test_scenario_detail_has_steps_and_last_run(cast, api, scenario, no_dispatch):
    api(cast["operator"]).post(f"{SCENARIOS}{scenario.pk}/run/")
    body = api(cast["reader"]).get(f"{SCENARIOS}{scenario.pk}/").json()
    assert [step["name"] for step in body["steps"]] == ["define"]
    assert body["last_run"]["number"] == 1 and body["last_run"]["status"] == "queued"


def test_scenario_list_queries_do_not_grow_with_scenarios(cast, api, project, no_dispatch):
    def list_queries(count: int) -> int:
        for i in range(Scenario.objects.count(), count):
            scenario = Scenario.objects.create(project=project, name=f"S{i}")
            Step.objects.create(scenario=scenario, name="a", type="set_variables",
                                params={"variables": {}})  # fmt: skip
            api(cast["operator"]).post(f"{SCENARIOS}{scenario.pk}/run/")
        with CaptureQueriesContext(connection) as queries:
            assert len(api(cast["reader"]).get(SCENARIOS).json()["results"]) == count
        return len(queries)

    assert list_queries(2) == list_queries(6)


def test_run_action_starts_a_run_and_the_queue_policy_may_refuse(
    cast, api, scenario, no_dispatch, django_capture_on_commit_callbacks
):
    url = f"{SCENARIOS}{scenario.pk}/run/"
    with django_capture_on_commit_callbacks(execute=True):
        first = api(cast["operator"]).post(url, {"params": {"day": "2024-01-31"}})
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["number"], body["status"], body["trigger_kind"]) == (1, "queued", "api")
    run = Run.objects.get(pk=body["id"])
    assert run.trigger_params == {"day": "2024-01-31"} and run.started_by == cast["operator"]
    assert run.run_as == cast["owner"]  # the scenario's run-as user, not the caller
    second = api(cast["operator"]).post(url)
    assert second.status_code == 409
    assert second.json()["reason"] == "a run is already active"
    assert second.json()["active_run"] == run.pk
    assert no_dispatch == [run.pk]


def test_run_action_params_must_be_an_object(cast, api, scenario, no_dispatch):
    response = api(cast["operator"]).post(f"{SCENARIOS}{scenario.pk}/run/", {"params": [1]})
    assert response.status_code == 400
    assert "params" in response.json()
    assert not Run.objects.exists()


def test_a_scenario_with_an_active_run_cannot_be_deleted(cast, api, scenario, no_dispatch):
    api(cast["operator"]).post(f"{SCENARIOS}{scenario.pk}/run/")
    response = api(cast["editor"]).delete(f"{SCENARIOS}{scenario.pk}/")
    assert response.status_code == 409
    assert "abort them" in response.json()["detail"]
    assert Scenario.objects.filter(pk=scenario.pk).exists()


# --- steps ---------------------------------------------------------------------------------


def step(target, **fields) -> dict:
    return {"scenario": target.pk, "name": "tidy", "type": "clean_run_logs",
            "params": {"keep_runs": 5}, **fields}  # fmt: skip


def test_create_step_appends_it_and_stores_validated_params(cast, api, scenario):
    response = api(cast["editor"]).post(STEPS, step(scenario, type="run_scenario",
                                                    params={"scenario": "Other"}))  # fmt: skip
    assert response.status_code == 201, response.content
    created = Step.objects.get(pk=response.json()["id"])
    assert created.position == 1
    assert created.params == {"scenario": "Other", "wait": True, "params": {}}


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"type": "python", "params": {}}, {"params": ["code: This field is required."]}),
        ({"params": {}}, {"params": ["non_field_errors: Set keep_days, keep_runs or both."]}),
        ({"params": [1]}, {"params": ["Step params must be a JSON object."]}),
        ({"type": "teleport"}, {"type": ['"teleport" is not a valid choice.']}),
        ({"name": "define"}, {"name": ["The scenario already has a step named 'define'."]}),
        ({"name": "9 lives"}, "name"),
        ({"run_condition": "expression"}, "condition_expression"),
        (
            {"run_condition": "expression", "condition_expression": "rows >"},
            "condition_expression",
        ),  # fmt: skip
        ({"condition_outcomes": ["success", "bogus"]}, "condition_outcomes"),
        ({"run_condition": "outcome_in", "condition_outcomes": []}, "condition_outcomes"),
        ({"retry_backoff": 0.5}, "retry_backoff"),
        ({"scenario": 999_999}, "scenario"),
    ],
)
def test_step_validation_names_the_field(cast, api, scenario, fields, errors):
    response = api(cast["editor"]).post(STEPS, step(scenario, **fields))
    assert response.status_code == 400
    if isinstance(errors, dict):
        assert response.json() == errors
    else:
        assert errors in response.json()
    assert scenario.steps.count() == 1


def test_step_of_another_projects_scenario_is_refused(cast, api, other_project):
    hr = Scenario.objects.create(project=other_project, name="Payroll")
    response = api(cast["superuser"]).post(STEPS, step(hr))
    assert response.status_code == 400
    assert "scenario" in response.json()
    assert not hr.steps.exists()


def test_changing_the_type_revalidates_the_params(cast, api, scenario):
    define = scenario.steps.get()
    response = api(cast["editor"]).patch(f"{STEPS}{define.pk}/", {"type": "python"})
    assert response.status_code == 400
    assert response.json() == {"params": ["code: This field is required."]}


def test_code_steps_need_the_coder_profile(cast, api, scenario):
    response = api(cast["editor"]).post(STEPS, step(scenario, type="python",
                                                    params={"code": "print(1)"}))  # fmt: skip
    assert response.status_code == 403
    assert scenario.steps.count() == 1


def test_a_coder_writes_code_steps_and_a_designer_may_not_edit_them(cast, api, scenario,
                                                                    coder_editor):  # fmt: skip
    created = api(coder_editor).post(STEPS, step(scenario, type="python",
                                                 params={"code": "print(1)"}))  # fmt: skip
    assert created.status_code == 201, created.content
    url = f"{STEPS}{created.json()['id']}/"
    assert api(cast["owner"]).patch(url, {"enabled": False}).status_code == 403
    assert Step.objects.get(pk=created.json()["id"]).enabled is True


def test_a_step_edit_makes_the_scenario_run_as_the_editor(cast, api, scenario):
    response = api(cast["editor"]).post(STEPS, step(scenario))
    assert response.status_code == 201
    scenario.refresh_from_db()
    assert scenario.run_as is None and scenario.updated_by == cast["editor"]


def test_steps_list_filters_by_scenario(cast, api, scenario, project):
    other = Scenario.objects.create(project=project, name="Other")
    Step.objects.create(scenario=other, name="x", type="set_variables", params={"variables": {}})
    names = [s["name"] for s in api(cast["reader"]).get(STEPS, {"scenario": other.pk}).json()[
        "results"]]  # fmt: skip
    assert names == ["x"]
    assert api(cast["reader"]).get(STEPS, {"scenario": "x"}).status_code == 400


def test_delete_step(cast, api, scenario):
    define = scenario.steps.get()
    assert api(cast["editor"]).delete(f"{STEPS}{define.pk}/").status_code == 204
    assert not scenario.steps.exists()


# --- step types and schema -----------------------------------------------------------------


def test_step_types_list_params_and_code(cast, api):
    types = {t["key"]: t for t in api(cast["reader"]).get("/api/v1/step-types/").json()}
    assert types["python"]["needs_code"] and not types["set_variables"]["needs_code"]
    assert types["python"]["params"] == [
        {"name": "code", "type": "string", "required": True, "default": None,
         "help_text": "Runs in the sandbox."}
    ]  # fmt: skip
    wait = next(p for p in types["run_scenario"]["params"] if p["name"] == "wait")
    assert (wait["type"], wait["required"], wait["default"]) == ("boolean", False, True)


def test_openapi_schema_is_valid_and_shows_step_params(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = out.read_text()
    assert "PythonStepParams:" in schema and "StepParams:" in schema
    assert "/api/v1/projects/{project_key}/runs/{id}/logs/:" in schema
