"""The triggers API: every role across the resource, Test now and the evaluations; errors
naming the field; license and profile gates; the kinds catalogue with why a kind is out."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from apps.accounts.models import InstalledLicense, ProfileKind
from apps.accounts.services import profile_assign
from apps.flow.models import Dataset
from apps.runs.models import Run
from apps.triggers.models import Trigger, TriggerEvaluation, TriggerFire
from apps.triggers.services import trigger_evaluate

pytestmark = pytest.mark.timeout(60)

ROLES = ["superuser", "owner", "editor", "operator", "reader", "outsider"]
API = "/api/v1/projects/SALES/triggers/"
DAILY = {"schedule": "daily", "time": "03:00"}


def expect(superuser, owner, editor, operator, reader, outsider=404) -> dict[str, int]:
    return dict(zip(ROLES, [superuser, owner, editor, operator, reader, outsider], strict=True))


READ = expect(200, 200, 200, 200, 200)
EDIT = expect(200, 200, 200, 403, 403)
CREATED = expect(201, 201, 201, 403, 403)
DELETED = expect(204, 204, 204, 403, 403)
TESTED = expect(200, 200, 200, 200, 403)


@pytest.fixture
def scenario(make_scenario):
    return make_scenario()


@pytest.fixture
def trigger(scenario, make_trigger):
    return make_trigger(scenario, "time", DAILY, name="nightly")


def body(scenario, **fields) -> dict:
    return {"scenario": scenario.pk, "name": "morning", "kind": "time", "params": DAILY, **fields}


# --- the permission matrix -----------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_list(cast, api, trigger, role):
    response = api(cast[role]).get(API)
    assert response.status_code == READ[role]
    if response.status_code == 200:
        assert [t["name"] for t in response.json()["results"]] == ["nightly"]


@pytest.mark.parametrize("role", ROLES)
def test_detail(cast, api, trigger, role):
    response = api(cast[role]).get(f"{API}{trigger.pk}/")
    assert response.status_code == READ[role]
    assert ("nightly" in response.content.decode()) == (READ[role] == 200)


@pytest.mark.parametrize("role", ROLES)
def test_create(cast, api, scenario, role):
    response = api(cast[role]).post(API, body(scenario))
    assert response.status_code == CREATED[role]
    assert Trigger.objects.filter(name="morning").exists() == (CREATED[role] == 201)


@pytest.mark.parametrize("role", ROLES)
def test_update(cast, api, trigger, role):
    response = api(cast[role]).patch(f"{API}{trigger.pk}/", {"params": {"schedule": "hourly"}})
    assert response.status_code == EDIT[role]
    trigger.refresh_from_db()
    assert (trigger.params["schedule"] == "hourly") == (EDIT[role] == 200)


@pytest.mark.parametrize("role", ROLES)
def test_delete(cast, api, trigger, role):
    response = api(cast[role]).delete(f"{API}{trigger.pk}/")
    assert response.status_code == DELETED[role]
    assert Trigger.objects.filter(pk=trigger.pk).exists() == (DELETED[role] != 204)


@pytest.mark.parametrize("role", ROLES)
def test_test_now(cast, api, trigger, role):
    response = api(cast[role]).post(f"{API}{trigger.pk}/test/")
    assert response.status_code == TESTED[role]


@pytest.mark.parametrize("role", ROLES)
def test_evaluations(cast, api, trigger, role):
    response = api(cast[role]).get(f"{API}{trigger.pk}/evaluations/")
    assert response.status_code == READ[role]


# --- writing -------------------------------------------------------------------------------


def test_a_time_trigger_shows_its_beat_schedule_and_next_fire(cast, api, scenario):
    params = {"schedule": "weekly", "days": ["mon"], "time": "07:30", "timezone": "Europe/Paris"}
    response = api(cast["editor"]).post(API, body(scenario, params=params))
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["schedule"] == {
        "crontab": "30 7 * * 1",
        "timezone": "Europe/Paris",
        "every_minutes": None,
    }
    next_fire = datetime.fromisoformat(created["next_fire_at"])
    local = next_fire.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.weekday(), local.hour, local.minute) == (0, 7, 30)
    assert created["params"]["timezone"] == "Europe/Paris" and created["suspended_reason"] == ""
    every = api(cast["editor"]).post(
        API, body(scenario, name="often", params={"schedule": "every_minutes", "every": 5})
    )
    assert every.json()["schedule"] == {"crontab": None, "timezone": None, "every_minutes": 5}


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"params": {"schedule": "weekly", "time": "07:00"}}, "params", "days"),
        ({"params": {"schedule": "daily"}}, "params", "time"),
        ({"params": {"schedule": "cron", "cron": "61 * * * *"}}, "params", "cron"),
        ({"params": {**DAILY, "timezone": "Mars/Olympus"}}, "params", "Unknown time zone"),
        ({"kind": "carrier_pigeon"}, "kind", "Unknown trigger kind"),
        ({"check_interval_seconds": 0}, "check_interval_seconds", "greater than or equal to 1"),
        ({"catch_up": "always"}, "catch_up", "not a valid choice"),
        ({"name": "nightly"}, "name", "already has a trigger"),
    ],
)
def test_errors_name_the_field(cast, api, scenario, trigger, fields, field, message):
    response = api(cast["editor"]).post(API, body(scenario, **fields))
    assert response.status_code == 400
    assert message in " ".join(response.json()[field])
    assert list(Trigger.objects.values_list("name", flat=True)) == ["nightly"]


def test_a_scenario_of_another_project_is_refused(cast, api, other_project):
    foreign = other_project.scenarios.create(name="Elsewhere")
    response = api(cast["superuser"]).post(API, body(foreign))
    assert response.status_code == 400 and "scenario" in response.json()
    assert not Trigger.objects.exists()


def test_disabling_clears_the_next_fire_and_enabling_restores_it(cast, api, trigger):
    client = api(cast["editor"])
    disabled = client.patch(f"{API}{trigger.pk}/", {"enabled": False})
    assert disabled.status_code == 200 and disabled.json()["next_fire_at"] is None
    trigger.refresh_from_db()
    assert trigger.next_fire_at is None and trigger.crontab is not None
    enabled = client.patch(f"{API}{trigger.pk}/", {"enabled": True}).json()
    trigger.refresh_from_db()
    assert enabled["next_fire_at"] is not None and trigger.next_fire_at > timezone.now()


def test_sql_change_needs_the_team_edition(cast, api, scenario, edition, pg_connection):
    sql = body(scenario, kind="sql_change", params={"connection": "warehouse", "sql": "SELECT 1"})
    refused = api(cast["editor"]).post(API, sql)
    assert refused.status_code == 403 and "Team edition" in refused.json()["detail"]
    assert not Trigger.objects.exists()
    edition("team")
    created = api(cast["editor"]).post(API, sql)
    assert created.status_code == 201, created.json()
    assert created.json()["next_check_at"] is not None and created.json()["schedule"] is None


def test_custom_python_needs_the_coder_profile(cast, api, scenario, edition):
    edition("enterprise")
    code = body(scenario, kind="custom_python", params={"code": "pass"})
    refused = api(cast["editor"]).post(API, code)
    assert refused.status_code == 403 and "coder profile" in refused.json()["detail"]
    profile_assign(user=cast["editor"], kind=ProfileKind.CODER)
    assert api(cast["editor"]).post(API, code).status_code == 201
    trigger = Trigger.objects.get()
    profile_assign(user=cast["editor"], kind=ProfileKind.DESIGNER)
    edit = api(cast["editor"]).patch(f"{API}{trigger.pk}/", {"kind": "time", "params": DAILY})
    assert edit.status_code == 403  # turning code into a schedule is still writing code


def test_a_downgrade_keeps_the_trigger_and_shows_why_it_is_suspended(
    cast, api, scenario, make_trigger, edition
):
    edition("team")
    trigger = make_trigger(scenario, "dataset_change", {"datasets": ["drop"]})
    InstalledLicense.objects.all().delete()
    tested = api(cast["operator"]).post(f"{API}{trigger.pk}/test/").json()
    assert tested["result"] == "suspended" and tested["recorded"] is True
    assert "Team edition" in tested["message"]
    shown = api(cast["reader"]).get(f"{API}{trigger.pk}/").json()
    assert "Team edition" in shown["suspended_reason"]


# --- Test now and the history --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_test_now_says_it_would_fire_but_starts_nothing(
    cast, api, files_connection, project, scenario, make_trigger, edition, no_dispatch
):
    edition("team")
    folder = Path(files_connection.config["root"]) / "drop"
    folder.mkdir()
    Dataset.objects.create(
        project=project, name="drop", connection=files_connection, format="csv", path="drop"
    )
    trigger = make_trigger(scenario, "dataset_change", {"datasets": ["drop"]})
    trigger_evaluate(trigger, timezone.now())  # the baseline
    (folder / "a.csv").write_text("x\n1\n")
    for _ in range(2):  # testing twice: nothing was consumed by the first test
        response = api(cast["operator"]).post(f"{API}{trigger.pk}/test/")
        assert response.status_code == 200
        assert response.json() | {"next_fire_at": None} == {
            "result": "fired",
            "message": "changed: drop",
            "would_fire": True,
            "recorded": False,
            "next_fire_at": None,
        }
    assert not Run.objects.exists() and not TriggerFire.objects.exists() and no_dispatch == []
    assert trigger.evaluations.count() == 1  # the baseline only
    trigger.refresh_from_db()
    assert trigger_evaluate(trigger, timezone.now()).result == "fired"  # a real check still does


def test_test_now_on_a_time_trigger_tells_the_next_slot(cast, api, scenario, make_trigger):
    paris = {"schedule": "daily", "time": "06:15", "timezone": "Europe/Paris"}
    trigger = make_trigger(scenario, "time", paris)
    tested = api(cast["operator"]).post(f"{API}{trigger.pk}/test/").json()
    assert tested["result"] == "unchanged" and tested["would_fire"] is False
    assert "next slot" in tested["message"] and " 06:15 " in tested["message"]
    assert tested["next_fire_at"] is not None
    assert not Run.objects.exists() and not trigger.evaluations.exists()


def test_test_now_on_an_after_scenario_trigger(cast, api, make_scenario, make_trigger):
    upstream, downstream = make_scenario(name="Load"), make_scenario(name="Report")
    trigger = make_trigger(downstream, "after_scenario", {"scenario": upstream.pk})
    tested = api(cast["operator"]).post(f"{API}{trigger.pk}/test/").json()
    assert tested["result"] == "unchanged"
    assert tested["message"] == f"Fires when scenario #{upstream.pk} ends success or warning."


def test_evaluations_newest_first_and_paginated(cast, api, scenario, trigger, make_trigger):
    other = make_trigger(scenario, "time", DAILY, name="other")
    TriggerEvaluation.objects.create(trigger=other, result="fired", message="not this one")
    start = timezone.now()
    for minute, result in enumerate(["unchanged", "waiting", "fired"]):
        evaluation = TriggerEvaluation.objects.create(trigger=trigger, result=result)
        at = start + timedelta(minutes=minute)
        TriggerEvaluation.objects.filter(pk=evaluation.pk).update(at=at, message=f"m{minute}")
    response = api(cast["reader"]).get(f"{API}{trigger.pk}/evaluations/")
    page = response.json()
    assert page["count"] == 3
    assert [(e["result"], e["message"]) for e in page["results"]] == [
        ("fired", "m2"),
        ("waiting", "m1"),
        ("unchanged", "m0"),
    ]
    second = api(cast["reader"]).get(f"{API}{trigger.pk}/evaluations/?page=2")
    assert second.status_code == 404  # one page of 50


def test_list_filters_by_scenario(cast, api, make_scenario, make_trigger, trigger):
    later = make_trigger(make_scenario(name="Later"), "time", DAILY, name="later")
    shown = api(cast["reader"]).get(f"{API}?scenario={later.scenario_id}").json()["results"]
    assert [t["name"] for t in shown] == ["later"]
    assert api(cast["reader"]).get(f"{API}?scenario=x").status_code == 400


# --- the kinds catalogue -------------------------------------------------------------------


def kinds_for(api, user) -> dict[str, dict]:
    response = api(user).get("/api/v1/trigger-kinds/")
    assert response.status_code == 200
    return {kind["key"]: kind for kind in response.json()}


def test_kinds_are_all_listed_with_why_some_are_unavailable(cast, api, edition):
    community = kinds_for(api, cast["editor"])
    assert list(community) == [
        "time",
        "dataset_change",
        "sql_change",
        "after_scenario",
        "custom_python",
    ]
    assert community["time"]["available"] and community["time"]["reason"] == ""
    assert community["sql_change"]["available"] is False
    assert "Team edition" in community["sql_change"]["reason"]
    assert "Enterprise edition" in community["custom_python"]["reason"]
    fields = {field["name"]: field for field in community["time"]["params"]}
    assert "weekly" in fields["schedule"]["choices"] and fields["timezone"]["default"] == "UTC"
    edition("enterprise")
    enterprise = kinds_for(api, cast["editor"])
    assert enterprise["sql_change"]["available"] is True
    assert enterprise["custom_python"]["available"] is False
    assert enterprise["custom_python"]["reason"] == "Needs the coder profile."
    assert kinds_for(api, cast["superuser"])["custom_python"]["available"] is True


def test_the_kinds_catalogue_needs_a_login(api):
    assert api().get("/api/v1/trigger-kinds/").status_code in (401, 403)
