"""What the demo project holds, as plain data; apps/demo/services.py creates it.

The flow: orders.csv → (SQL) orders_by_day → checks, rules, a chart; orders → (Python)
order_features → a model; the drop folder → (SQL) dropped_orders; run_log is written by a
reporter. Names are the stable keys re-seeding goes by: renaming one here adds a new object.
"""

from __future__ import annotations

PROJECT = {
    "key": "DEMO",
    "name": "Demo: orders",
    "description": (
        'Seeded by `make run` (turn off with CADENZA_DEMO=0). "Build and check" runs every '
        'minute; "Retrain model" follows it; "Ingest drop folder" reads CSV files dropped in '
        "the connection folder's demo/drop/. Edit or delete anything: re-seeding never "
        "overwrites, and never brings back what you deleted."
    ),
    "variables": {"demo": True},
}
CONNECTION = "filesystem"  # root: the default, CADENZA_VAR_DIR/data

# name → (path under the connection root, format)
DATASETS = {
    "orders": ("demo/orders.csv", "csv"),
    "orders_by_day": ("demo/orders_by_day.csv", "csv"),
    "order_features": ("demo/order_features.parquet", "parquet"),
    "drop_folder": ("demo/drop", "csv"),
    "dropped_orders": ("demo/dropped_orders.csv", "csv"),
    "run_log": ("demo/run_log.csv", "csv"),
}
# path under the connection root → name of the function of apps.demo.data writing it
FILES = {
    "demo/orders.csv": "orders_csv",
    "demo/drop/orders-week-18.csv": "drop_sample_csv",
    # A dot file: storage.files_of skips it, so it is neither read as data nor a change.
    "demo/drop/.README.txt": "drop_readme",
}

RECIPES = [
    {
        "name": "aggregate_by_day",
        "kind": "sql",
        "code": (
            "SELECT day, count(*) AS orders, round(sum(amount), 2) AS revenue,\n"
            "       round(avg(amount), 2) AS avg_amount, sum(returned) AS returns\n"
            "FROM orders\nGROUP BY day\nORDER BY day"
        ),
        "inputs": ["orders"],
        "outputs": ["orders_by_day"],
    },
    {
        "name": "prepare_features",
        "kind": "python",
        "code": (
            "from cadenza.datasets import read_dataset, write_dataset\n\n"
            'orders = read_dataset("orders")\n'
            'columns = ["region", "product", "quantity", "unit_price", "discount", "returned"]\n'
            "features = orders[columns]\n"
            "print(f\"{len(features)} orders, {features['returned'].mean():.1%} returned\")\n"
            'write_dataset("order_features", features)\n'
        ),
        "inputs": ["orders"],
        "outputs": ["order_features"],
    },
    {
        "name": "ingest_drop",
        "kind": "sql",
        "code": "SELECT * FROM drop_folder",
        "inputs": ["drop_folder"],
        "outputs": ["dropped_orders"],
    },
]

# (dataset, name, kind, column)
METRICS = [
    ("orders", "rows", "row_count", ""),
    ("orders", "max amount", "max", "amount"),
    ("orders_by_day", "days", "row_count", ""),
    ("orders_by_day", "mean revenue", "mean", "revenue"),
    ("dropped_orders", "rows", "row_count", ""),
]
# (dataset, name, metric, bounds)
CHECKS = [
    ("orders", "has orders", "rows", {"hard_min": 1}),
    ("orders_by_day", "enough days", "days", {"soft_min": 30, "hard_min": 1}),
]
# (dataset, name, kind, column, params, severity)
RULES = [
    ("orders", "order_id unique", "unique", "order_id", {}, "ERROR"),
    ("orders", "amount in range", "in_range", "amount", {"min": 0, "max": 100000}, "ERROR"),
    (
        "orders",
        "known region",
        "in_set",
        "region",
        {"values": ["North", "South", "East", "West"]},
        "WARNING",
    ),  # fmt: skip
    ("orders_by_day", "not empty", "not_empty", "", {}, "ERROR"),
    ("dropped_orders", "not empty", "not_empty", "", {}, "ERROR"),
]

MODEL = {
    "name": "returns_model",
    "dataset": "order_features",
    "target": "returned",
    "task": "classification",
    "algorithm": "random_forest",
    "params": {"n_estimators": 50, "max_depth": 6},
    "checks": [("accuracy floor", "accuracy", {"soft_min": 0.6})],
}

# name → (dataset, kind, group_by, aggregate, value)
CHARTS = {
    "Revenue by day": ("orders_by_day", "line", "day", "sum", "revenue"),
    "Orders by region": ("orders", "bar", "region", "count", ""),
}
DASHBOARD = {"name": "Orders overview", "charts": list(CHARTS)}

BUILD_AND_CHECK = "Build and check"
RETRAIN = "Retrain model"
INGEST = "Ingest drop folder"
SCENARIOS = [
    {
        "name": BUILD_AND_CHECK,
        "description": "Rebuild what is out of date, then measure and check it.",
        "steps": [
            {"name": "Build daily totals", "type": "build",
             "params": {"datasets": ["orders_by_day"], "mode": "required"}},
            {"name": "Compute metrics", "type": "compute_metrics",
             "params": {"datasets": ["orders", "orders_by_day"]}},
            {"name": "Run checks", "type": "run_checks",
             "params": {"datasets": ["orders", "orders_by_day"]}},
            {"name": "Verify rules", "type": "verify_rules",
             "params": {"datasets": ["orders", "orders_by_day"]}},
            {"name": "Refresh charts", "type": "refresh_charts",
             "params": {"charts": list(CHARTS)}},
        ],
    },
    {
        "name": RETRAIN,
        "description": "After each build: retrain the model when its features changed.",
        "steps": [
            {"name": "Refresh features", "type": "build",
             "params": {"datasets": ["order_features"], "mode": "required"}},
            # Training on unchanged data would only pile up identical versions every minute.
            {"name": "Train", "type": "train_model", "params": {"model": MODEL["name"]},
             "run_condition": "expression",
             "condition_expression": "len(stepOutput_Refresh_features['recipes']) > 0"},
            {"name": "Check the model", "type": "run_model_checks",
             "params": {"model": MODEL["name"]}},
        ],
    },
    {
        "name": INGEST,
        "description": "Read the CSV files of the drop folder into dropped_orders.",
        "steps": [
            {"name": "Ingest", "type": "build",
             "params": {"datasets": ["dropped_orders"], "mode": "required"}},
            {"name": "Count rows", "type": "compute_metrics",
             "params": {"datasets": ["dropped_orders"]}},
            {"name": "Verify rules", "type": "verify_rules",
             "params": {"datasets": ["dropped_orders"]}},
        ],
    },
]  # fmt: skip

# (scenario, name, kind, params, check interval, grace); "after:<name>" names a scenario.
TRIGGERS = [
    (BUILD_AND_CHECK, "Every minute", "time", {"schedule": "every_minutes", "every": 1}, 60, 0),
    (RETRAIN, "After the build", "after_scenario",
     {"scenario": f"after:{BUILD_AND_CHECK}", "outcomes": ["success", "warning"]}, 60, 0),
    # A short grace: a file still being copied in is not read half-written.
    (INGEST, "New files in the drop folder", "dataset_change", {"datasets": ["drop_folder"]},
     5, 2),
]  # fmt: skip

CHANNEL = {"name": "demo_run_log", "kind": "dataset"}
# One reporter only: the dataset transport rewrites the whole file per row, and two
# deliveries at once (runs of two scenarios ending together) could lose one of them.
REPORTER = {"scenario": BUILD_AND_CHECK, "name": "Append to run_log", "dataset": "run_log"}
FIRST_RUN = BUILD_AND_CHECK  # queued once, so the first run needs no minute of waiting
