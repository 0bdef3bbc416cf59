"""The triggers admin: inline on the scenario and on their own, validated by the kind's schema
and its gate (license, profile), saved through trigger_save; Test now / Enable / Disable; the
latest evaluations."""

from __future__ import annotations

import json

import pytest

from apps.accounts.models import InstalledLicense, ProfileKind
from apps.accounts.services import profile_assign
from apps.runs.models import Run
from apps.triggers.models import Trigger, TriggerEvaluation
from tests.runs.admin_forms import action, messages_of, scenario_form

pytestmark = pytest.mark.timeout(60)

SCENARIOS = "/admin/scenarios/scenario/"
TRIGGERS = "/admin/triggers/trigger/"
DAILY = {"schedule": "daily", "time": "03:00"}


@pytest.fixture
def admin_as(client, cast):
    def login(role):
        client.force_login(cast[role])
        return client

    return login


@pytest.fixture
def trigger(make_scenario, make_trigger):
    return make_trigger(make_scenario(), "time", DAILY, name="nightly")


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def form_errors(response) -> dict:
    assert response.status_code == 200, response.status_code
    errors = dict(response.context["adminform"].form.errors)
    for formset in response.context["inline_admin_formsets"]:
        prefix = formset.formset.prefix
        for form in formset.formset.forms:
            errors |= {f"{prefix}.{key}": value for key, value in form.errors.items()}
    return errors


def trigger_fields(**fields) -> dict:
    values = {"name": "nightly", "kind": "time", "enabled": "on", "params": DAILY,
              "check_interval_seconds": 60, "grace_seconds": 0, "catch_up": "skip",
              **fields}  # fmt: skip
    if not isinstance(values["params"], str):
        values["params"] = json.dumps(values["params"])
    return values


def with_triggers(project, *triggers: dict, **fields) -> dict:
    """The scenario add form with ``triggers`` inline (all new)."""
    form = scenario_form(project, **fields) | {"triggers-TOTAL_FORMS": len(triggers)}
    for i, values in enumerate(triggers):
        form |= {f"triggers-{i}-{key}": value for key, value in trigger_fields(**values).items()}
    return form


def trigger_form(trigger: Trigger, **fields) -> dict:
    """TriggerAdmin's change form as the browser posts it."""
    form = {"scenario": trigger.scenario_id, "name": trigger.name, "kind": trigger.kind,
            "params": trigger.params, "check_interval_seconds": trigger.check_interval_seconds,
            "grace_seconds": trigger.grace_seconds, "catch_up": trigger.catch_up,
            "evaluations-TOTAL_FORMS": 0, "evaluations-INITIAL_FORMS": 0,
            "evaluations-MIN_NUM_FORMS": 0, "evaluations-MAX_NUM_FORMS": 1000}  # fmt: skip
    form |= {"enabled": "on"} if trigger.enabled else {}
    form |= fields
    if not isinstance(form["params"], str):
        form["params"] = json.dumps(form["params"])
    return {key: value for key, value in form.items() if value is not None}


# --- inline on the scenario ----------------------------------------------------------------


def test_add_a_scenario_with_a_trigger(admin_as, project):
    weekly = {"schedule": "weekly", "days": ["mon", "fri"], "time": "07:30", "timezone": "UTC"}
    response = admin_as("editor").post(
        f"{SCENARIOS}add/", with_triggers(project, {"params": weekly})
    )
    assert response.status_code == 302, form_errors(response)
    trigger = Trigger.objects.get()
    assert trigger.scenario.name == "Nightly" and trigger.params["days"] == ["mon", "fri"]
    assert (trigger.crontab.day_of_week, trigger.crontab.hour) == ("1,5", "7")  # beat's row
    assert trigger.next_fire_at is not None


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"params": {"schedule": "weekly", "time": "07:30"}}, "params", "days"),
        ({"params": {**DAILY, "timezone": "Mars/Olympus"}}, "params", "Unknown time zone"),
        ({"params": "[1]"}, "params", "must be an object"),
        ({"kind": "carrier_pigeon"}, "kind", "Select a valid choice"),
        ({"check_interval_seconds": 0}, "check_interval_seconds", "greater than or equal to 1"),
    ],
)
def test_inline_errors_name_the_field(admin_as, project, values, field, message):
    response = admin_as("editor").post(f"{SCENARIOS}add/", with_triggers(project, values))
    assert message in " ".join(form_errors(response)[f"triggers.{field}"])
    assert not Trigger.objects.exists()


def test_a_gated_kind_is_refused_on_kind_with_the_reason(admin_as, project, edition, pg_connection):
    sql = {"kind": "sql_change", "params": {"connection": "warehouse", "sql": "SELECT 1"}}
    refused = admin_as("editor").post(f"{SCENARIOS}add/", with_triggers(project, sql))
    assert "Team edition" in form_errors(refused)["triggers.kind"][0]
    edition("team")
    response = admin_as("editor").post(f"{SCENARIOS}add/", with_triggers(project, sql))
    assert response.status_code == 302, form_errors(response)
    assert Trigger.objects.get().next_check_at is not None


def test_unavailable_kinds_are_shown_disabled_with_the_reason(admin_as, trigger):
    text = page(admin_as("editor").get(f"{SCENARIOS}{trigger.scenario_id}/change/"))
    assert 'value="sql_change" disabled' in text
    assert "SQL query change — unavailable: Needs the Team edition" in text
    assert 'value="time" selected' in text


def test_the_scenario_page_shows_next_fire_read_only_to_readers(admin_as, trigger):
    text = page(admin_as("reader").get(f"{SCENARIOS}{trigger.scenario_id}/change/"))
    assert "nightly" in text and "Next fire at" in text
    assert 'name="triggers-0-name"' not in text


def test_editing_a_scenario_keeps_a_suspended_trigger(
    admin_as, make_scenario, make_trigger, edition, pg_connection
):
    edition("team")
    scenario = make_scenario()
    make_trigger(scenario, "sql_change", {"connection": "warehouse", "sql": "SELECT 1"})
    InstalledLicense.objects.all().delete()  # the unchanged trigger must not block the save
    trigger = Trigger.objects.get()
    form = scenario_form(scenario.project, description="edited") | {
        "triggers-TOTAL_FORMS": 1,
        "triggers-INITIAL_FORMS": 1,
        "triggers-0-id": trigger.pk,
        "triggers-0-scenario": scenario.pk,
        "initial-triggers-0-params": json.dumps(trigger.params),  # as the page renders it
    }
    unchanged = trigger_fields(name=trigger.name, kind=trigger.kind, params=trigger.params)
    form |= {f"triggers-0-{key}": value for key, value in unchanged.items()}
    response = admin_as("editor").post(f"{SCENARIOS}{scenario.pk}/change/", form)
    assert response.status_code == 302, form_errors(response)
    scenario.refresh_from_db()
    assert scenario.description == "edited" and Trigger.objects.filter(pk=trigger.pk).exists()


# --- the trigger admin ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "status", "editable"),
    [("superuser", 200, True), ("owner", 200, True), ("editor", 200, True),
     ("operator", 200, False), ("reader", 200, False), ("outsider", 404, False)],
)  # fmt: skip
def test_trigger_change_page_by_role(admin_as, trigger, role, status, editable):
    response = admin_as(role).get(f"{TRIGGERS}{trigger.pk}/change/")
    assert response.status_code == status
    if status == 200:
        text = page(response)
        assert ('name="_save"' in text) == editable
        assert "crontab 0 3 * * * (UTC)" in text  # beat's schedule row


def test_an_edit_is_saved_through_the_service(admin_as, trigger):
    form = trigger_form(trigger, params={"schedule": "hourly", "minute": 7})
    response = admin_as("editor").post(f"{TRIGGERS}{trigger.pk}/change/", form)
    assert response.status_code == 302, form_errors(response)
    trigger.refresh_from_db()
    assert trigger.crontab.hour == "*" and trigger.next_fire_at.minute == 7


def test_custom_python_needs_the_coder_profile(admin_as, trigger, edition, cast):
    edition("enterprise")
    form = trigger_form(trigger, kind="custom_python", params={"code": "pass"})
    refused = admin_as("editor").post(f"{TRIGGERS}{trigger.pk}/change/", form)
    assert "coder profile" in form_errors(refused)["kind"][0]
    profile_assign(user=cast["editor"], kind=ProfileKind.CODER)
    response = admin_as("editor").post(f"{TRIGGERS}{trigger.pk}/change/", form)
    assert response.status_code == 302, form_errors(response)
    trigger.refresh_from_db()
    assert trigger.kind == "custom_python" and trigger.next_fire_at is None


def test_scenarios_of_other_projects_are_not_offered(admin_as, trigger, other_project):
    foreign = other_project.scenarios.create(name="Elsewhere")
    form = trigger_form(trigger, scenario=foreign.pk)
    response = admin_as("editor").post(f"{TRIGGERS}{trigger.pk}/change/", form)
    assert "Select a valid choice" in form_errors(response)["scenario"][0]


def test_disable_and_enable_keep_the_next_fire_in_step(admin_as, trigger):
    response = action(admin_as("editor"), TRIGGERS, "disable", trigger)
    assert "1 trigger(s) disabled." in messages_of(response)
    trigger.refresh_from_db()
    assert not trigger.enabled and trigger.next_fire_at is None
    action(admin_as("editor"), TRIGGERS, "enable", trigger)
    trigger.refresh_from_db()
    assert trigger.enabled and trigger.next_fire_at is not None


def test_operators_test_but_do_not_disable(admin_as, trigger, no_dispatch):
    client = admin_as("operator")
    assert 'value="disable"' not in page(client.get(TRIGGERS))
    action(client, TRIGGERS, "disable", trigger)
    trigger.refresh_from_db()
    assert trigger.enabled
    response = action(client, TRIGGERS, "test_now", trigger)
    [message] = messages_of(response)
    assert message.startswith("nightly: Unchanged — Fires on its schedule; next slot ")
    assert not Run.objects.exists()
    assert 'value="test_now"' not in page(admin_as("reader").get(TRIGGERS))


def test_the_latest_evaluations_are_shown_read_only(admin_as, trigger):
    TriggerEvaluation.objects.bulk_create(
        TriggerEvaluation(trigger=trigger, result="unchanged", message=f"check {n:02d}")
        for n in range(25)
    )
    text = page(admin_as("reader").get(f"{TRIGGERS}{trigger.pk}/change/"))
    assert "check 24" in text and "check 05" in text and "check 04" not in text
    assert 'name="evaluations-0-message"' not in text
