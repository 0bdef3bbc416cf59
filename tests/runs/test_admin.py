"""The scenario and run admin: step inline validation, actions, the read-only run page."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.accounts.models import ProfileKind
from apps.accounts.services import profile_assign
from apps.runs.models import LogLine, Run, StepRun
from apps.runs.services import run_start
from apps.scenarios.models import Scenario
from tests.runs.admin_forms import action, messages_of, scenario_form

SCENARIOS = "/admin/scenarios/scenario/"
RUNS = "/admin/runs/run/"
SET_A = {"name": "define", "type": "set_variables", "params": {"variables": {"a": 1}}}


@pytest.fixture
def admin_as(client, cast):
    def login(role):
        client.force_login(cast[role])
        return client

    return login


def form_errors(response) -> dict:
    assert response.status_code == 200, response.status_code
    errors = dict(response.context["adminform"].form.errors)
    for formset in response.context["inline_admin_formsets"]:
        for form in formset.formset.forms:
            errors |= {f"steps.{key}": value for key, value in form.errors.items()}
    return errors


def test_add_scenario_with_steps(admin_as, project, cast):
    steps = [{"params": '{"variables": {"a": 1}}'}, {"type": "clean_run_logs",
                                                      "params": '{"keep_runs": 3}'}]  # fmt: skip
    response = admin_as("editor").post(f"{SCENARIOS}add/", scenario_form(project, steps=steps))
    assert response.status_code == 302, form_errors(response)
    scenario = Scenario.objects.get(name="Nightly")
    assert scenario.updated_by == cast["editor"] and scenario.run_as is None
    assert list(scenario.steps.values_list("type", "params")) == [
        ("set_variables", {"variables": {"a": 1}, "evaluate": False}),
        ("clean_run_logs", {"keep_runs": 3}),
    ]


@pytest.mark.parametrize(
    ("step", "field", "message"),
    [
        ({"type": "python"}, "steps.params", "code: This field is required."),
        ({"params": "[1]"}, "steps.params", "Step params must be a JSON object."),
        ({"type": "teleport"}, "steps.type", "Select a valid choice."),
        ({"run_condition": "expression"}, "steps.condition_expression", "Required when"),
        ({"condition_expression": "a >"}, "steps.condition_expression", "Syntax error"),
        ({"condition_outcomes": '["maybe"]'}, "steps.condition_outcomes", "A list of outcomes"),
    ],
)
def test_step_inline_errors_name_the_field(admin_as, project, step, field, message):
    params = {"params": '{"variables": {}}'} if "params" not in step else {}
    response = admin_as("superuser").post(
        f"{SCENARIOS}add/", scenario_form(project, steps=[{**params, **step}])
    )
    errors = form_errors(response)
    assert field in errors and message in errors[field][0]
    assert not Scenario.objects.exists()


def test_python_step_in_the_admin_needs_the_coder_profile(admin_as, project, cast):
    python = {"type": "python", "params": '{"code": "print(1)"}'}
    refused = admin_as("editor").post(f"{SCENARIOS}add/", scenario_form(project, steps=[python]))
    assert "Writing code needs the coder profile" in form_errors(refused)["steps.type"][0]
    assert not Scenario.objects.exists()
    profile_assign(user=cast["editor"], kind=ProfileKind.CODER)
    allowed = admin_as("editor").post(f"{SCENARIOS}add/", scenario_form(project, steps=[python]))
    assert allowed.status_code == 302
    assert Scenario.objects.get().steps.get().type == "python"


def test_script_in_the_admin_needs_the_coder_profile(admin_as, project):
    form = scenario_form(project, kind="python", script="print(1)")
    errors = form_errors(admin_as("owner").post(f"{SCENARIOS}add/", form))
    assert "coder profile" in errors["script"][0]
    assert not Scenario.objects.exists()


def test_admin_edit_by_an_editor_makes_the_scenario_run_as_them(admin_as, make_scenario, cast):
    scenario = make_scenario()  # runs as the owner
    form = scenario_form(scenario.project, description="edited")
    response = admin_as("editor").post(f"{SCENARIOS}{scenario.pk}/change/", form)
    assert response.status_code == 302, form_errors(response)
    scenario.refresh_from_db()
    assert (scenario.description, scenario.run_as, scenario.updated_by) == (
        "edited", None, cast["editor"],
    )  # fmt: skip


def test_changelist_shows_the_last_run(admin_as, make_scenario, no_dispatch):
    scenario = make_scenario()
    run_start(scenario=scenario)
    page = admin_as("reader").get(SCENARIOS).content.decode()
    assert "#1 queued" in page


def test_run_now_starts_a_run_then_reports_the_skip(admin_as, make_scenario, cast, no_dispatch):
    scenario = make_scenario()
    client = admin_as("operator")
    first = action(client, SCENARIOS, "run_now", scenario)
    assert messages_of(first) == ["SALES / Nightly: started run #1."]
    run = Run.objects.get()
    assert (run.trigger_kind, run.started_by) == ("manual", cast["operator"])
    second = action(client, SCENARIOS, "run_now", scenario)
    assert messages_of(second) == ["SALES / Nightly: skipped, a run is already active (run #1)."]
    assert Run.objects.count() == 1


def test_abort_active_runs_action(admin_as, make_scenario, no_dispatch):
    scenario = make_scenario()
    run = run_start(scenario=scenario).run
    response = action(admin_as("operator"), SCENARIOS, "abort_active_runs", scenario)
    assert messages_of(response) == ["SALES / Nightly: asked 1 active run(s) to abort."]
    run.refresh_from_db()
    assert run.status == "aborted"


def test_activate_and_deactivate(admin_as, make_scenario):
    scenario = make_scenario(active=False)
    action(admin_as("editor"), SCENARIOS, "activate", scenario)
    scenario.refresh_from_db()
    assert scenario.active
    action(admin_as("editor"), SCENARIOS, "deactivate", scenario)
    scenario.refresh_from_db()
    assert not scenario.active


def test_operator_cannot_switch_active(admin_as, make_scenario):
    scenario = make_scenario(active=False)
    page = admin_as("operator").get(SCENARIOS).content.decode()
    assert 'value="run_now"' in page and 'value="activate"' not in page
    action(admin_as("operator"), SCENARIOS, "activate", scenario)
    scenario.refresh_from_db()
    assert not scenario.active


def test_reader_sees_steps_read_only(admin_as, make_scenario):
    scenario = make_scenario(steps=[SET_A])
    page = admin_as("reader").get(f"{SCENARIOS}{scenario.pk}/change/").content.decode()
    assert "define" in page
    assert 'name="steps-0-name"' not in page and 'name="_save"' not in page
    editor_page = admin_as("editor").get(f"{SCENARIOS}{scenario.pk}/change/").content.decode()
    assert 'name="steps-0-name"' in editor_page


# --- runs ----------------------------------------------------------------------------------


def make_finished_run(scenario, *, lines=0) -> Run:
    run = Run.objects.create(scenario=scenario, project=scenario.project, number=1,
                             status="failed", finished_at=timezone.now())  # fmt: skip
    StepRun.objects.create(run=run, position=0, name="extract", type="python", status="failed",
                           error="boom")  # fmt: skip
    LogLine.objects.bulk_create(
        LogLine(run=run, seq=seq, ts=timezone.now(), message=f"line {seq:04d}")
        for seq in range(1, lines + 1)
    )
    return run


def test_run_page_is_read_only_with_step_runs_and_the_log_tail(admin_as, make_scenario):
    run = make_finished_run(make_scenario(), lines=250)
    LogLine.objects.filter(run=run, seq=250).update(message="<script>alert(1)</script>")
    page = admin_as("reader").get(f"{RUNS}{run.pk}/change/").content.decode()
    assert "extract" in page and "boom" in page
    assert "line 0051" in page and "line 0050" not in page  # the last 200 lines
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert 'name="_save"' not in page


def test_runs_cannot_be_added_or_changed(admin_as, make_scenario):
    run = make_finished_run(make_scenario())
    client = admin_as("superuser")
    assert client.get(f"{RUNS}add/").status_code == 403
    client.post(f"{RUNS}{run.pk}/change/", {"status": "success"})
    run.refresh_from_db()
    assert run.status == "failed"


@pytest.mark.parametrize(("role", "deleted"), [("editor", True), ("operator", False)])
def test_run_delete_is_for_editors(admin_as, make_scenario, role, deleted):
    run = make_finished_run(make_scenario())
    response = admin_as(role).post(f"{RUNS}{run.pk}/delete/", {"post": "yes"})
    assert response.status_code == (302 if deleted else 403)
    assert Run.objects.filter(pk=run.pk).exists() != deleted


def test_an_active_run_cannot_be_deleted(admin_as, make_scenario, no_dispatch):
    run = run_start(scenario=make_scenario()).run
    response = admin_as("owner").post(f"{RUNS}{run.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert Run.objects.filter(pk=run.pk).exists()


def test_run_changelist_filters_offer_only_visible_trigger_kinds(
    admin_as, make_scenario, other_project
):
    make_finished_run(make_scenario())
    secret = Scenario.objects.create(project=other_project, name="Payroll")
    Run.objects.create(scenario=secret, project=other_project, number=1, trigger_kind="x-secret")
    page = admin_as("reader").get(RUNS).content.decode()
    assert "SALES / Nightly #1" in page
    assert "x-secret" not in page and "Payroll" not in page


def test_abort_runs_action(admin_as, make_scenario, no_dispatch):
    run = run_start(scenario=make_scenario()).run
    response = action(admin_as("operator"), RUNS, "abort_runs", run)
    assert messages_of(response) == ["Asked 1 active run(s) to abort."]
    run.refresh_from_db()
    assert run.status == "aborted"
