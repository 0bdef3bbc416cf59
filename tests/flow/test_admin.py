"""The flow's admin: connections for superusers with a write-only password, datasets and
recipes scoped by project with their build status, validation and the Build / Clear actions."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group
from django.db import connection as django_connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.flow.models import Connection, Dataset, Recipe
from tests.flow.test_api import SECRET, closed_port
from tests.runs.admin_forms import action, messages_of

CONNECTIONS = "/admin/flow/connection/"
DATASETS = "/admin/flow/dataset/"
RECIPES = "/admin/flow/recipe/"
ROLES = ["superuser", "owner", "editor", "operator", "reader", "outsider"]


@pytest.fixture
def admin_as(client, cast):
    def login(role):
        client.force_login(cast[role])
        return client

    return login


def form_errors(response) -> dict:
    assert response.status_code == 200, response.status_code
    return dict(response.context["adminform"].form.errors)


def connection_form(pg_connection, **fields) -> dict:
    config = json.dumps(pg_connection.config)
    return {"name": "dwh", "kind": "postgresql", "config": config, "password": "", **fields}


def dataset_form(flow, **fields) -> dict:
    return {
        "project": flow["raw"].project_id, "name": "fresh", "connection": flow["raw"].connection_id,
        "format": "csv", "path": "", "table": "", **fields,
    }  # fmt: skip


def recipe_form(flow, *, inputs=("raw",), outputs=("fresh",), **fields) -> dict:
    def ids(keys):
        return [flow[key].pk if key in flow else Dataset.objects.get(name=key).pk for key in keys]

    return {
        "project": flow["raw"].project_id, "name": "copy", "kind": "sync", "code": "",
        "inputs": ids(inputs), "outputs": ids(outputs), **fields,
    }  # fmt: skip


@pytest.fixture
def fresh(orders_flow):
    """A files dataset no recipe writes yet."""
    raw = orders_flow["raw"]
    return Dataset.objects.create(project=raw.project, name="fresh", connection=raw.connection)


# --- connections -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_connections_are_for_superusers_only(admin_as, files_connection, role):
    client = admin_as(role)
    allowed = role == "superuser"
    assert client.get(CONNECTIONS).status_code == (200 if allowed else 403)
    change = client.get(f"{CONNECTIONS}{files_connection.pk}/change/")
    assert change.status_code == (200 if allowed else 403)
    assert ("/admin/flow/connection/" in client.get("/admin/").content.decode()) == allowed


def test_the_password_is_write_only(admin_as, pg_connection):
    client = admin_as("superuser")
    added = client.post(f"{CONNECTIONS}add/", connection_form(pg_connection, password=SECRET))
    assert added.status_code == 302, form_errors(added)
    dwh = Connection.objects.get(name="dwh")
    assert dwh.secrets == {"password": SECRET}
    change_url = f"{CONNECTIONS}{dwh.pk}/change/"
    for page in (client.get(change_url), client.get(CONNECTIONS)):
        html = page.content.decode()
        assert SECRET not in html and dwh.secrets_encrypted not in html
        assert "password: set" in html
    kept = client.post(change_url, connection_form(pg_connection))  # blank: keep it
    assert kept.status_code == 302 and Connection.objects.get(pk=dwh.pk).secrets == {
        "password": SECRET
    }
    client.post(change_url, connection_form(pg_connection, clear_password="on"))
    assert Connection.objects.get(pk=dwh.pk).secrets == {}
    assert "password: not set" in client.get(change_url).content.decode()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"config": '{"host": "db", "port": 5432, "database": "d"}'}, "config", "needs user"),
        (
            {"config": '{"host": "db", "port": 0, "database": "d", "user": "u"}'},
            "config",
            "port: a whole number",
        ),  # fmt: skip
        ({"kind": "sqlite", "config": "{}"}, "config", "needs path"),
        ({"name": "warehouse"}, "name", "CADENZA_SQL_CONNECTIONS"),
    ],
)
def test_connection_errors_name_the_field(admin_as, pg_connection, fields, field, message):
    response = admin_as("superuser").post(
        f"{CONNECTIONS}add/", connection_form(pg_connection, **fields)
    )
    assert message in " ".join(form_errors(response)[field])
    assert not Connection.objects.filter(name="dwh").exists()


def test_test_connection_action(admin_as, pg_connection):
    down = Connection.objects.create(
        name="down", kind="postgresql", config={**pg_connection.config, "port": closed_port()}
    )
    response = action(admin_as("superuser"), CONNECTIONS, "test_connection", pg_connection, down)
    said = messages_of(response)
    assert "warehouse: postgresql answered." in said
    assert any(m.startswith("down: ") and "failed" in m for m in said), said


# --- datasets ----------------------------------------------------------------------------------


def out_of_date_column(response) -> dict[str, bool]:
    return {row.name: row.flow_out_of_date for row in response.context["cl"].result_list}


def test_the_changelist_marks_what_is_out_of_date_in_a_fixed_number_of_queries(
    admin_as, orders_flow, project
):
    client = admin_as("editor")
    with CaptureQueriesContext(django_connection) as small:
        response = client.get(DATASETS)
    assert out_of_date_column(response) == {
        "raw_orders": False,  # a source
        "orders_clean": True,  # never built
        "orders_by_day": True,
        "orders_by_day_pg": True,
    }
    now = timezone.now()
    clean = Recipe.objects.get(name="clean")
    Dataset.objects.filter(project=project).update(built_at=now, built_by=clean, row_count=1)
    Recipe.objects.get(name="by_day").save()  # edited after the build
    previous = orders_flow["pg"]
    for n in range(6):  # a longer flow: the query count must not grow with it
        step = Dataset.objects.create(
            project=project, name=f"step{n}", connection=previous.connection
        )
        made = Recipe.objects.create(project=project, name=f"r{n}", kind="sync")
        made.inputs.set([previous])
        made.outputs.set([step])
        previous = step
    with CaptureQueriesContext(django_connection) as large:
        response = client.get(DATASETS)
    flags = out_of_date_column(response)
    assert flags["orders_clean"] is False and flags["orders_by_day"] is True
    assert flags["orders_by_day_pg"] is True and flags["step5"] is True  # downstream of an edit
    assert len(large.captured_queries) == len(small.captured_queries)


@pytest.mark.parametrize("role", ROLES)
def test_dataset_pages_by_role(admin_as, orders_flow, role):
    client = admin_as(role)
    names = [row.name for row in client.get(DATASETS).context["cl"].result_list]
    assert bool(names) == (role != "outsider")
    change = client.get(f"{DATASETS}{orders_flow['raw'].pk}/change/")
    assert change.status_code == (404 if role == "outsider" else 200)
    if change.status_code == 200:
        can_save = 'name="_save"' in change.content.decode()
        assert can_save == (role in ("superuser", "owner", "editor"))


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"path": "../outside.csv"}, "path", "leaves the connection's root"),
        ({"format": "table"}, "format", "use 'csv' or 'parquet'"),
        ({"connection": "pg", "format": "csv"}, "format", "use 'table'"),
        ({"name": "raw_orders"}, None, "already exists"),
    ],
)
def test_dataset_errors_name_the_field(admin_as, orders_flow, fields, field, message):
    if fields.get("connection") == "pg":
        fields["connection"] = orders_flow["pg"].connection_id
    response = admin_as("editor").post(f"{DATASETS}add/", dataset_form(orders_flow, **fields))
    errors = form_errors(response)
    assert message in " ".join(errors[field or "__all__"]), errors
    assert not Dataset.objects.filter(name="fresh").exists()


def test_connection_choices_are_the_usable_ones(admin_as, orders_flow):
    orders_flow["pg"].connection.allowed_groups.add(Group.objects.create(name="dwh-team"))
    form = admin_as("editor").get(f"{DATASETS}add/").context["adminform"].form
    assert [c.name for c in form.fields["connection"].queryset] == ["files"]
    refused = admin_as("editor").post(
        f"{DATASETS}add/", dataset_form(orders_flow, connection=orders_flow["pg"].connection_id)
    )
    assert "Select a valid choice" in form_errors(refused)["connection"][0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_build_and_clear_actions(admin_as, orders_flow):
    pg, by_day = orders_flow["pg"], orders_flow["by_day"]
    refused = action(admin_as("operator"), DATASETS, "build_required", pg)
    assert Dataset.objects.get(pk=pg.pk).built_at is None, messages_of(refused)

    built = messages_of(action(admin_as("editor"), DATASETS, "build_required", pg))
    assert built == [
        "Built: ran clean, by_day, to_pg "
        "(orders_clean: 4 rows, orders_by_day: 3 rows, orders_by_day_pg: 3 rows)."
    ]
    assert Dataset.objects.get(pk=pg.pk).row_count == 3
    nothing = messages_of(action(admin_as("editor"), DATASETS, "build_required", pg))
    assert nothing == ["Nothing to build: everything is up to date."]
    forced = messages_of(action(admin_as("editor"), DATASETS, "build_force", by_day))
    assert forced[0].startswith("Built: ran clean, by_day (")

    cleared = messages_of(action(admin_as("editor"), DATASETS, "clear_data", by_day))
    assert cleared == ["orders_by_day: data cleared."]
    assert Dataset.objects.get(pk=by_day.pk).built_at is None
    assert not (orders_flow["root"] / "by_day").exists()


def test_a_failed_build_says_why(admin_as, orders_flow):
    Recipe.objects.filter(name="clean").update(code="SELECT nope FROM raw_orders")
    said = messages_of(action(admin_as("editor"), DATASETS, "build_force", orders_flow["clean"]))
    assert said[0].startswith("Build failed: SQL recipe clean:") and "nope" in said[0]


# --- recipes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"inputs": ["by_day"], "outputs": ["raw"]},
            "inputs",
            "cycle: raw_orders → orders_clean → orders_by_day → raw_orders",
        ),  # fmt: skip
        ({"outputs": ["clean"]}, "outputs", "orders_clean (by clean)"),
        ({"inputs": ["raw", "clean"]}, "inputs", "exactly one input"),
        ({"kind": "sql"}, "code", "needs code"),
        ({"kind": "python", "code": "print(1)"}, "code", "coder profile"),
        ({"name": "clean"}, None, "already exists"),
    ],
)
def test_recipe_errors_name_the_field(admin_as, orders_flow, fresh, fields, field, message):
    form = recipe_form(orders_flow, **fields)
    errors = form_errors(admin_as("editor").post(f"{RECIPES}add/", form))
    assert message in " ".join(errors[field or "__all__"]), errors
    assert not Recipe.objects.filter(name="copy").exists()


def test_a_recipe_from_another_project_is_refused(admin_as, orders_flow, other_project, fresh):
    elsewhere = Dataset.objects.create(
        project=other_project, name="staff", connection=orders_flow["raw"].connection
    )
    form = recipe_form(orders_flow, inputs=["staff"])
    errors = form_errors(admin_as("superuser").post(f"{RECIPES}add/", form))
    assert errors["inputs"] == ["Not in project SALES: staff."]
    assert elsewhere.consumers.count() == 0


def test_adding_and_relinking_a_recipe(admin_as, orders_flow, fresh):
    client = admin_as("editor")
    added = client.post(f"{RECIPES}add/", recipe_form(orders_flow))
    assert added.status_code == 302, form_errors(added)
    copy = Recipe.objects.get(name="copy")
    assert [d.name for d in copy.outputs.all()] == ["fresh"]
    before = copy.updated_at
    form = recipe_form(orders_flow, inputs=["clean"])
    del form["project"]  # read-only once the recipe exists
    changed = client.post(f"{RECIPES}{copy.pk}/change/", form)
    assert changed.status_code == 302, form_errors(changed)
    copy.refresh_from_db()
    assert [d.name for d in copy.inputs.all()] == ["orders_clean"]
    assert copy.updated_at > before  # what it writes is now out of date


def test_a_designer_may_relink_a_python_recipe_but_not_edit_its_code(admin_as, orders_flow):
    by_day = Recipe.objects.get(name="by_day")
    page = admin_as("editor").get(f"{RECIPES}{by_day.pk}/change/")
    assert "code" not in page.context["adminform"].form.fields  # read-only for them
    form = recipe_form(
        orders_flow, inputs=["raw"], outputs=["by_day"], kind="python", name="by_day"
    )
    del form["project"], form["code"]
    relinked = admin_as("editor").post(f"{RECIPES}{by_day.pk}/change/", form)
    assert relinked.status_code == 302, form_errors(relinked)
    assert [d.name for d in by_day.inputs.all()] == ["raw_orders"]
