"""An editor's SQL — a recipe's or a custom metric's — runs in the worker's own process, not in
the sandbox: DuckDB (over files) and SQLite must keep it to the datasets it was given.

Before `storage.duckdb_connect`, a metric's ``COPY … TO`` wrote any file the worker may write
(a ``.pth`` file in the virtualenv is code run by the next process) and a recipe's
``read_text('/proc/self/environ')`` copied the worker's secrets into a dataset.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.flow import build as engine
from apps.flow.models import Connection, Dataset, Recipe
from apps.flow.recipes import RecipeRun
from apps.flow.storage import FlowError, read_only_rows, sql_connect
from apps.quality.models import Metric
from apps.quality.services import metrics_compute
from apps.triggers.models import Trigger
from apps.triggers.services import trigger_evaluate, trigger_save
from tests.conftest import make_user
from tests.flow.conftest import pg_connection  # noqa: F401 (a fixture)
from tests.triggers.conftest import edition  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]
SECRET = "hr-payroll-4711"  # in the other project's file only


@pytest.fixture
def files(tmp_path, project, other_project):
    """SALES's orders and HR's payroll on one shared folder connection."""
    root = tmp_path / "data"
    root.mkdir()
    (root / "orders.csv").write_text("id,amount\n1,10\n2,32\n")
    (root / "payroll.csv").write_text(f"name,salary\nalice,{SECRET}\n")
    connection = Connection.objects.create(
        name="files", kind="filesystem", config={"root": str(root)}
    )
    orders = Dataset.objects.create(project=project, name="orders", connection=connection,
                                    format="csv", path="orders.csv")  # fmt: skip
    Dataset.objects.create(project=other_project, name="payroll", connection=connection,
                           format="csv", path="payroll.csv")  # fmt: skip
    out = Dataset.objects.create(project=project, name="report", connection=connection,
                                 format="csv", path="report.csv")  # fmt: skip
    return {"root": root, "orders": orders, "out": out, "user": make_user("designer")}


def build(files, code: str) -> Path:
    recipe, _ = Recipe.objects.update_or_create(
        project=files["orders"].project, name="report", defaults={"kind": "sql", "code": code}
    )
    recipe.inputs.set([files["orders"]])
    recipe.outputs.set([files["out"]])
    run = RecipeRun(log=lambda *args, **kwargs: None, cancel=threading.Event(), timeout=60,
                    user=files["user"])  # fmt: skip
    engine.build([Dataset.objects.get(pk=files["out"].pk)], "force", run)
    return files["root"] / "report.csv"


def test_a_recipe_reads_its_inputs_and_writes_its_output(files):
    written = build(files, "SELECT sum(amount) AS total FROM orders")
    assert written.read_text().split() == ["total", "42"]
    # A build that died mid-write left its staging file: the next one writes over it.
    (files["root"] / ".report.csv.writing").write_text("half")
    assert build(files, "SELECT count(*) AS n FROM orders").read_text().split() == ["n", "2"]


@pytest.mark.parametrize(
    "code",
    [
        "SELECT content FROM read_text('/proc/self/environ')",  # SECRET_KEY, database password
        "SELECT * FROM read_csv('{root}/payroll.csv')",  # the other project's data, same folder
        "SELECT * FROM read_csv('{root}/../data/payroll.csv')",
        "SELECT * FROM glob('{root}/*')",
        "SELECT content FROM read_text('{settings}')",
        "SELECT * FROM read_csv('http://127.0.0.1:9/data.csv')",
    ],
)
def test_a_recipe_cannot_reach_past_its_datasets(files, code):
    code = code.format(root=files["root"], settings=Path(settings.BASE_DIR) / "config/settings.py")
    with pytest.raises(FlowError, match=r"SQL recipe report: Permission Error") as refused:
        build(files, code)
    assert SECRET not in str(refused.value) and settings.SECRET_KEY not in str(refused.value)
    assert not (files["root"] / "report.csv").exists()
    assert not (files["root"] / ".report.csv.writing").exists()


def test_a_custom_metric_counts_its_dataset(files):
    Metric.objects.create(dataset=files["orders"], name="big", kind="sql",
                          sql="SELECT count(*) FROM orders WHERE amount > 20")  # fmt: skip
    assert metrics_compute(files["orders"]) == {"big": 1.0}


@pytest.mark.parametrize(
    ("sql", "error"),
    [
        ("COPY (SELECT 42 AS x) TO '{target}'", "Permission Error"),
        ("EXPORT DATABASE '{root}/export'", "Permission Error"),
        ("ATTACH '{root}/stolen.duckdb' AS stolen", "Permission Error"),
        ("SELECT count(*) FROM read_csv('{root}/payroll.csv')", "Permission Error"),
        ("INSTALL httpfs", "Permission Error"),
        ("LOAD httpfs", "Permission Error"),
        ("SET enable_external_access = true", "Cannot change configuration option"),
        ("SET allowed_directories = ['/']", "Cannot change configuration option"),
        ("SET memory_limit = '1TB'", "Cannot change configuration option"),
    ],
)
def test_a_custom_metric_cannot_write_attach_install_or_unlock(files, sql, error):
    target = files["root"] / "pwned.csv"
    Metric.objects.create(dataset=files["orders"], name="evil", kind="sql",
                          sql=sql.format(target=target, root=files["root"]))  # fmt: skip
    with pytest.raises(FlowError, match=f"Metric evil: .*{error}"):
        metrics_compute(files["orders"])
    assert sorted(path.name for path in files["root"].iterdir()) == ["orders.csv", "payroll.csv"]


@pytest.fixture
def sqlite_dataset(tmp_path, project):
    """A SQLite connection beside another database (Cadenza's own, in the embedded mode)."""
    other = tmp_path / "cadenza.sqlite3"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE auth_user (password TEXT)")
        db.execute("INSERT INTO auth_user VALUES ('pbkdf2$secret')")
    path = tmp_path / "warehouse.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE sales (amount INTEGER)")
        db.execute("INSERT INTO sales VALUES (10), (32)")
    connection = Connection.objects.create(name="dwh", kind="sqlite", config={"path": str(path)})
    dataset = Dataset.objects.create(project=project, name="sales", connection=connection,
                                     format="table", table="sales")  # fmt: skip
    return dataset, other


def test_sql_on_a_sqlite_connection_stays_in_its_file(sqlite_dataset, tmp_path):
    dataset, other = sqlite_dataset
    Metric.objects.create(dataset=dataset, name="total", kind="sql",
                          sql="SELECT sum(amount) FROM sales")  # fmt: skip
    assert metrics_compute(dataset) == {"total": 42.0}
    for sql in (f"ATTACH '{other}' AS cadenza", f"VACUUM INTO '{tmp_path}/copy.sqlite3'"):
        with (
            sql_connect(dataset.connection) as db,
            pytest.raises(sqlite3.DatabaseError, match="not authorized|authorization denied"),
        ):
            db.execute(sql)
    assert not (tmp_path / "copy.sqlite3").exists()
    Metric.objects.filter(dataset=dataset).update(sql=f"ATTACH '{other}' AS cadenza")
    with pytest.raises(FlowError, match="Metric total: not authorized"):
        metrics_compute(dataset)


# -- SQL that must only read: a SQL-change trigger's query, a custom metric on a database ------


@pytest.fixture
def salaries(tmp_path):
    """A SQLite warehouse with one table, on a connection kept to the finance group."""
    path = tmp_path / "hr.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE salaries (who TEXT, pay INTEGER)")
        db.execute("INSERT INTO salaries VALUES ('ceo', 999999)")
    connection = Connection.objects.create(name="hrdb", kind="sqlite", config={"path": str(path)})
    connection.allowed_groups.set([Group.objects.create(name="finance")])

    def rows() -> int:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT count(*) FROM salaries").fetchone()[0]

    return connection, rows


def test_a_sql_trigger_needs_a_connection_its_writer_may_use(
    cast, api, make_scenario, salaries, edition
):
    connection, _ = salaries
    scenario = make_scenario(run_as=cast["editor"])
    body = {"scenario": scenario.pk, "name": "peek", "kind": "sql_change",
            "params": {"connection": "hrdb", "sql": "SELECT who, pay FROM salaries"}}  # fmt: skip
    edition("team")
    refused = api(cast["editor"]).post("/api/v1/projects/SALES/triggers/", body, format="json")
    assert refused.status_code == 400
    assert refused.json() == {"params": ["connection: You may not use the connection hrdb."]}
    cast["editor"].groups.add(connection.allowed_groups.get())
    created = api(cast["editor"]).post("/api/v1/projects/SALES/triggers/", body, format="json")
    assert created.status_code == 201, created.json()
    # The run-as user leaves the group: the trigger no longer reads the table.
    cast["editor"].groups.clear()
    trigger = Trigger.objects.get(pk=created.json()["id"])
    evaluation = trigger_evaluate(trigger, timezone.now())
    assert (evaluation.result, evaluation.message) == (
        "error", f"{cast['editor']} may not use the connection hrdb.",
    )  # fmt: skip


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM salaries",
        "UPDATE salaries SET pay = 0",
        "SELECT 1; DELETE FROM salaries",
        "INSERT INTO salaries VALUES ('intern', 1)",
        "ATTACH ':memory:' AS other",
        "CREATE TABLE stolen AS SELECT * FROM salaries",
    ],
)
def test_a_sql_trigger_or_metric_on_sqlite_cannot_write(
    cast, salaries, make_scenario, project, no_dispatch, edition, sql
):
    connection, rows = salaries
    edition("team")
    cast["owner"].groups.add(connection.allowed_groups.get())
    trigger = Trigger(scenario=make_scenario(), name="t", kind="sql_change",
                      params={"connection": "hrdb", "sql": sql})  # fmt: skip
    trigger = trigger_save(trigger, user=cast["owner"])
    evaluation = trigger_evaluate(trigger, timezone.now())
    assert evaluation.result == "error" and evaluation.message.startswith("The query failed")
    dataset = Dataset.objects.create(project=project, name="salaries", connection=connection,
                                     format="table", table="salaries")  # fmt: skip
    Metric.objects.create(dataset=dataset, name="evil", kind="sql", sql=sql)
    with pytest.raises(FlowError, match="Metric evil: "):
        metrics_compute(dataset)
    assert rows() == 1


@pytest.fixture
def pg_warehouse(pg_connection):  # noqa: F811
    """The test PostgreSQL database as a warehouse connection, with a table to protect."""
    connection = pg_connection
    with sql_connect(connection) as pg:
        pg.cursor().execute("DROP TABLE IF EXISTS payroll; CREATE TABLE payroll (pay int)")
        pg.cursor().execute("INSERT INTO payroll VALUES (1), (2)")
    return connection


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM payroll",
        "SET TRANSACTION READ WRITE; DELETE FROM payroll; COMMIT",
        "COMMIT; DELETE FROM payroll",
        "WITH gone AS (DELETE FROM payroll RETURNING 1) SELECT count(*) FROM gone",
    ],
)
def test_a_sql_trigger_on_postgresql_runs_one_read_only_statement(
    cast, pg_warehouse, make_scenario, no_dispatch, edition, sql
):
    edition("team")
    trigger = Trigger(scenario=make_scenario(), name="t", kind="sql_change",
                      params={"connection": pg_warehouse.name, "sql": sql})  # fmt: skip
    trigger = trigger_save(trigger, user=cast["owner"])
    evaluation = trigger_evaluate(trigger, timezone.now())
    assert evaluation.result == "error", evaluation
    assert (
        "read-only transaction" in evaluation.message or "multiple commands" in evaluation.message
    )
    with sql_connect(pg_warehouse) as pg:
        cursor = pg.cursor()
        cursor.execute("SELECT count(*) FROM payroll")
        assert cursor.fetchone()[0] == 2
    reading = Trigger.objects.filter(pk=trigger.pk)
    reading.update(params={"connection": pg_warehouse.name, "sql": "SELECT sum(pay) FROM payroll"})
    assert trigger_evaluate(reading.get(), timezone.now()).result == "unchanged"  # a baseline


def test_read_only_sql_on_sqlite_still_reads_virtual_tables(salaries):
    connection, _ = salaries
    with sqlite3.connect(connection.config["path"]) as db:
        db.execute("CREATE VIRTUAL TABLE notes USING fts5(body)")
        db.execute("INSERT INTO notes VALUES ('quarterly close'), ('payroll run')")
    assert read_only_rows(connection, "SELECT count(*) FROM notes WHERE notes MATCH 'payroll'")
    assert read_only_rows(connection, "SELECT count(*) FROM json_each('[1, 2, 3]')") == [(3,)]
    assert read_only_rows(connection, "SELECT name FROM pragma_table_info('salaries')") == [
        ("who",),
        ("pay",),
    ]


def test_read_only_sql_is_stopped_after_its_timeout(salaries, pg_warehouse):
    connection, _ = salaries
    forever = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n"
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        read_only_rows(connection, forever, timeout=0.3)
    with pytest.raises(psycopg.errors.QueryCanceled):
        read_only_rows(pg_warehouse, "SELECT pg_sleep(30)", timeout=0.3)


def test_a_teammate_edits_a_sql_trigger_whose_connection_is_not_theirs(
    cast, salaries, make_scenario, edition
):
    connection, _ = salaries
    edition("team")
    cast["owner"].groups.add(connection.allowed_groups.get())
    trigger = trigger_save(Trigger(scenario=make_scenario(), name="peek", kind="sql_change",
                                   params={"connection": "hrdb", "sql": "SELECT 1"}),
                           user=cast["owner"])  # fmt: skip
    trigger.name, trigger.grace_seconds = "renamed", 30
    trigger = trigger_save(trigger, user=cast["editor"])  # not a use of the connection
    assert Trigger.objects.get(pk=trigger.pk).name == "renamed"
    trigger.params = {"connection": "hrdb", "sql": "SELECT who FROM salaries"}
    with pytest.raises(ValidationError, match="You may not use the connection hrdb"):
        trigger_save(trigger, user=cast["editor"])
    trigger.refresh_from_db()
    trigger.enabled = False
    trigger = trigger_save(trigger, user=cast["editor"])  # switching it off is always allowed
    trigger.enabled = True
    with pytest.raises(ValidationError, match="You may not use the connection hrdb"):
        trigger_save(trigger, user=cast["editor"])
