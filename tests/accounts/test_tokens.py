"""Personal API tokens: shown once, stored hashed, revocable, expiring, private to their owner."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken
from apps.accounts.services import token_create

URL = "/api/v1/tokens/"


def with_token(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def created(cast, api):
    """alice creates a token through the API; the response body."""
    response = api(cast["owner"]).post(URL, {"name": "ci"})
    assert response.status_code == 201
    return response.json()


def test_create_returns_the_key_once(cast, api, created):
    assert created["key"].startswith("cdz_")
    assert created["prefix"] == created["key"][4:12]
    listed = api(cast["owner"]).get(URL).json()["results"]
    assert [(t["id"], t["key"]) for t in listed] == [(created["id"], None)]


def test_the_key_authenticates(created):
    response = with_token(created["key"]).get("/api/v1/me/")
    assert response.status_code == 200
    assert response.json()["username"] == "alice"
    assert ApiToken.objects.get(pk=created["id"]).last_used_at is not None


def test_only_the_sha256_of_the_key_is_stored(created):
    key = created["key"]
    row = ApiToken.objects.filter(pk=created["id"]).values().get()
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert not [column for column, value in row.items() if key in str(value)]


def test_a_wrong_key_is_refused(created):
    assert with_token(created["key"] + "x").get("/api/v1/me/").status_code == 401
    assert with_token("").get("/api/v1/me/").status_code in (401, 403)


def test_delete_revokes(cast, api, created):
    assert with_token(created["key"]).get("/api/v1/me/").status_code == 200

    response = api(cast["owner"]).delete(f"{URL}{created['id']}/")

    assert response.status_code == 204
    assert not ApiToken.objects.filter(pk=created["id"]).exists()
    assert with_token(created["key"]).get("/api/v1/me/").status_code == 401


def test_an_expired_token_is_refused(cast):
    _, key = token_create(
        user=cast["owner"], name="old", expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert with_token(key).get("/api/v1/me/").status_code == 401


def test_a_token_of_an_inactive_user_is_refused(cast):
    _, key = token_create(user=cast["owner"], name="ci")
    cast["owner"].is_active = False
    cast["owner"].save(update_fields=["is_active"])
    assert with_token(key).get("/api/v1/me/").status_code == 401


def test_a_token_that_has_not_expired_yet_works(cast):
    _, key = token_create(
        user=cast["owner"], name="new", expires_at=timezone.now() + timedelta(days=1)
    )
    assert with_token(key).get("/api/v1/me/").json()["username"] == "alice"


def test_users_see_and_revoke_only_their_own_tokens(cast, api, created):
    bob = api(cast["editor"])
    bob.post(URL, {"name": "bob's"})

    assert [t["name"] for t in bob.get(URL).json()["results"]] == ["bob's"]
    assert [t["name"] for t in api(cast["owner"]).get(URL).json()["results"]] == ["ci"]
    assert bob.delete(f"{URL}{created['id']}/").status_code == 404
    assert with_token(created["key"]).get("/api/v1/me/").status_code == 200


def test_anonymous_cannot_list_or_create_tokens(db):
    assert APIClient().get(URL).status_code == 401
    assert APIClient().post(URL, {"name": "x"}).status_code == 401
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("profile", ["coder", "reader", None])
def test_the_lookup_loads_what_the_orm_loads_in_one_query(cast, profile, django_assert_num_queries):
    """token_authenticate's hand-written SQL gives the token, its user and the user's
    profile (or its absence) as select_related would: the same field values, and nothing
    read later makes a query."""
    from apps.accounts.models import Profile
    from apps.accounts.services import token_authenticate

    user = cast["owner"]
    Profile.objects.filter(user=user).delete()
    if profile:
        Profile.objects.create(user=user, kind=profile)
    token, key = token_create(user=user, name="ci", expires_at=timezone.now() + timedelta(1))
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())  # no touch write
    expected = ApiToken.objects.select_related("user", "user__cadenza_profile").get(pk=token.pk)
    with django_assert_num_queries(1):
        found = token_authenticate(key)
        if profile:
            assert found.user.cadenza_profile.kind == profile
            assert found.user.cadenza_profile.user is found.user
        else:
            with pytest.raises(Profile.DoesNotExist):
                found.user.cadenza_profile  # noqa: B018 (the cached absence)

    def fields(instance):
        return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}

    assert fields(found) == fields(expected)
    assert fields(found.user) == fields(expected.user)
    assert found._state.adding is False and found._state.db == "default"
    assert found.expires_at.tzinfo is not None
    assert token_authenticate(key + "x") is None
