from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.http import Http404

from apps.accounts.models import ProfileKind
from apps.projects import permissions
from apps.projects.models import Membership, Project, Role
from apps.scenarios.models import Scenario
from tests.conftest import make_user


def test_api_create_project_makes_the_creator_its_admin(cast, api):
    response = api(cast["editor"]).post(
        "/api/v1/projects/", {"key": "OPS", "name": "Operations", "variables": {"env": "prod"}}
    )
    assert response.status_code == 201, response.content
    assert response.json()["role"] == "admin"
    project = Project.objects.get(key="OPS")
    assert project.variables == {"env": "prod"}
    assert project.memberships.get(user=cast["editor"]).role == Role.ADMIN


def test_reader_profile_cannot_create_projects(db, api):
    reader = make_user("ray", profile=ProfileKind.READER)
    response = api(reader).post("/api/v1/projects/", {"key": "OPS", "name": "Operations"})
    assert response.status_code == 403
    assert not Project.objects.filter(key="OPS").exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"key": "sales", "name": "x"}, "key"),
        ({"key": "S", "name": "x"}, "key"),
        ({"key": "SALES", "name": "dup"}, "key"),
        ({"key": "OK_1"}, "name"),
        ({"key": "OK_2", "name": "x", "variables": [1, 2]}, "variables"),
    ],
)
def test_api_project_validation_names_the_field(cast, api, payload, field):
    response = api(cast["owner"]).post("/api/v1/projects/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_project_key_cannot_change(cast, api):
    response = api(cast["owner"]).patch("/api/v1/projects/SALES/", {"key": "OTHER"})
    assert response.status_code == 400
    assert "key" in response.json()
    assert Project.objects.filter(key="SALES").exists()


def test_reader_profile_is_capped_at_reader_whatever_the_membership(project):
    ray = make_user("ray", profile=ProfileKind.READER)
    Membership.objects.create(project=project, user=ray, role=Role.ADMIN)  # e.g. set in SQL
    assert permissions.role_in(ray, project) == Role.READER
    assert permissions.can(ray, "view", project)
    assert not permissions.can(ray, "admin", project)
    assert not permissions.for_user(Project.objects.all(), ray, "run").exists()


def test_api_refuses_more_than_reader_for_a_reader_profile(cast, api, project):
    ray = make_user("ray", profile=ProfileKind.READER)
    response = api(cast["owner"]).post(
        "/api/v1/projects/SALES/memberships/", {"user": ray.pk, "role": Role.EDITOR}
    )
    assert response.status_code == 400
    assert "reader profile" in response.json()["role"][0]
    assert not project.memberships.filter(user=ray).exists()


def test_api_membership_names_user_or_group_exactly(cast, api):
    group = Group.objects.create(name="analysts")
    both = api(cast["owner"]).post(
        "/api/v1/projects/SALES/memberships/",
        {"user": cast["outsider"].pk, "group": group.pk, "role": Role.READER},
    )
    neither = api(cast["owner"]).post("/api/v1/projects/SALES/memberships/", {"role": 10})
    assert both.status_code == neither.status_code == 400
    assert "user" in both.json() and "user" in neither.json()


def test_api_duplicate_membership_is_a_field_error(cast, api):
    response = api(cast["owner"]).post(
        "/api/v1/projects/SALES/memberships/", {"user": cast["reader"].pk, "role": Role.EDITOR}
    )
    assert response.status_code == 400
    assert "user" in response.json()


def test_last_admin_cannot_leave_or_be_demoted(cast, api, project):
    admin = project.memberships.get(role=Role.ADMIN)
    url = f"/api/v1/projects/SALES/memberships/{admin.pk}/"
    demote = api(cast["owner"]).patch(url, {"role": Role.EDITOR})
    remove = api(cast["owner"]).delete(url)
    assert demote.status_code == remove.status_code == 400
    admin.refresh_from_db()
    assert admin.role == Role.ADMIN


def test_group_membership_gives_its_role_to_members(project, api):
    gina = make_user("gina")
    team = Group.objects.create(name="sales-team")
    gina.groups.add(team)
    assert api(gina).get("/api/v1/projects/SALES/").status_code == 404
    Membership.objects.create(project=project, group=team, role=Role.OPERATOR)
    assert api(gina).get("/api/v1/projects/SALES/").json()["role"] == "operator"
    assert permissions.can(gina, "run", project)
    assert not permissions.can(gina, "change", project)


def test_user_and_group_memberships_take_the_highest_role(project):
    gina = make_user("gina")
    team = Group.objects.create(name="sales-admins")
    gina.groups.add(team)
    Membership.objects.create(project=project, user=gina, role=Role.READER)
    Membership.objects.create(project=project, group=team, role=Role.ADMIN)
    assert permissions.role_in(gina, project) == Role.ADMIN


def test_inactive_users_see_nothing(cast, project):
    owner = cast["owner"]
    owner.is_active = False
    owner.save()
    assert not permissions.for_user(Project.objects.all(), owner, "view").exists()
    assert not permissions.can(owner, "view", project)


def test_rows_of_a_visible_project_are_filtered_once(cast, make_scenario, other_project):
    """in_project: for a project visible_project() fetched for this user, the project filter
    is the permission filter; for any other project (or action) the full check applies."""
    reader, outsider = cast["reader"], cast["outsider"]
    scenario = make_scenario()
    visible = permissions.visible_project(reader, key="SALES")
    scoped = permissions.in_project(Scenario.objects.all(), reader, visible)
    assert "projects_membership" not in str(scoped.query)
    assert list(scoped) == [scenario]
    # Fetched without visible_project, or for another user, or to change: checked in full.
    for user, other in [(reader, other_project), (outsider, visible)]:
        assert not permissions.in_project(Scenario.objects.all(), user, other).exists()
    assert not permissions.in_project(Scenario.objects.all(), reader, visible, "change").exists()
    with pytest.raises(Http404):
        permissions.visible_project(outsider, key="SALES")
    with pytest.raises(ValueError):
        permissions.in_project(Scenario.objects.all(), reader, visible, "fly")


def test_visible_project_loads_the_row_as_the_orm_does(cast, project, django_assert_num_queries):
    """visible_project's hand-written SQL gives the project the ORM would: every field, the
    JSON variables decoded, aware datetimes; one query."""
    Project.objects.filter(pk=project.pk).update(variables={"region": "eu", "n": [1, 2]})
    with django_assert_num_queries(1):
        visible = permissions.visible_project(cast["reader"], key=project.key)
    expected = Project.objects.get(pk=project.pk)
    for field in Project._meta.concrete_fields:
        assert getattr(visible, field.attname) == getattr(expected, field.attname), field.name
    assert visible.variables == {"region": "eu", "n": [1, 2]}
    assert visible._state.adding is False


def test_unknown_action_is_a_programming_error(cast, project):
    with pytest.raises(ValueError):
        permissions.for_user(Project.objects.all(), cast["owner"], "fly")


def test_admin_add_project_makes_the_creator_admin(client, cast):
    client.force_login(cast["editor"])
    response = client.post(
        "/admin/projects/project/add/",
        {
            "key": "OPS",
            "name": "Operations",
            "description": "",
            "variables": "{}",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Project.objects.get(key="OPS").memberships.get(user=cast["editor"]).role == Role.ADMIN


def test_admin_project_inline_refuses_to_remove_every_admin(client, cast, project):
    client.force_login(cast["owner"])
    memberships = list(project.memberships.all())
    form = {
        "name": "Sales",
        "description": "",
        "variables": "{}",
        "memberships-TOTAL_FORMS": str(len(memberships)),
        "memberships-INITIAL_FORMS": str(len(memberships)),
    }
    for i, membership in enumerate(memberships):
        form |= {
            f"memberships-{i}-id": membership.pk,
            f"memberships-{i}-project": project.pk,
            f"memberships-{i}-user": membership.user_id,
            f"memberships-{i}-group": "",
            f"memberships-{i}-role": Role.EDITOR
            if membership.role == Role.ADMIN
            else membership.role,
        }
    response = client.post(f"/admin/projects/project/{project.pk}/change/", form)
    assert response.status_code == 200
    assert "at least one admin" in response.content.decode()
    assert project.memberships.filter(role=Role.ADMIN).exists()
