"""The fixed cast, as in Healthchecks' tests: one project, one user per role, an outsider."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from apps.accounts.models import Profile, ProfileKind
from apps.projects.models import Membership, Project, Role

PASSWORD = "correct horse battery staple"


def make_user(username: str, *, profile: str = ProfileKind.DESIGNER, **extra):
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)
    Profile.objects.create(user=user, kind=profile)
    return user


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def project(db):
    return Project.objects.create(key="SALES", name="Sales", description="Sales data")


@pytest.fixture
def other_project(db):
    return Project.objects.create(key="HR", name="Human resources")


@pytest.fixture
def cast(db, project, other_project):
    """superuser, owner (admin), editor, operator, reader, outsider — all staff, so that the
    admin itself is what keeps them apart."""
    people = {
        "superuser": get_user_model().objects.create_superuser("root", password=PASSWORD),
        "owner": make_user("alice", is_staff=True),
        "editor": make_user("bob", is_staff=True),
        "operator": make_user("olga", is_staff=True),
        "reader": make_user("rita", is_staff=True),
        "outsider": make_user("charlie", is_staff=True),
    }
    for name, role in [
        ("owner", Role.ADMIN),
        ("editor", Role.EDITOR),
        ("operator", Role.OPERATOR),
        ("reader", Role.READER),
    ]:
        Membership.objects.create(project=project, user=people[name], role=role)
    Membership.objects.create(project=other_project, user=people["outsider"], role=Role.ADMIN)
    return people


@pytest.fixture
def api():
    def client_for(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return client_for
