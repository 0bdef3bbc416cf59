"""Metrics, checks and rules through the REST API and the admin: the permission matrix,
validation errors naming the field, and computing, checking and verifying on real data."""

from __future__ import annotations

import pytest

from apps.accounts.models import ProfileKind
from apps.accounts.services import profile_assign
from apps.flow import build as engine
from apps.flow.models import Dataset
from apps.quality.models import Check, Metric, MetricValue, QualityResult, Rule
from tests.flow.test_build import fresh
from tests.runs.admin_forms import action, messages_of

API = "/api/v1/projects/SALES/"
ROLES = ["superuser", "owner", "editor", "operator", "reader", "outsider"]
READ = {"outsider": 404}
WRITE = {"operator": 403, "reader": 403, "outsider": 404}


def expected(table: dict, role: str, ok: int) -> int:
    return table.get(role, ok)


def errors_of(response) -> dict:
    assert response.status_code == 400, response.content
    return response.json()


@pytest.fixture
def built(orders_flow, recipe_run):
    engine.build([fresh(orders_flow["pg"])], "missing", recipe_run[0])
    return {name: fresh(dataset) for name, dataset in orders_flow.items() if name != "root"}


@pytest.fixture
def raw_metric(orders_flow):
    return Metric.objects.create(dataset=orders_flow["raw"], name="rows", kind="row_count")


# --- the permission matrix ---------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_metrics_matrix(cast, api, raw_metric, role):
    client = api(cast[role])
    listing = client.get(f"{API}metrics/")
    assert listing.status_code == expected(READ, role, 200)
    assert client.get(f"{API}metrics/{raw_metric.pk}/").status_code == expected(READ, role, 200)
    history = client.get(f"{API}metrics/{raw_metric.pk}/history/")
    assert history.status_code == expected(READ, role, 200)
    body = {"dataset": "raw_orders", "name": "top", "kind": "max", "column": "amount"}
    assert client.post(f"{API}metrics/", body).status_code == expected(WRITE, role, 201)
    patched = client.patch(f"{API}metrics/{raw_metric.pk}/", {"name": "count"})
    assert patched.status_code == expected(WRITE, role, 200)
    computed = client.post(f"{API}metrics/compute/", {"dataset": "raw_orders"})
    assert computed.status_code == expected(WRITE, role, 200)
    deleted = client.delete(f"{API}metrics/{raw_metric.pk}/")
    assert deleted.status_code == expected(WRITE, role, 204)
    assert Metric.objects.filter(pk=raw_metric.pk).exists() == (deleted.status_code != 204)


@pytest.mark.parametrize("role", ROLES)
def test_checks_and_rules_matrix(cast, api, raw_metric, role):
    client = api(cast[role])
    check = Check.objects.create(
        dataset=raw_metric.dataset, name="volume", metric=raw_metric, hard_min=1
    )
    rule = Rule.objects.create(dataset=raw_metric.dataset, name="filled", kind="not_empty")
    for kind, obj, run in (("checks", check, "run"), ("rules", rule, "verify")):
        assert client.get(f"{API}{kind}/").status_code == expected(READ, role, 200)
        results = client.get(f"{API}{kind}/{obj.pk}/results/")
        assert results.status_code == expected(READ, role, 200)
        patched = client.patch(f"{API}{kind}/{obj.pk}/", {"name": "renamed"})
        assert patched.status_code == expected(WRITE, role, 200)
        ran = client.post(f"{API}{kind}/{run}/", {"dataset": "raw_orders"})
        assert ran.status_code == expected(WRITE, role, 200)
        assert client.delete(f"{API}{kind}/{obj.pk}/").status_code == expected(WRITE, role, 204)
    created = client.post(f"{API}checks/", {"name": "c", "metric": raw_metric.pk, "soft_min": 2})
    assert created.status_code == expected(WRITE, role, 201)
    created = client.post(
        f"{API}rules/", {"dataset": "raw_orders", "name": "r", "kind": "not_empty"}
    )
    assert created.status_code == expected(WRITE, role, 201)


def test_another_projects_rows_are_not_reachable(cast, api, raw_metric, other_project):
    staff = Dataset.objects.create(
        project=other_project, name="staff", connection=raw_metric.dataset.connection
    )
    theirs = Metric.objects.create(dataset=staff, name="rows", kind="row_count")
    owner = api(cast["owner"])
    assert owner.get(f"{API}metrics/{theirs.pk}/").status_code == 404
    assert [m["name"] for m in owner.get(f"{API}metrics/").json()["results"]] == ["rows"]
    refused = owner.post(f"{API}metrics/", {"dataset": staff.pk, "name": "x", "kind": "row_count"})
    assert "No dataset" in errors_of(refused)["dataset"][0]
    ran = owner.post(f"{API}metrics/compute/", {"dataset": "staff"})
    assert "No dataset 'staff'" in errors_of(ran)["dataset"][0]


def test_python_checks_need_the_coder_profile(cast, api, raw_metric):
    editor = cast["editor"]
    body = {"name": "custom", "metric": raw_metric.pk, "code": "from cadenza import check\n"}
    refused = api(editor).post(f"{API}checks/", body)
    assert refused.status_code == 403 and "coder profile" in refused.json()["detail"]
    profile_assign(user=editor, kind=ProfileKind.CODER)
    editor.refresh_from_db()
    created = api(editor).post(f"{API}checks/", body)
    assert created.status_code == 201, created.content
    assert created.json()["dataset"] == "raw_orders"


# --- validation errors name the field ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"kind": "max", "column": "amuont"}, "column", "No column 'amuont' in raw_orders"),
        ({"kind": "mean"}, "column", "Column mean needs a column."),
        ({"kind": "sql"}, "sql", "A custom SQL metric needs a query"),
        ({"kind": "row_count", "name": "rows"}, "name", "already has a metric named 'rows'"),
        ({"kind": "row_count", "dataset": "nowhere"}, "dataset", "No dataset 'nowhere' here."),
    ],
)
def test_metric_errors_name_the_field(cast, api, raw_metric, body, field, message):
    sent = {"dataset": "raw_orders", "name": "m", **body}
    errors = errors_of(api(cast["editor"]).post(f"{API}metrics/", sent))
    assert message in errors[field][0]


def test_a_metric_on_a_dataset_never_built_is_checked_when_computed(cast, api, orders_flow):
    body = {"dataset": "orders_clean", "name": "m", "kind": "max", "column": "anything"}
    assert api(cast["editor"]).post(f"{API}metrics/", body).status_code == 201


def test_a_metric_stays_on_its_dataset(cast, api, raw_metric):
    moved = api(cast["editor"]).patch(f"{API}metrics/{raw_metric.pk}/", {"dataset": "orders_clean"})
    assert "stays on its dataset" in errors_of(moved)["dataset"][0]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "non_field_errors", "at least one bound, or Python code"),
        ({"soft_min": 5, "soft_max": 2}, "soft_max", "Below soft_min (5)."),
        ({"hard_min": 1, "metric": 999999}, "metric", "object does not exist"),
    ],
)
def test_check_errors_name_the_field(cast, api, raw_metric, body, field, message):
    sent = {"name": "c", "metric": raw_metric.pk, **body}
    errors = errors_of(api(cast["editor"]).post(f"{API}checks/", sent))
    assert message in errors[field][0]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"kind": "not_null", "column": "amuont"}, "column", "No column 'amuont' in raw_orders"),
        ({"kind": "unique", "column": ""}, "column", "Unique column values needs a column."),
        ({"kind": "in_range", "params": {"min": 0}}, "params", "max: a number is required"),
        ({"kind": "in_range", "params": {"min": "0", "max": 9}}, "params", "min: a number"),
        ({"kind": "in_range", "params": {"min": 9, "max": 1}}, "params", "min (9) is above max"),
        ({"kind": "row_count", "params": {"max": 9}}, "params", "min: a number is required"),
        ({"kind": "row_count", "params": {"top": 9}}, "params", "Unknown key top"),
        ({"kind": "in_set", "params": {"values": []}}, "params", "values: a non-empty list"),
        ({"kind": "in_set", "params": {"values": [None]}}, "params", "strings and numbers"),
        ({"kind": "regex", "params": {"pattern": "[0-9"}}, "params", "not a valid regular"),
        ({"kind": "regex", "params": {}}, "params", "pattern: a regular expression is required"),
        ({"kind": "not_empty", "params": [1]}, "params", "A JSON object"),
    ],
)
def test_rule_errors_name_the_field(cast, api, orders_flow, body, field, message):
    sent = {"dataset": "raw_orders", "name": "r", "column": "amount", **body}
    errors = errors_of(api(cast["editor"]).post(f"{API}rules/", sent))
    assert message in errors[field][0], errors


def test_valid_rules_are_saved(cast, api, orders_flow):
    editor = api(cast["editor"])
    for name, kind, params in [
        ("rows", "row_count", {"min": 1}),
        ("range", "in_range", {"min": 0, "max": 100.5}),
        ("set", "in_set", {"values": ["ok", 1]}),
        ("iso", "regex", {"pattern": r"\d{4}-\d{2}-\d{2}"}),
    ]:
        body = {"dataset": "raw_orders", "name": name, "kind": kind, "column": "day",
                "params": params}  # fmt: skip
        assert editor.post(f"{API}rules/", body).status_code == 201, name
    assert Rule.objects.count() == 4


# --- computing on real data --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_compute_check_and_verify_through_the_api(cast, api, built):
    editor = api(cast["editor"])
    for name, kind, column in [("rows", "row_count", ""), ("top", "max", "amount")]:
        body = {"dataset": "orders_clean", "name": name, "kind": kind, "column": column}
        assert editor.post(f"{API}metrics/", body).status_code == 201
    computed = editor.post(f"{API}metrics/compute/", {"dataset": "orders_clean"})
    assert computed.json() == {"dataset": "orders_clean", "values": {"rows": 4.0, "top": 10.5}}
    rows = Metric.objects.get(name="rows")
    history = editor.get(f"{API}metrics/{rows.pk}/history/").json()
    assert [value["value"] for value in history["results"]] == [4.0]
    listed = editor.get(f"{API}metrics/?dataset=orders_clean").json()["results"]
    assert {m["name"]: m["latest"]["value"] for m in listed} == {"rows": 4.0, "top": 10.5}

    editor.post(
        f"{API}checks/", {"name": "volume", "metric": rows.pk, "soft_min": 5, "hard_min": 1}
    )
    checked = editor.post(f"{API}checks/run/", {"dataset": "orders_clean"}).json()
    assert checked["outcome"] == "WARNING"
    assert checked["results"][0] | {"id": 0} == {
        "id": 0, "name": "volume", "outcome": "WARNING", "value": 4.0,
        "message": "4 is below the soft minimum 5",
    }  # fmt: skip

    body = {"dataset": "orders_clean", "name": "small", "kind": "in_range", "column": "amount",
            "params": {"min": 0, "max": 10}}  # fmt: skip
    assert editor.post(f"{API}rules/", body).status_code == 201
    verified = editor.post(f"{API}rules/verify/", {"dataset": "orders_clean"}).json()
    assert verified["outcome"] == "ERROR"
    assert verified["results"][0]["message"] == "1 row(s) break the rule"
    rule = Rule.objects.get(name="small")
    assert editor.get(f"{API}rules/{rule.pk}/").json()["latest"]["outcome"] == "ERROR"
    assert QualityResult.objects.count() == 2


def test_what_cannot_be_computed_is_a_400_saying_why(cast, api, raw_metric, orders_flow):
    editor = api(cast["editor"])
    Metric.objects.create(dataset=orders_flow["raw"], name="bad", kind="max", column="amuont")
    failed = editor.post(f"{API}metrics/compute/", {"dataset": "raw_orders"})
    assert "unknown column 'amuont' in raw_orders" in errors_of(failed)["detail"]
    assert not MetricValue.objects.exists()
    Check.objects.create(dataset=orders_flow["raw"], name="py", metric=raw_metric, code="pass")
    refused = editor.post(f"{API}checks/run/", {"dataset": "raw_orders"})
    assert "run it from a scenario" in errors_of(refused)["detail"]


# --- the admin ---------------------------------------------------------------------------------


@pytest.fixture
def admin_as(client, cast):
    def login(role):
        client.force_login(cast[role])
        return client

    return login


def admin_errors(response) -> dict:
    assert response.status_code == 200, response.status_code
    return dict(response.context["adminform"].form.errors)


def test_admin_forms_name_the_field(admin_as, orders_flow, raw_metric):
    editor = admin_as("editor")
    raw = orders_flow["raw"].pk
    metric = {"dataset": raw, "name": "top", "kind": "max", "column": "amuont", "sql": ""}
    errors = admin_errors(editor.post("/admin/quality/metric/add/", metric))
    assert "No column 'amuont' in raw_orders" in errors["column"][0]
    rule = {"dataset": raw, "name": "iso", "kind": "regex", "column": "day",
            "params": '{"pattern": "("}', "severity": "ERROR"}  # fmt: skip
    errors = admin_errors(editor.post("/admin/quality/rule/add/", rule))
    assert "not a valid regular expression" in errors["params"][0]
    check = {"name": "py", "metric": raw_metric.pk, "code": "print(1)"}
    errors = admin_errors(editor.post("/admin/quality/check/add/", check))
    assert "needs the coder profile" in errors["code"][0]
    assert not Rule.objects.exists() and not Check.objects.exists()


def test_admin_dataset_choices_are_the_editable_ones(admin_as, orders_flow, other_project):
    Dataset.objects.create(
        project=other_project, name="staff", connection=orders_flow["raw"].connection
    )
    form = admin_as("editor").get("/admin/quality/metric/add/").context["adminform"].form
    assert {d.name for d in form.fields["dataset"].queryset} == {
        "raw_orders", "orders_clean", "orders_by_day", "orders_by_day_pg",
    }  # fmt: skip
    assert admin_as("reader").get("/admin/quality/metric/add/").status_code == 403


def test_admin_actions_and_history(admin_as, orders_flow, raw_metric):
    said = messages_of(
        action(admin_as("editor"), "/admin/quality/metric/", "compute_now", raw_metric)
    )
    assert said == ["raw_orders: rows = 5.0."]
    Check.objects.create(dataset=orders_flow["raw"], name="few", metric=raw_metric, hard_max=3)
    check = Check.objects.get()
    said = messages_of(action(admin_as("editor"), "/admin/quality/check/", "run_now", check))
    assert said == ["raw_orders: few ERROR (5 is above the hard maximum 3)."]
    refused = messages_of(action(admin_as("reader"), "/admin/quality/check/", "run_now", check))
    assert QualityResult.objects.count() == 1, refused

    page = admin_as("reader").get(f"/admin/quality/metric/{raw_metric.pk}/change/")
    assert page.status_code == 200 and "Latest values" in page.content.decode()
    form = {"name": "count", "kind": "row_count", "column": "", "sql": "",
            "values-TOTAL_FORMS": 1, "values-INITIAL_FORMS": 1, "values-MIN_NUM_FORMS": 0,
            "values-MAX_NUM_FORMS": 1000}  # fmt: skip
    saved = admin_as("editor").post(f"/admin/quality/metric/{raw_metric.pk}/change/", form)
    assert saved.status_code == 302, admin_errors(saved)
    assert Metric.objects.get(pk=raw_metric.pk).name == "count"
    assert MetricValue.objects.count() == 1


def test_admin_pages_render(admin_as, orders_flow, raw_metric):
    check = Check.objects.create(dataset=raw_metric.dataset, name="c", metric=raw_metric, code="x")
    rule = Rule.objects.create(dataset=raw_metric.dataset, name="r", kind="not_empty")
    for role in ("editor", "reader"):
        client = admin_as(role)
        for kind, obj in (("metric", raw_metric), ("check", check), ("rule", rule)):
            assert client.get(f"/admin/quality/{kind}/").status_code == 200
            assert client.get(f"/admin/quality/{kind}/{obj.pk}/change/").status_code == 200
            add = client.get(f"/admin/quality/{kind}/add/")
            assert add.status_code == (200 if role == "editor" else 403)
    page = admin_as("editor").get(f"/admin/quality/check/{check.pk}/change/")
    assert "code" not in page.context["adminform"].form.fields  # read-only for a designer
    assert (
        admin_as("outsider").get(f"/admin/quality/metric/{raw_metric.pk}/change/").status_code
        == 404
    )
