from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

import pytest
from django.db import connection as django_connection

from apps.flow.models import Connection, Dataset, Recipe
from apps.flow.recipes import RecipeRun
from apps.flow.services import connection_password_set

RAW = """order_id,day,amount,status
1,2026-01-01,10.5,ok
2,2026-01-01,4.5,ok
3,2026-01-02,7.0,cancelled
4,2026-01-02,3.0,ok
5,2026-01-03,1.0,ok
"""


@pytest.fixture
def files_connection(db):
    root = Path(tempfile.mkdtemp(prefix="cadenza-flow-"))
    yield Connection.objects.create(name="files", kind="filesystem", config={"root": str(root)})
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_connection(db):
    """The test PostgreSQL database, reached as any warehouse would be (its password
    stored as a connection's secret)."""
    settings_dict = django_connection.settings_dict
    connection = Connection(
        name="warehouse",
        kind="postgresql",
        config={
            "host": settings_dict["HOST"],
            "port": int(settings_dict["PORT"]),
            "database": settings_dict["NAME"],
            "user": settings_dict["USER"],
        },
    )
    connection_password_set(connection, password=settings_dict["PASSWORD"], clear=False)
    connection.save()
    return connection


@pytest.fixture
def orders_flow(project, files_connection, pg_connection):
    """raw_orders.csv → (SQL) orders_clean → (Python) orders_by_day → (sync) orders_by_day_pg"""
    root = Path(files_connection.config["root"])
    (root / "raw_orders.csv").write_text(RAW)

    def dataset(name, connection, fmt, path=""):
        return Dataset.objects.create(
            project=project, name=name, connection=connection, format=fmt, path=path
        )

    raw = dataset("raw_orders", files_connection, "csv", "raw_orders.csv")
    clean = dataset("orders_clean", files_connection, "csv", "clean/orders_clean.csv")
    by_day = dataset("orders_by_day", files_connection, "parquet", "by_day")
    pg = dataset("orders_by_day_pg", pg_connection, "table")

    def recipe(name, kind, code, inputs, outputs):
        made = Recipe.objects.create(project=project, name=name, kind=kind, code=code)
        made.inputs.set(inputs)
        made.outputs.set(outputs)
        return made

    recipe(
        "clean",
        "sql",
        "SELECT order_id, day, amount FROM raw_orders WHERE status = 'ok'",
        [raw],
        [clean],
    )
    recipe(
        "by_day",
        "python",
        (
            "from cadenza.datasets import read_dataset, write_dataset\n"
            "orders = read_dataset('orders_clean')\n"
            "daily = orders.groupby('day', as_index=False)['amount'].sum()\n"
            "print(f'{len(daily)} days')\n"
            "write_dataset('orders_by_day', daily)\n"
        ),
        [clean],
        [by_day],
    )
    recipe("to_pg", "sync", "", [by_day], [pg])
    return {"raw": raw, "clean": clean, "by_day": by_day, "pg": pg, "root": root}


@pytest.fixture
def recipe_run(project, cast):
    lines: list[str] = []
    return RecipeRun(
        log=lambda message, level="info": lines.append(message),
        cancel=threading.Event(),
        timeout=60,
        user=cast["owner"],
    ), lines
