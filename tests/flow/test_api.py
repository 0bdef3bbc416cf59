"""The flow's REST API: the permission matrix for datasets and recipes, validation errors
naming the field, connections with a write-only password, and Build / Clear."""

from __future__ import annotations

import json
import socket

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from apps.accounts.models import ProfileKind
from apps.accounts.services import profile_assign
from apps.flow.models import Connection, Dataset, Recipe

DATASETS = "/api/v1/projects/SALES/datasets/"
RECIPES = "/api/v1/projects/SALES/recipes/"
CONNECTIONS = "/api/v1/connections/"
SECRET = "pa55-do-not-show"
ROLES = ["superuser", "owner", "editor", "operator", "reader", "outsider"]
READ = {"outsider": 404}  # everyone else: 200
WRITE = {"operator": 403, "reader": 403, "outsider": 404}  # superuser, owner, editor: ok


def expected(table: dict, role: str, ok: int) -> int:
    return table.get(role, ok)


def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- the permission matrix ---------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_datasets_read(cast, api, orders_flow, role):
    client = api(cast[role])
    listing = client.get(DATASETS)
    assert listing.status_code == expected(READ, role, 200)
    for ref in ("raw_orders", orders_flow["raw"].pk):
        assert client.get(f"{DATASETS}{ref}/").status_code == expected(READ, role, 200)
    if listing.status_code == 200:
        names = {d["name"] for d in listing.json()["results"]}
        assert names == {"raw_orders", "orders_clean", "orders_by_day", "orders_by_day_pg"}


@pytest.mark.parametrize("role", ROLES)
def test_datasets_create(cast, api, orders_flow, role):
    body = {"name": "fresh", "connection": "files", "format": "csv", "path": "fresh.csv"}
    response = api(cast[role]).post(DATASETS, body)
    assert response.status_code == expected(WRITE, role, 201)
    assert Dataset.objects.filter(name="fresh").exists() == (response.status_code == 201)


@pytest.mark.parametrize("role", ROLES)
def test_datasets_update_and_delete(cast, api, orders_flow, role):
    client = api(cast[role])
    patched = client.patch(f"{DATASETS}raw_orders/", {"path": "renamed.csv"})
    assert patched.status_code == expected(WRITE, role, 200)
    assert Dataset.objects.filter(path="renamed.csv").exists() == (patched.status_code == 200)
    deleted = client.delete(f"{DATASETS}{orders_flow['pg'].pk}/")
    assert deleted.status_code == expected(WRITE, role, 204)
    assert Dataset.objects.filter(name="orders_by_day_pg").exists() == (deleted.status_code != 204)


@pytest.mark.parametrize("role", ROLES)
def test_recipes_read(cast, api, orders_flow, role):
    client = api(cast[role])
    assert client.get(RECIPES).status_code == expected(READ, role, 200)
    response = client.get(f"{RECIPES}clean/")
    assert response.status_code == expected(READ, role, 200)
    if response.status_code == 200:
        assert response.json()["inputs"] == ["raw_orders"]
        assert response.json()["outputs"] == ["orders_clean"]


@pytest.mark.parametrize("role", ROLES)
def test_recipes_write(cast, api, orders_flow, role):
    client = api(cast[role])
    body = {"name": "copy", "kind": "sync", "inputs": ["raw_orders"], "outputs": ["fresh"]}
    Dataset.objects.create(
        project=orders_flow["raw"].project, name="fresh", connection=orders_flow["raw"].connection
    )
    created = client.post(RECIPES, body)
    assert created.status_code == expected(WRITE, role, 201)
    patched = client.patch(f"{RECIPES}clean/", {"code": "SELECT * FROM raw_orders"})
    assert patched.status_code == expected(WRITE, role, 200)
    deleted = client.delete(f"{RECIPES}to_pg/")
    assert deleted.status_code == expected(WRITE, role, 204)
    assert Recipe.objects.filter(name="to_pg").exists() == (deleted.status_code != 204)


@pytest.mark.parametrize("role", ROLES)
def test_build_and_clear_need_the_editor_role(cast, api, orders_flow, role):
    client = api(cast[role])
    # An unknown mode answers 400 for those allowed: nothing is built either way.
    built = client.post(f"{DATASETS}raw_orders/build/", {"mode": "sideways"})
    assert built.status_code == expected(WRITE, role, 400)
    cleared = client.post(f"{DATASETS}orders_by_day/clear/")
    assert cleared.status_code == expected(WRITE, role, 200)


def test_a_dataset_of_another_project_is_not_reachable(cast, api, orders_flow, other_project):
    hr = Dataset.objects.create(
        project=other_project, name="staff", connection=orders_flow["raw"].connection
    )
    assert api(cast["owner"]).get(f"{DATASETS}{hr.pk}/").status_code == 404
    assert api(cast["owner"]).get(f"{DATASETS}staff/").status_code == 404


def test_python_recipes_need_the_coder_profile(cast, api, orders_flow):
    editor = cast["editor"]
    body = {"name": "py", "kind": "python", "code": "print(1)", "outputs": ["fresh"]}
    Dataset.objects.create(
        project=orders_flow["raw"].project, name="fresh", connection=orders_flow["raw"].connection
    )
    refused = api(editor).post(RECIPES, body)
    assert refused.status_code == 403 and "coder profile" in refused.json()["detail"]
    # Relinking a Python recipe writes no code: a designer may.
    assert api(editor).patch(f"{RECIPES}by_day/", {"inputs": ["raw_orders"]}).status_code == 200
    assert api(editor).patch(f"{RECIPES}by_day/", {"code": "print(2)"}).status_code == 403
    profile_assign(user=editor, kind=ProfileKind.CODER)
    editor.refresh_from_db()  # drops the cached profile
    assert api(editor).post(RECIPES, body).status_code == 201


# --- validation errors name the field ----------------------------------------------------------


def errors_of(response) -> dict:
    assert response.status_code == 400, response.content
    return response.json()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"path": "../../etc/passwd"}, "path", "leaves the connection's root"),
        ({"path": "/etc/passwd"}, "path", "leaves the connection's root"),
        ({"format": "table"}, "format", "use 'csv' or 'parquet'"),
        ({"connection": "warehouse", "format": "csv"}, "format", "use 'table'"),
        ({"connection": "nowhere"}, "connection", "No connection you may use 'nowhere'"),
        ({"name": "raw_orders"}, "name", "already has a dataset named 'raw_orders'"),
        ({"name": "9lives"}, "name", "starting with a letter"),
    ],
)
def test_dataset_errors_name_the_field(cast, api, orders_flow, body, field, message):
    base = {"name": "fresh", "connection": "files", "format": "csv"}
    errors = errors_of(api(cast["editor"]).post(DATASETS, {**base, **body}))
    assert message in " ".join(errors[field]), errors


def test_a_sql_dataset_defaults_to_table(cast, api, orders_flow):
    response = api(cast["editor"]).post(DATASETS, {"name": "facts", "connection": "warehouse"})
    assert response.status_code == 201, response.content
    assert response.json()["format"] == "table"


def test_a_connection_limited_to_a_group_is_refused_to_others(cast, api, orders_flow):
    team = Group.objects.create(name="dwh-team")
    orders_flow["pg"].connection.allowed_groups.add(team)
    body = {"name": "facts", "connection": "warehouse"}
    errors = errors_of(api(cast["editor"]).post(DATASETS, body))
    assert "No connection you may use 'warehouse'" in errors["connection"][0]
    cast["editor"].groups.add(team)
    assert api(cast["editor"]).post(DATASETS, body).status_code == 201


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"inputs": ["nope"]}, "inputs", "No dataset 'nope' here"),
        ({"outputs": ["orders_clean"]}, "outputs", "orders_clean (by clean)"),
        ({"kind": "python", "code": "pass", "outputs": []}, "outputs", "at least one"),
        ({"kind": "sql", "code": ""}, "code", "needs code"),
        ({"inputs": ["raw_orders", "orders_clean"]}, "inputs", "exactly one input"),
        (
            {"kind": "sql", "code": "SELECT 1", "outputs": ["orders_by_day_pg"]},
            "outputs",
            "orders_by_day_pg (by to_pg)",
        ),  # fmt: skip
        ({"name": "clean"}, "name", "already has a recipe named 'clean'"),
    ],
)
def test_recipe_errors_name_the_field(cast, api, orders_flow, body, field, message):
    Dataset.objects.create(
        project=orders_flow["raw"].project, name="fresh", connection=orders_flow["raw"].connection
    )
    base = {"name": "copy", "kind": "sync", "inputs": ["raw_orders"], "outputs": ["fresh"]}
    errors = errors_of(api(cast["editor"]).post(RECIPES, {**base, **body}))
    assert message in " ".join(errors[field]), errors


def test_a_cycle_is_refused_with_its_path(cast, api, orders_flow):
    body = {"name": "back", "kind": "sync", "inputs": ["orders_by_day"], "outputs": ["raw_orders"]}
    errors = errors_of(api(cast["editor"]).post(RECIPES, body))
    path = "raw_orders → orders_clean → orders_by_day → raw_orders"
    assert errors["inputs"] == [f"The flow would have a cycle: {path}."]
    # Relinking an existing recipe is checked the same way, without its old links.
    errors = errors_of(api(cast["editor"]).patch(f"{RECIPES}clean/", {"inputs": ["orders_clean"]}))
    assert "orders_clean → orders_clean" in errors["inputs"][0]
    assert not Recipe.objects.filter(name="back").exists()


def test_a_sql_recipe_cannot_mix_files_and_a_database(cast, api, orders_flow):
    body = {"name": "mixed", "kind": "sql", "code": "SELECT 1", "inputs": ["raw_orders"]}
    Dataset.objects.create(
        project=orders_flow["raw"].project,
        name="facts",
        connection=orders_flow["pg"].connection,
        format="table",
    )
    errors = errors_of(api(cast["editor"]).post(RECIPES, {**body, "outputs": ["facts"]}))
    assert "sync recipe" in errors["inputs"][0]


def test_relinking_a_recipe_puts_its_outputs_out_of_date(cast, api, orders_flow):
    client = api(cast["editor"])
    Dataset.objects.filter(project=orders_flow["raw"].project).update(built_at=timezone.now())
    assert not any(d["out_of_date"] for d in client.get(DATASETS).json()["results"])
    before = Recipe.objects.get(name="to_pg").updated_at
    response = client.patch(f"{RECIPES}to_pg/", {"inputs": [orders_flow["clean"].pk]})
    assert response.status_code == 200 and response.json()["inputs"] == ["orders_clean"]
    assert Recipe.objects.get(name="to_pg").updated_at > before
    stale = {d["name"] for d in client.get(DATASETS).json()["results"] if d["out_of_date"]}
    assert stale == {"orders_by_day_pg"}


# --- connections -------------------------------------------------------------------------------


def pg_config(pg_connection, **changes) -> dict:
    return {**pg_connection.config, **changes}


def test_everyone_lists_the_connections_they_may_use_without_config(cast, api, orders_flow):
    team = Group.objects.create(name="dwh-team")
    orders_flow["pg"].connection.allowed_groups.add(team)
    listed = api(cast["reader"]).get(CONNECTIONS).json()["results"]
    assert listed == [
        {"id": orders_flow["raw"].connection_id, "name": "files", "kind": "filesystem"}
    ]
    assert {c["name"] for c in api(cast["superuser"]).get(CONNECTIONS).json()["results"]} == {
        "files",
        "warehouse",
    }


@pytest.mark.parametrize("role", ["owner", "editor", "reader", "outsider"])
def test_only_superusers_write_connections(cast, api, files_connection, role):
    client = api(cast[role])
    assert client.post(CONNECTIONS, {"name": "other", "kind": "sqlite"}).status_code == 403
    url = f"{CONNECTIONS}{files_connection.pk}/"
    assert client.patch(url, {"name": "renamed"}).status_code == 403
    assert client.post(f"{url}test/").status_code == 403
    assert client.delete(url).status_code == 403


def test_the_password_is_write_only(cast, api, pg_connection):
    client = api(cast["superuser"])
    body = {"name": "dwh", "kind": "postgresql", "config": pg_config(pg_connection)}
    created = client.post(CONNECTIONS, {**body, "password": SECRET})
    assert created.status_code == 201, created.content
    url = f"{CONNECTIONS}{created.json()['id']}/"
    responses = [
        created,
        client.get(CONNECTIONS),
        client.get(url),
        client.patch(url, {"password": ""}),
        client.post(f"{url}test/"),
    ]
    for response in responses:
        assert SECRET not in response.content.decode()
    assert created.json()["password_set"] is True and "password" not in created.json()
    assert Connection.objects.get(name="dwh").secrets == {"password": SECRET}  # blank kept it
    assert SECRET not in Connection.objects.get(name="dwh").secrets_encrypted
    cleared = client.patch(url, {"clear_password": True})
    assert cleared.json()["password_set"] is False
    assert Connection.objects.get(name="dwh").secrets == {}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"kind": "postgresql", "config": {"host": "db"}}, "config", "needs port, database, user"),
        ({"kind": "postgresql", "config": {"port": "x"}}, "config", "needs host"),
        ({"kind": "sqlite", "config": {"path": "relative.db"}}, "config", "an absolute path"),
        (
            {"kind": "sqlite", "config": {"path": "/a.db", "password": "x"}},
            "config",
            "password field",
        ),  # fmt: skip
        ({"kind": "filesystem", "config": {"folder": "/a"}}, "config", "Unknown key folder"),
        ({"kind": "filesystem", "config": []}, "config", "A JSON object"),
        ({"name": "warehouse"}, "name", "CADENZA_SQL_CONNECTIONS"),
        ({"name": "files"}, "name", "already exists"),
    ],
)
def test_connection_errors_name_the_field(cast, api, files_connection, body, field, message):
    base = {"name": "other", "kind": "filesystem", "config": {}}
    errors = errors_of(api(cast["superuser"]).post(CONNECTIONS, {**base, **body}))
    assert message in " ".join(errors[field]), errors


def test_port_must_be_a_number(cast, api, pg_connection):
    body = {"name": "dwh", "kind": "postgresql", "config": pg_config(pg_connection, port="5432")}
    errors = errors_of(api(cast["superuser"]).post(CONNECTIONS, body))
    assert errors["config"] == ["port: a whole number from 1 to 65535."]


def test_a_connection_with_datasets_keeps_its_kind_and_is_not_deleted(cast, api, orders_flow):
    url = f"{CONNECTIONS}{orders_flow['raw'].connection_id}/"
    client = api(cast["superuser"])
    errors = errors_of(client.patch(url, {"kind": "sqlite", "config": {"path": "/tmp/x.db"}}))
    assert "cannot change" in errors["kind"][0]
    assert client.delete(url).status_code == 409


def test_connection_test_answers_or_says_why_not(cast, api, pg_connection):
    client = api(cast["superuser"])
    answered = client.post(f"{CONNECTIONS}{pg_connection.pk}/test/")
    assert answered.status_code == 200
    assert answered.json() == {"ok": True, "answer": "postgresql answered"}
    pg_connection.config["port"] = closed_port()
    pg_connection.save()
    refused = client.post(f"{CONNECTIONS}{pg_connection.pk}/test/")
    assert refused.status_code == 400 and refused.json()["ok"] is False
    assert "warehouse:" in refused.json()["error"]
    assert str(pg_connection.config["port"]) in refused.json()["error"]


# --- build and clear ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_build_missing_produces_the_data_then_clear_removes_it(cast, api, orders_flow):
    client = api(cast["editor"])
    built = client.post(f"{DATASETS}orders_by_day_pg/build/", {"mode": "missing"})
    assert built.status_code == 200, built.content
    assert built.json()["recipes"] == ["clean", "by_day", "to_pg"]
    assert built.json()["rows"] == {"orders_clean": 4, "orders_by_day": 3, "orders_by_day_pg": 3}
    status = client.get(f"{DATASETS}orders_by_day_pg/").json()
    assert status["built_by"] == "to_pg" and status["row_count"] == 3
    assert status["built_at"] and status["out_of_date"] is False
    assert [c["name"] for c in status["schema"]] == ["day", "amount"]
    again = client.post(f"{DATASETS}orders_by_day_pg/build/", {"mode": "required"})
    assert again.json()["recipes"] == []

    cleared = client.post(f"{DATASETS}{orders_flow['by_day'].pk}/clear/")
    assert cleared.status_code == 200 and cleared.json()["built_at"] is None
    assert not (orders_flow["root"] / "by_day").exists()
    rebuilt = client.post(f"{DATASETS}orders_by_day_pg/build/", {"mode": "missing"})
    assert rebuilt.json()["recipes"] == ["by_day"]


def test_a_failing_build_answers_400_with_the_reason(cast, api, orders_flow):
    Recipe.objects.filter(name="clean").update(code="SELECT no_such_column FROM raw_orders")
    failed = api(cast["editor"]).post(f"{DATASETS}orders_clean/build/", {"mode": "only"})
    assert failed.status_code == 400
    assert "SQL recipe clean" in failed.json()["detail"]
    assert "no_such_column" in failed.json()["detail"]
    assert "Recipe clean (sql) started" in failed.json()["log"]


def test_building_needs_the_connection(cast, api, orders_flow):
    orders_flow["raw"].connection.allowed_groups.add(Group.objects.create(name="closed"))
    failed = api(cast["editor"]).post(f"{DATASETS}orders_clean/build/", {"mode": "only"})
    assert failed.status_code == 400
    assert failed.json()["detail"] == "You may not use the connection files."


def test_no_response_leaks_a_secret(cast, api, orders_flow):
    orders_flow["pg"].connection.secrets = {"password": SECRET}
    orders_flow["pg"].connection.save()
    client = api(cast["superuser"])
    pages = [CONNECTIONS, f"{CONNECTIONS}{orders_flow['pg'].connection_id}/", DATASETS, RECIPES]
    for url in pages:
        assert SECRET not in json.dumps(client.get(url).json())
