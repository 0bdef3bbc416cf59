"""Flow on a 5-million-row CSV: Cadenza's metrics and a SQL recipe build, each beside the
same query in bare DuckDB (the floor; its connection made untimed), run just before it in the
same process, five times. Best of each. Target: ≤ 1.2× bare DuckDB."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import duckdb

from bench.stack import embedded_env, python
from bench.stats import Figure

ROWS = 5_000_000
REPEAT = 5
METRICS_SQL = (
    "SELECT count(*), min(amount), max(amount), avg(amount), "
    "count(*) - count(amount), count(DISTINCT day) FROM read_csv(['{csv}'], "
    "header = true, auto_detect = true) AS t"
)
BUILD_SQL = (
    "COPY (SELECT day, sum(amount) AS amount FROM read_csv(['{csv}'], header = true, "
    "auto_detect = true) GROUP BY day) TO '{out}' (HEADER, FORMAT csv)"
)

# Runs in a Django process on an embedded (SQLite) installation.
CADENZA = """
import json, time, django, os
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from apps.projects.models import Project
from apps.flow.models import Connection, Dataset, Recipe
from apps.flow import build
from apps.flow.recipes import RecipeRun
from apps.quality.models import Metric
from apps.quality.services import metrics_compute
import threading
root = os.environ["BENCH_ROOT"]
from django.contrib.auth import get_user_model
user = get_user_model().objects.create_user("bench")
project = Project.objects.create(key="BENCH", name="bench")
files = Connection.objects.create(name="files", kind="filesystem", config={{"root": root}})
raw = Dataset.objects.create(project=project, name="orders", connection=files, format="csv",
                             path="orders.csv")
out = Dataset.objects.create(project=project, name="daily", connection=files, format="csv",
                             path="daily.csv")
recipe = Recipe.objects.create(project=project, name="daily", kind="sql",
    code="SELECT day, sum(amount) AS amount FROM orders GROUP BY day")
recipe.inputs.set([raw]); recipe.outputs.set([out])
for name, kind, column in [("rows", "row_count", ""), ("low", "min", "amount"),
        ("high", "max", "amount"), ("mean", "mean", "amount"), ("nulls", "nulls", "amount"),
        ("days", "distinct", "day")]:
    Metric.objects.create(dataset=raw, name=name, kind=kind, column=column)
import duckdb
def bare(sql):
    with duckdb.connect() as con:
        start = time.perf_counter()
        con.execute(sql).fetchall()
        return time.perf_counter() - start
times = {{"metrics": [], "build": [], "bare_metrics": [], "bare_build": []}}
for _ in range({repeat}):  # each beside its floor, the moment before
    times["bare_metrics"].append(bare({metrics_sql!r}))
    start = time.perf_counter(); metrics_compute(Dataset.objects.get(pk=raw.pk))
    times["metrics"].append(time.perf_counter() - start)
    times["bare_build"].append(bare({build_sql!r}))
    start = time.perf_counter()
    build.build([Dataset.objects.get(pk=out.pk)], "force",
                RecipeRun(log=lambda *a, **k: None, cancel=threading.Event(), user=user))
    times["build"].append(time.perf_counter() - start)
print(json.dumps(times))
"""


def _generate(csv: Path) -> None:
    with duckdb.connect() as con:
        con.execute(f"""COPY (SELECT i AS id, DATE '2026-01-01' + CAST(i % 365 AS INTEGER) AS day,
            CASE WHEN i % 97 = 0 THEN NULL ELSE (i % 1000) / 10.0 END AS amount,
            'c' || (i % 5000) AS customer FROM range({ROWS}) t(i))
            TO '{csv}' (HEADER, FORMAT csv)""")


def run() -> list[Figure]:
    root = Path(tempfile.mkdtemp(prefix="cadenza-bench-flow-"))
    try:
        csv = root / "orders.csv"
        _generate(csv)
        script = CADENZA.format(
            repeat=REPEAT,
            metrics_sql=METRICS_SQL.format(csv=csv),
            build_sql=BUILD_SQL.format(csv=csv, out=root / "bare.csv"),
        )
        env = {
            **embedded_env(root / "var"),
            "BENCH_ROOT": str(root),
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
        measured = json.loads(python(env, "-c", script, timeout=600).strip().splitlines()[-1])
        bare_metrics, bare_build = measured["bare_metrics"], measured["bare_build"]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    size_note = {"rows": ROWS, "repeat": REPEAT, "stat": "best of runs, seconds"}
    return [
        Figure(
            "flow",
            "metrics on a 5M-row CSV (6 metrics, one query)",
            "s",
            {"value": min(measured["metrics"])},
            "bare DuckDB, same aggregates",
            {"value": min(bare_metrics)},
            REPEAT,
            ("value", 1.2 * min(bare_metrics)),
            {**size_note, "cadenza": measured["metrics"], "bare": bare_metrics},
        ),
        Figure(
            "flow",
            "SQL recipe build on a 5M-row CSV (group by day → CSV)",
            "s",
            {"value": min(measured["build"])},
            "bare DuckDB COPY (same query)",
            {"value": min(bare_build)},
            REPEAT,
            ("value", 1.2 * min(bare_build)),
            {**size_note, "cadenza": measured["build"], "bare": bare_build},
        ),
    ]
