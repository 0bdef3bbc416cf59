"""The 5xx the security matrix and the fuzz found, each pinned: now a 4xx that says why
(or, for deleting a project, a success)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework import serializers

from apps.ml.models import SavedModel
from apps.projects.models import Project
from apps.system.parsers import JSONField
from tests.security.test_api_matrix import CLIENT


def send(user, method: str, url: str, body=None, content_type="application/json"):
    CLIENT.force_authenticate(get_user_model().objects.get(pk=user.pk))
    data = body if isinstance(body, str) else json.dumps(body)
    with transaction.atomic():
        if body is None:
            response = CLIENT.generic(method, url)
        else:
            response = CLIENT.generic(method, url, data, content_type=content_type)
        transaction.set_rollback(True)
    return response


def test_deleting_a_project_deletes_its_saved_models_too(shared_world, db):
    world, cast = shared_world
    CLIENT.force_authenticate(get_user_model().objects.get(pk=cast["owner"].pk))
    with transaction.atomic():
        response = CLIENT.delete("/api/v1/projects/SALES/")
        assert response.status_code == 204, response.content
        assert not Project.objects.filter(key="SALES").exists()
        assert not SavedModel.objects.filter(pk=world.sales["model"].pk).exists()
        transaction.set_rollback(True)


def test_a_dataset_a_model_is_trained_on_is_not_deleted(shared_world, db):
    world, cast = shared_world
    url = f"/api/v1/projects/SALES/datasets/{world.sales['dataset'].pk}/"
    response = send(cast["editor"], "DELETE", url)
    assert response.status_code == 409
    assert "Saved models" in response.json()["detail"]


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/v1/projects/SALES/", {"variables": {"a": "x\u0000y"}}, "variables"),
        ("/api/v1/projects/SALES/", {"variables": {"a\u0000": 1}}, "variables"),
        ("scenarios/{scenario}/", {"variables": {"nested": ["\u0000"]}}, "variables"),
        ("steps/{step}/", {"params": {"variables": {"a": "\u0000"}}}, "params"),
        ("scenarios/{scenario}/run/", {"params": {"a": "\u0000"}}, "params"),
        ("charts/", {"name": "c", "dataset": "a\u0000", "group_by": "status"}, "dataset"),
    ],
)
def test_null_characters_in_a_json_body_are_a_400_naming_the_field(
    shared_world, db, no_dispatch, url, body, field
):
    world, cast = shared_world
    ids = {name: world.sales[name].pk for name in ("scenario", "step")}
    if not url.startswith("/"):
        url = "/api/v1/projects/SALES/" + url.format(**ids)
    method = "POST" if url.endswith(("run/", "charts/")) else "PATCH"
    response = send(cast["owner"], method, url, body)
    assert response.status_code == 400, response.content
    assert "Null characters are not allowed" in str(response.json()[field])


def test_null_characters_in_a_form_body_are_a_400(shared_world, db, no_dispatch):
    world, cast = shared_world
    url = f"/api/v1/projects/SALES/scenarios/{world.sales['scenario'].pk}/run/"
    response = send(cast["owner"], "POST", url, "params.a=%00", "application/x-www-form-urlencoded")
    assert response.status_code == 400, response.content
    assert response.json() == {"params.a": ["Null characters are not allowed."]}


def test_a_body_nested_too_deeply_is_a_400(shared_world, db):
    world, cast = shared_world
    deep = "[" * 5000 + "]" * 5000
    response = send(cast["owner"], "PATCH", "/api/v1/projects/SALES/", deep, "application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]


def test_null_characters_in_the_url_and_query_are_4xx(shared_world, db):
    world, cast = shared_world
    owner = cast["owner"]
    response = send(owner, "GET", "/api/v1/projects/SA%00LES/datasets/")
    assert response.status_code == 404 and "detail" in response.json()
    response = send(owner, "GET", "/api/v1/projects/SALES/metrics/?dataset=a%00b")
    assert response.status_code == 400 and "dataset" in response.json()


def test_an_api_url_that_matches_no_route_is_a_json_404(shared_world, db):
    world, cast = shared_world
    for url in ("/api/v1/projects/SALES/scenarios/-1/", "/api/v1/nowhere/"):
        response = send(cast["owner"], "GET", url)
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}
    page = send(cast["owner"], "GET", "/nowhere/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data; boundary=BoUnDaRy"


def multipart(field: str, value: str) -> str:
    return (f'--BoUnDaRy\r\nContent-Disposition: form-data; name="{field}"\r\n\r\n'
            f"{value}\r\n--BoUnDaRy--\r\n")  # fmt: skip


@pytest.mark.parametrize("content_type", [FORM, MULTIPART], ids=["form", "multipart"])
@pytest.mark.parametrize(
    ("user", "url", "field"),
    [
        ("owner", "/api/v1/projects/SALES/", "variables"),
        ("owner", "scenarios/{scenario}/", "variables"),
        ("owner", "steps/{step}/", "params"),
        ("owner", "triggers/{trigger}/", "params"),
        ("owner", "rules/{rule}/", "params"),
        ("owner", "models/{model}/", "params"),
        ("superuser", "/api/v1/connections/{connection}/", "config"),
        ("superuser", "/api/v1/channels/{channel}/", "secrets"),
    ],
)
def test_null_characters_escaped_in_a_json_form_field_are_a_400_naming_it(
    shared_world, db, no_dispatch, user, url, field, content_type
):
    """A JSON field of a form body holds JSON text: an escaped NUL ("\\u0000") only appears
    once the field decodes it, past the parser."""
    world, cast = shared_world
    ids = {name: world.sales[name].pk for name in ("scenario", "step", "trigger", "rule", "model")}
    ids |= {"connection": world.connection.pk, "channel": world.channel.pk}
    if not url.startswith("/"):
        url = "/api/v1/projects/SALES/" + url
    value = json.dumps({"a": "x\u0000y"})  # the JSON text holds the six characters \u0000
    assert "\x00" not in value
    body = urlencode({field: value}) if content_type == FORM else multipart(field, value)
    response = send(cast[user], "PATCH", url.format(**ids), body, content_type)
    assert response.status_code == 400, response.content
    assert response.json() == {field: [f"Null characters are not allowed (at {field}.a)."]}


def test_a_json_form_field_nested_too_deeply_is_a_400(shared_world, db):
    world, cast = shared_world
    body = urlencode({"variables": "[" * 100_000 + "]" * 100_000})
    response = send(cast["owner"], "PATCH", "/api/v1/projects/SALES/", body, FORM)
    assert response.status_code == 400, response.content
    assert response.json() == {"variables": ["Nested too deeply."]}


def api_serializers() -> list[type]:
    """Every serializer class of the apps (importing the URLconf imports them all)."""
    import config.urls  # noqa: F401

    found, todo = [], [serializers.BaseSerializer]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("apps."):
                found.append(sub)
    return found


def test_every_writable_json_field_of_the_api_refuses_null_characters():
    """A plain DRF JSONField would let an escaped NUL of a form body reach PostgreSQL."""
    plain = [
        f"{cls.__module__}.{cls.__qualname__}.{name}"
        for cls in api_serializers()
        for name, field in cls().fields.items()
        if isinstance(field, serializers.JSONField)
        and not field.read_only
        and not isinstance(field, JSONField)
    ]
    assert plain == []
    assert len(api_serializers()) > 50  # the walk found the serializers
