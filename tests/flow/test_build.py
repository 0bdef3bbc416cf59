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
