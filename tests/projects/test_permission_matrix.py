"""The permission matrix: every role of the cast × admin and API, for projects and memberships.

Non-members get 404 (they cannot tell the project exists), members without the right 403.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.http import Http404

from apps.projects.models import Membership, Project, Role
from apps.projects.permissions import for_user, visible_project
from tests.conftest import make_user

ROLES = ["superuser", "owner", "editor", "operator", "reader", "outsider"]

# Expected status per role; None means "same as a plain success for this request".
READ = {
    "superuser": 200,
    "owner": 200,
    "editor": 200,
    "operator": 200,
    "reader": 200,
    "outsider": 404,
}
ADMIN_ONLY = {
    "superuser": 200,
    "owner": 200,
    "editor": 403,
    "operator": 403,
    "reader": 403,
    "outsider": 404,
}
CREATED = {**ADMIN_ONLY, "superuser": 201, "owner": 201}
DELETED = {**ADMIN_ONLY, "superuser": 204, "owner": 204}


@pytest.mark.parametrize("role", ROLES)
def test_api_project_list_shows_only_member_projects(cast, api, role):
    keys = {p["key"] for p in api(cast[role]).get("/api/v1/projects/").json()["results"]}
    expected = {"superuser": {"SALES", "HR"}, "outsider": {"HR"}}.get(role, {"SALES"})
    assert keys == expected


@pytest.mark.parametrize("role", ROLES)
def test_api_project_detail(cast, api, role):
    response = api(cast[role]).get("/api/v1/projects/SALES/")
    assert response.status_code == READ[role]
    if response.status_code == 404:
        assert "SALES" not in response.content.decode()


@pytest.mark.parametrize("role", ROLES)
def test_api_project_update(cast, api, project, role):
    response = api(cast[role]).patch("/api/v1/projects/SALES/", {"name": "Renamed"})
    assert response.status_code == ADMIN_ONLY[role]
    project.refresh_from_db()
    assert (project.name == "Renamed") == (ADMIN_ONLY[role] == 200)


@pytest.mark.parametrize("role", ROLES)
def test_api_project_delete(cast, api, role):
    response = api(cast[role]).delete("/api/v1/projects/SALES/")
    assert response.status_code == DELETED[role]
    assert Project.objects.filter(key="SALES").exists() == (DELETED[role] != 204)


@pytest.mark.parametrize("role", ROLES)
def test_api_membership_list(cast, api, role):
    response = api(cast[role]).get("/api/v1/projects/SALES/memberships/")
    assert response.status_code == READ[role]
    if response.status_code == 200:
        assert len(response.json()["results"]) == 4


@pytest.mark.parametrize("role", ROLES)
def test_api_membership_create(cast, api, project, role):
    newcomer = cast["outsider"]
    response = api(cast[role]).post(
        "/api/v1/projects/SALES/memberships/", {"user": newcomer.pk, "role": Role.EDITOR}
    )
    assert response.status_code == CREATED[role]
    assert project.memberships.filter(user=newcomer).exists() == (CREATED[role] == 201)


@pytest.mark.parametrize("role", ROLES)
def test_api_membership_update(cast, api, project, role):
    membership = project.memberships.get(user=cast["reader"])
    response = api(cast[role]).patch(
        f"/api/v1/projects/SALES/memberships/{membership.pk}/", {"role": Role.OPERATOR}
    )
    assert response.status_code == ADMIN_ONLY[role]
    membership.refresh_from_db()
    assert (membership.role == Role.OPERATOR) == (ADMIN_ONLY[role] == 200)


@pytest.mark.parametrize("role", ROLES)
def test_api_membership_delete(cast, api, project, role):
    membership = project.memberships.get(user=cast["operator"])
    response = api(cast[role]).delete(f"/api/v1/projects/SALES/memberships/{membership.pk}/")
    assert response.status_code == DELETED[role]
    assert Membership.objects.filter(pk=membership.pk).exists() == (DELETED[role] != 204)


def test_api_membership_of_another_project_is_not_reachable_through_this_one(cast, api):
    hr_membership = Membership.objects.get(project__key="HR")
    response = api(cast["owner"]).get(f"/api/v1/projects/SALES/memberships/{hr_membership.pk}/")
    assert response.status_code == 404


def test_api_anonymous_is_refused(cast, api):
    assert api().get("/api/v1/projects/").status_code in (401, 403)
    assert api().get("/api/v1/projects/SALES/").status_code in (401, 403)


# --- admin ---------------------------------------------------------------------------------


@pytest.fixture
def admin_as(client, cast):
    def login(role):
        client.force_login(cast[role])
        return client

    return login


@pytest.mark.parametrize("role", ROLES)
def test_admin_project_changelist(admin_as, role):
    page = admin_as(role).get("/admin/projects/project/").content.decode()
    assert ("Sales" in page) == (role != "outsider")


@pytest.mark.parametrize("role", ROLES)
def test_admin_project_change_page(admin_as, project, role):
    response = admin_as(role).get(f"/admin/projects/project/{project.pk}/change/")
    assert response.status_code == READ[role]
    if response.status_code == 200:
        can_save = 'name="_save"' in response.content.decode()
        assert can_save == (ADMIN_ONLY[role] == 200)


@pytest.mark.parametrize("role", ROLES)
def test_admin_project_change_post(admin_as, project, role):
    form = {
        "name": "Renamed",
        "description": "",
        "variables": "{}",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }
    if role in ("superuser", "owner"):  # the inline must carry the existing members
        memberships = list(project.memberships.all())
        form["memberships-TOTAL_FORMS"] = form["memberships-INITIAL_FORMS"] = str(len(memberships))
        for i, membership in enumerate(memberships):
            form |= {
                f"memberships-{i}-id": membership.pk,
                f"memberships-{i}-project": project.pk,
                f"memberships-{i}-user": membership.user_id or "",
                f"memberships-{i}-group": "",
                f"memberships-{i}-role": membership.role,
            }
    response = admin_as(role).post(f"/admin/projects/project/{project.pk}/change/", form)
    expected = {**ADMIN_ONLY, "superuser": 302, "owner": 302}[role]
    assert response.status_code == expected
    project.refresh_from_db()
    assert (project.name == "Renamed") == (expected == 302)


@pytest.mark.parametrize("role", ROLES)
def test_admin_membership_add(admin_as, project, cast, role):
    response = admin_as(role).post(
        "/admin/projects/membership/add/",
        {"project": project.pk, "user": cast["outsider"].pk, "role": Role.READER},
    )
    # The outsider administers another project: the form is theirs, but SALES is no choice.
    expected = {"superuser": 302, "owner": 302, "outsider": 200}.get(role, 403)
    assert response.status_code == expected
    assert project.memberships.filter(user=cast["outsider"]).exists() == (expected == 302)


def test_admin_membership_add_offers_only_projects_the_user_administers(admin_as, cast):
    page = admin_as("owner").get("/admin/projects/membership/add/").content.decode()
    assert ">SALES<" in page and ">HR<" not in page


def test_admin_cannot_move_membership_into_a_project_they_do_not_administer(
    admin_as, cast, other_project
):
    response = admin_as("owner").post(
        "/admin/projects/membership/add/",
        {"project": other_project.pk, "user": cast["reader"].pk, "role": Role.READER},
    )
    assert response.status_code == 200  # the form refuses the choice
    assert "Select a valid choice" in response.content.decode()
    assert not other_project.memberships.filter(user=cast["reader"]).exists()


@pytest.mark.parametrize("role", ["editor", "operator", "reader"])
def test_admin_membership_delete_refused_below_admin(admin_as, project, cast, role):
    membership = project.memberships.get(user=cast["reader"])
    response = admin_as(role).post(
        f"/admin/projects/membership/{membership.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 403
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_visible_project_agrees_with_for_user_for_every_kind_of_user(cast, project, other_project):
    """visible_project (hand-written SQL, the API's hottest check) answers as for_user does:
    direct members, group members, members of another project's group, the inactive, the
    superuser and the anonymous."""
    team, others = Group.objects.create(name="team"), Group.objects.create(name="others")
    Membership.objects.create(project=project, group=team, role=Role.READER)
    Membership.objects.create(project=other_project, group=others, role=Role.EDITOR)
    people = dict(cast)
    people["via group"] = make_user("gina")
    people["via group"].groups.add(team)
    people["other group"] = make_user("otto")
    people["other group"].groups.add(others)
    people["inactive reader"] = make_user("ivan", is_active=False)
    Membership.objects.create(project=project, user=people["inactive reader"], role=Role.READER)
    people["anonymous"] = AnonymousUser()
    seen = {}
    for name, user in people.items():
        for target in (project, other_project):
            try:
                visible = visible_project(user, target.key).pk == target.pk
            except Http404:
                visible = False
            expected = for_user(Project.objects.all(), user, "view").filter(pk=target.pk).exists()
            assert visible == expected, (name, target.key)
            seen[name, target.key] = visible
    assert seen["via group", "SALES"] and not seen["via group", "HR"]
    assert seen["other group", "HR"] and not seen["other group", "SALES"]
    assert not seen["inactive reader", "SALES"] and not seen["anonymous", "SALES"]
    assert seen["superuser", "HR"] and not seen["reader", "HR"]
    with pytest.raises(Http404):
        visible_project(cast["superuser"], "NOPE")
