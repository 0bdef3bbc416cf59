"""Every model of the admin × every role: the changelist, the add page and the change page.

The cast are all staff (as tests/conftest.py makes them), so it is the admin classes, asking
the permission module, that keep them apart: project-scoped admins show each user the rows
of their projects (404 for another project's object), global ones are for superusers (API
tokens: each user's own). What each role should get comes from ``EXPECTED``; a model
registered without an entry fails the test. Never a 5xx; anonymous users go to the login.
"""

from __future__ import annotations

import traceback

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from apps.accounts.models import InstalledLicense
from apps.projects.models import Role
from tests.security.conftest import HR_MARK, SALES_MARK, World

READER, EDITOR, ADMIN = Role.READER, Role.EDITOR, Role.ADMIN
ANYONE = "any staff user"
SUPERUSER = "superusers only"
OWN = "any staff user, their own rows"  # superusers: everyone's
NOBODY = "nobody"

# label → (who sees the changelist and change page, who gets the add page)
EXPECTED = {
    "projects.project": (READER, ANYONE),  # creating a project: any profile but reader
    "projects.membership": (READER, ADMIN),
    "flow.dataset": (READER, EDITOR),
    "flow.recipe": (READER, EDITOR),
    "quality.metric": (READER, EDITOR),
    "quality.check": (READER, EDITOR),
    "quality.rule": (READER, EDITOR),
    "ml.savedmodel": (READER, EDITOR),
    "dashboards.chart": (READER, EDITOR),
    "dashboards.dashboard": (READER, EDITOR),
    "scenarios.scenario": (READER, EDITOR),
    "triggers.trigger": (READER, EDITOR),
    "reporters.reporter": (READER, EDITOR),
    "runs.run": (READER, NOBODY),  # runs are started, never added
    "flow.connection": (SUPERUSER, SUPERUSER),
    "reporters.messagingchannel": (SUPERUSER, SUPERUSER),
    "accounts.installedlicense": (SUPERUSER, SUPERUSER),
    "accounts.apitoken": (OWN, ANYONE),
    "auth.user": (SUPERUSER, SUPERUSER),
    "auth.group": (SUPERUSER, SUPERUSER),
    "django_celery_beat.periodictask": (SUPERUSER, SUPERUSER),
    "django_celery_beat.clockedschedule": (SUPERUSER, SUPERUSER),
    "django_celery_beat.crontabschedule": (SUPERUSER, SUPERUSER),
    "django_celery_beat.solarschedule": (SUPERUSER, SUPERUSER),
    "django_celery_beat.intervalschedule": (SUPERUSER, SUPERUSER),
}

ROLES = ["superuser", "owner", "editor", "operator", "reader", "outsider", "anonymous"]
MEMBER_ROLES = {"owner": ADMIN, "editor": EDITOR, "operator": Role.OPERATOR, "reader": READER}
# label → the world's resource of that model, for project-scoped admins
RESOURCES = {
    "projects.membership": "membership", "flow.dataset": "dataset", "flow.recipe": "recipe",
    "quality.metric": "metric", "quality.check": "check", "quality.rule": "rule",
    "ml.savedmodel": "model", "dashboards.chart": "chart", "dashboards.dashboard": "dashboard",
    "scenarios.scenario": "scenario", "triggers.trigger": "trigger",
    "reporters.reporter": "reporter", "runs.run": "run",
}  # fmt: skip

CLIENT = Client()  # one client: a new one would load the middleware again


def global_object(label: str, world: World, cast: dict):
    """The object of a global admin whose change page is asked (made if the world has none)."""
    makers = {
        "flow.connection": lambda: world.connection,
        "reporters.messagingchannel": lambda: world.channel,
        "accounts.apitoken": lambda: world.token,
        "auth.user": lambda: get_user_model().objects.get(pk=cast["owner"].pk),
        "auth.group": lambda: Group.objects.create(name="analysts"),
        "accounts.installedlicense": lambda: InstalledLicense.objects.create(
            document="{}", edition="team", licensee="nobody"
        ),  # unsigned: the admin must still show it (as invalid)
        "django_celery_beat.clockedschedule": lambda: ClockedSchedule.objects.create(
            clocked_time=timezone.now()
        ),
        "django_celery_beat.solarschedule": lambda: SolarSchedule.objects.create(
            event="sunrise", latitude=48.85, longitude=2.35
        ),
        "django_celery_beat.intervalschedule": lambda: IntervalSchedule.objects.create(
            every=7, period="minutes"
        ),
        "django_celery_beat.crontabschedule": lambda: CrontabSchedule.objects.create(minute="7"),
        "django_celery_beat.periodictask": lambda: PeriodicTask.objects.create(
            name="security sweep",
            task="apps.runs.tasks.sweep",
            interval=IntervalSchedule.objects.create(every=9, period="minutes"),
        ),  # fmt: skip
    }
    return makers[label]()


def admin_url(model, page: str, pk=None) -> str:
    name = f"admin:{model._meta.app_label}_{model._meta.model_name}_{page}"
    return reverse(name, args=[pk] if pk is not None else [])


def fetch(url: str) -> tuple[int, str]:
    try:
        response = CLIENT.get(url)
    except Exception:
        return 500, traceback.format_exc().strip().splitlines()[-1]
    return response.status_code, response.content.decode(errors="replace")


def sees(rule, role: str) -> bool:
    if rule in (ANYONE, OWN):
        return True
    if role == "superuser":
        return rule != NOBODY
    if rule in (SUPERUSER, NOBODY) or role == "outsider":
        return False
    return MEMBER_ROLES[role] >= rule


def expected_pages(label: str, role: str) -> dict[str, int]:
    view, add = EXPECTED[label]
    if role == "anonymous":
        return {"changelist": 302, "add": 302, "change": 302}
    project_scoped = isinstance(view, Role)
    outsider_in_hr = role == "outsider" and project_scoped  # admin of HR
    changelist = 200 if sees(view, role) or outsider_in_hr else 403
    if project_scoped:
        change = 200 if sees(view, role) else 404
    elif view == OWN:  # someone else's token: Django's "does not exist" redirect
        change = 200 if role in ("owner", "superuser") else 302
    else:
        change = 200 if sees(view, role) else 403
    adds = sees(add, role) or (outsider_in_hr and add not in (NOBODY, SUPERUSER))
    return {"changelist": changelist, "add": 200 if adds else 403, "change": change}


REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label_lower)


def test_every_admin_model_has_an_expectation():
    labels = {model._meta.label_lower for model in REGISTERED}
    missing = labels - set(EXPECTED)
    assert not missing, f"no expected permission for admin model(s) {sorted(missing)}"
    assert set(EXPECTED) <= labels, f"stale entries: {sorted(set(EXPECTED) - labels)}"


@pytest.mark.parametrize("role", ROLES)
def test_admin_index_lists_what_each_role_may_open(shared_world, db, role):
    """The index (and every page's sidebar, built by the same get_app_list) links exactly the
    changelists the role may open."""
    world, cast = shared_world
    if role == "anonymous":
        CLIENT.logout()
        status, _ = fetch("/admin/")
        assert status == 302
        return
    CLIENT.force_login(cast[role])
    status, index = fetch("/admin/")
    assert status == 200, index
    for model in REGISTERED:
        label = model._meta.label_lower
        linked = admin_url(model, "changelist") in index
        assert linked == (expected_pages(label, role)["changelist"] == 200), (label, linked)


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label_lower)
def test_admin_pages(shared_world, db, monkeypatch, model):
    world, cast = shared_world
    # The sidebar's app list asks every admin for its permissions on every page; the index
    # test above checks it once per role, so these pages skip it (it is most of their time).
    monkeypatch.setattr(admin.site, "get_app_list", lambda request, app_label=None: [])
    label = model._meta.label_lower
    if label not in EXPECTED:
        pytest.fail(f"no expected permission for admin model {label}: add it to EXPECTED")
    if label == "projects.project":
        ours, theirs = world.sales.project, world.hr.project
    elif label in RESOURCES:
        ours, theirs = world.sales[RESOURCES[label]], world.hr[RESOURCES[label]]
    else:
        ours, theirs = global_object(label, world, cast), None
    ours_url = admin_url(model, "change", ours.pk)
    theirs_url = theirs and admin_url(model, "change", theirs.pk)
    found = []
    for role in ROLES:
        if role == "anonymous":
            CLIENT.logout()
        else:
            CLIENT.force_login(cast[role])
        expected = expected_pages(label, role)
        pages = {
            "changelist": fetch(admin_url(model, "changelist")),
            "add": fetch(admin_url(model, "add")),
            "change": fetch(ours_url),
        }
        for page, (status, text) in pages.items():
            where = f"{label} {page} as {role}"
            if status != expected[page]:
                detail = text if status == 500 else ""  # fetch() gave the exception's line
                found.append(f"{where}: expected {expected[page]}, got {status} {detail}")
            if role == "anonymous" and status == 302 and SALES_MARK in text:
                found.append(f"{where}: shows SALES data to an anonymous user")
            if role == "outsider" and SALES_MARK in text:
                found.append(f"{where}: shows a row of SALES to the outsider")
            if role in MEMBER_ROLES and HR_MARK in text:
                found.append(f"{where}: shows a row of HR to a member of SALES only")
        changelist_status, changelist = pages["changelist"]
        if changelist_status == 200:
            listed = ours_url in changelist
            if listed != (expected["change"] == 200):
                found.append(f"{label} changelist as {role}: our row listed={listed}")
            if theirs_url and (theirs_url in changelist) != (role in ("superuser", "outsider")):
                found.append(f"{label} changelist as {role}: HR's row listed wrongly")
    assert not found, "\n".join(found)
