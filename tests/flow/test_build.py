"""The build engine on real files (DuckDB), the sandbox (Python) and PostgreSQL (sync)."""

from __future__ import annotations

import os
import time

import pytest

from apps.flow import build as engine
from apps.flow import storage
from apps.flow.models import Dataset, Recipe
from apps.flow.storage import FlowError, sql_connect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def ran(flow, mode, recipe_run, target="pg"):
    run, _ = recipe_run
    return [item["recipe"] for item in engine.build([fresh(flow[target])], mode, run)]


def fresh(dataset: Dataset) -> Dataset:
    return Dataset.objects.select_related("connection", "project").get(pk=dataset.pk)


def stale_names(flow) -> set[str]:
    order = engine.upstream_order([fresh(flow["pg"])])
    ids = engine.stale(order)
    return {d.name for d in order if d.pk in ids}


def pg_rows(flow):
    with sql_connect(flow["pg"].connection) as db:
        cursor = db.cursor()
        cursor.execute('SELECT day, amount FROM "orders_by_day_pg" ORDER BY day')
        return [(str(day)[:10], float(amount)) for day, amount in cursor.fetchall()]


def test_missing_builds_the_whole_chain_and_the_data_is_right(orders_flow, recipe_run):
    assert ran(orders_flow, "missing", recipe_run) == ["clean", "by_day", "to_pg"]
    assert pg_rows(orders_flow) == [("2026-01-01", 15.0), ("2026-01-02", 3.0), ("2026-01-03", 1.0)]
    clean = fresh(orders_flow["clean"])
    assert clean.row_count == 4 and clean.built_by.name == "clean"
    assert [c["name"] for c in clean.schema] == ["order_id", "day", "amount"]
    # The SQL recipe's own reading of the file it wrote: what any reader detects in it.
    assert clean.schema == storage.read_schema(clean)
    assert [c["type"] for c in clean.schema] == ["BIGINT", "DATE", "DOUBLE"]
    assert "3 days" in recipe_run[1]
    assert ran(orders_flow, "missing", recipe_run) == []
    assert ran(orders_flow, "required", recipe_run) == []


def test_an_upstream_edit_makes_exactly_the_downstream_out_of_date(orders_flow, recipe_run):
    ran(orders_flow, "missing", recipe_run)
    assert stale_names(orders_flow) == set()
    Recipe.objects.get(name="by_day").save()  # an edit of the Python recipe
    assert stale_names(orders_flow) == {"orders_by_day", "orders_by_day_pg"}
    assert ran(orders_flow, "required", recipe_run) == ["by_day", "to_pg"]
    raw_file = orders_flow["root"] / "raw_orders.csv"
    later = time.time() + 5
    os.utime(raw_file, (later, later))  # new data arrived in the source file
    assert stale_names(orders_flow) == {"orders_clean", "orders_by_day", "orders_by_day_pg"}
    assert ran(orders_flow, "required", recipe_run) == ["clean", "by_day", "to_pg"]


def test_only_this_and_force(orders_flow, recipe_run):
    ran(orders_flow, "missing", recipe_run)
    assert ran(orders_flow, "only", recipe_run, target="by_day") == ["by_day"]
    assert ran(orders_flow, "force", recipe_run) == ["clean", "by_day", "to_pg"]


def test_missing_after_a_clear_rebuilds_only_what_was_cleared(orders_flow, recipe_run):
    ran(orders_flow, "missing", recipe_run)
    engine.dataset_clear(fresh(orders_flow["by_day"]))
    by_day = fresh(orders_flow["by_day"])
    assert by_day.built_at is None and not (orders_flow["root"] / "by_day").exists()
    assert Dataset.objects.filter(pk=by_day.pk).exists()  # the definition stays
    assert ran(orders_flow, "missing", recipe_run) == ["by_day"]


def test_cycles_are_refused_with_the_path(orders_flow, project, recipe_run):
    back = Recipe.objects.create(project=project, name="back", kind="sql", code="SELECT 1")
    back.inputs.set([orders_flow["by_day"]])
    back.outputs.set([orders_flow["raw"]])
    with pytest.raises(FlowError, match="cycle: .*raw_orders.*orders_by_day"):
        engine.plan([fresh(orders_flow["pg"])], "required")


def test_broken_sql_names_the_recipe_and_the_error(orders_flow, recipe_run):
    Recipe.objects.filter(name="clean").update(code="SELECT no_such_column FROM raw_orders")
    with pytest.raises(FlowError, match="SQL recipe clean: .*no_such_column"):
        ran(orders_flow, "missing", recipe_run)
    assert fresh(orders_flow["clean"]).built_at is None


@pytest.mark.parametrize(
    ("code", "rows"),
    [
        ("SELECT order_id FROM raw_orders WHERE status = 'ok'", 4),
        ("FROM raw_orders SELECT order_id", 5),  # DuckDB's FROM first
        (
            "-- a comment\nwith /* another */ ok AS (SELECT * FROM raw_orders WHERE status = 'ok')"
            " SELECT order_id FROM ok",
            4,
        ),
        (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) "
            "SELECT order_id FROM raw_orders, n WHERE order_id = i",
            3,
        ),
        ("(SELECT order_id FROM raw_orders) UNION ALL (SELECT 9)", 6),
        # A WITH may not lead these: the inputs are views, as ever.
        (
            "WITH raw_orders AS (SELECT * FROM temp.raw_orders WHERE day = '2026-01-01') "
            "SELECT order_id FROM raw_orders",
            2,
        ),  # a CTE of the input's name
        ("SELECT order_id FROM temp.raw_orders", 5),  # the view, by its schema
        ("SUMMARIZE raw_orders", 4),  # a row per column
    ],
)
def test_a_sql_recipe_reads_its_inputs_by_name_whatever_the_statement(
    orders_flow, recipe_run, code, rows
):
    Recipe.objects.filter(name="clean").update(code=code)
    run, _ = recipe_run
    engine.build([fresh(orders_flow["clean"])], "only", run)
    assert fresh(orders_flow["clean"]).row_count == rows


def test_a_built_csv_is_read_as_it_was_written(orders_flow, project, recipe_run):
    """One column of "a;b;…" values: DuckDB's sniffer, guessing the dialect, read three
    columns. A file a build wrote (and nobody changed since) is read with the dialect it was
    written in; a file changed by hand is sniffed again."""
    Recipe.objects.filter(name="clean").update(
        code="SELECT 'x;y;' || order_id AS note FROM raw_orders"
    )
    files = orders_flow["clean"].connection
    notes = Dataset.objects.create(project=project, name="notes", connection=files,
                                   format="csv", path="notes.csv")  # fmt: skip
    again = Recipe.objects.create(project=project, name="again", kind="sql",
                                  code="SELECT note FROM orders_clean")  # fmt: skip
    again.inputs.set([orders_flow["clean"]])
    again.outputs.set([notes])
    run, _ = recipe_run
    engine.build([fresh(notes)], "missing", run)
    clean = fresh(orders_flow["clean"])
    assert [c["name"] for c in clean.schema] == ["note"]
    assert storage.read_schema(clean) == clean.schema
    assert fresh(notes).row_count == 5
    assert storage.query_rows(fresh(notes), "SELECT min(note) FROM {source}") == [("x;y;1",)]
    # Replaced by hand: no longer the build's file, so its dialect is detected.
    path = orders_flow["root"] / "clean" / "orders_clean.csv"
    path.write_text("a;b\n1;2\n")
    later = clean.built_at.timestamp() + 5
    os.utime(path, (later, later))
    assert [c["name"] for c in storage.read_schema(fresh(clean))] == ["a", "b"]


def test_mixed_connections_need_a_sync(orders_flow, project, recipe_run):
    mixed = Recipe.objects.create(project=project, name="mixed", kind="sql", code="SELECT 1")
    out = Dataset.objects.create(
        project=project, name="mixed_out", connection=orders_flow["pg"].connection, format="table"
    )
    mixed.inputs.set([orders_flow["raw"]])
    mixed.outputs.set([out])
    with pytest.raises(FlowError, match="share one connection"):
        engine.build([fresh(out)], "only", recipe_run[0])


def test_a_path_cannot_leave_the_connection_root(orders_flow, project):
    from apps.flow.storage import files_path

    evil = Dataset(
        project=project,
        name="evil",
        connection=orders_flow["raw"].connection,
        path="../../etc/passwd",
    )
    with pytest.raises(FlowError, match="leaves the connection's root"):
        files_path(evil)


def test_a_process_ends_cleanly_while_a_connection_closes_in_the_background(tmp_path):
    """close_later's thread closes after the caller has gone on; the interpreter waits for it
    at exit (a daemon thread stopped inside DuckDB's close aborted the process)."""
    import subprocess
    import sys

    script = (
        "import django; django.setup()\n"
        "from apps.flow import storage\n"
        "con = storage.duckdb_connect()\n"
        "con.execute('CREATE TEMP TABLE t AS SELECT i, i % 7 AS k FROM range(3000000) r(i)')\n"
        "assert con.execute('SELECT count(DISTINCT k) FROM t').fetchone() == (7,)\n"
        "storage.close_later(con)\n"
        "print('done')\n"
    )
    env = {
        **os.environ,
        "CADENZA_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    env.pop("DATABASE_URL", None), env.pop("REDIS_URL", None)
    ended = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    assert (ended.returncode, ended.stdout.strip()) == (0, "done"), ended.stderr[-2000:]
