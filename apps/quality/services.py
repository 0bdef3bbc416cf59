"""Metrics, checks and data-quality rules, computed where the data lives (DuckDB or SQL)."""

from __future__ import annotations

import sqlite3

import psycopg

from apps.flow import storage
from apps.flow.models import Connection, Dataset
from apps.flow.storage import FlowError, duckdb, literal, quote
from apps.quality.models import Metric, MetricValue, Outcome, QualityResult, Rule

AGGREGATES = {
    "min": "min({c})",
    "max": "max({c})",
    "mean": "avg({c})",
    "nulls": "count(*) - count({c})",
    "distinct": "count(DISTINCT {c})",
}


def _select(dataset: Dataset, expressions: list[str]) -> list:
    """One row of aggregates over the dataset, computed where the data lives."""
    if not expressions:
        return []
    return list(
        storage.query_rows(dataset, f"SELECT {', '.join(expressions)} FROM {{source}} AS t")[0]
    )


def _custom_sql(dataset: Dataset, metric: Metric):
    if not dataset.connection.is_sql:
        try:
            with storage.duckdb_connect(datasets=[dataset]) as con:
                con.execute(
                    f"CREATE TEMP VIEW {quote(dataset.name)} AS SELECT * FROM "
                    f"{storage.duckdb_source(dataset)}"
                )
                row = con.execute(metric.sql).fetchone()
        except duckdb.Error as error:
            raise FlowError(f"Metric {metric.name}: {error}") from None
    else:
        try:
            row = next(iter(storage.read_only_rows(dataset.connection, metric.sql, limit=1)), None)
        except (psycopg.Error, sqlite3.Error) as error:
            raise FlowError(f"Metric {metric.name}: {error}".strip()) from None
    return row[0] if row else None


def _number(value) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def metrics_compute(dataset: Dataset, *, run=None) -> dict[str, float | None]:
    metrics = list(dataset.metrics.all())
    values: dict[str, float | None] = {}
    aggregated: list[Metric] = []
    expressions: list[str] = []
    for metric in metrics:
        if metric.kind == Metric.Kind.ROW_COUNT:
            aggregated.append(metric)
            expressions.append("count(*)")
        elif metric.kind in Metric.COLUMN_KINDS:
            column = storage.column_sql(dataset, metric.column, f"Metric {metric.name}")
            aggregated.append(metric)
            expressions.append(AGGREGATES[metric.kind].format(c=column))
        elif metric.kind == Metric.Kind.COLUMN_COUNT:
            values[metric.name] = float(len(storage.dataset_columns(dataset)))
        elif metric.kind == Metric.Kind.FILE_SIZE:
            values[metric.name] = (
                None
                if dataset.connection.is_sql
                else float(sum(p.stat().st_size for p in storage.files_of(dataset)))
            )
        else:
            values[metric.name] = _number(_custom_sql(dataset, metric))
    for metric, value in zip(aggregated, _select(dataset, expressions), strict=True):
        values[metric.name] = _number(value)
    MetricValue.objects.bulk_create(
        MetricValue(metric=metric, value=values[metric.name], run=run) for metric in metrics
    )
    return values


def bounds_outcome(value: float | None, holder) -> tuple[str, str]:
    """OK / WARNING (outside soft bounds) / ERROR (outside hard bounds) for ``holder``'s
    soft_min, soft_max, hard_min and hard_max."""
    if value is None:
        return Outcome.ERROR, "The metric has no value (never computed, or empty)."
    for bound, low, outcome in (
        (holder.hard_min, True, Outcome.ERROR),
        (holder.hard_max, False, Outcome.ERROR),
        (holder.soft_min, True, Outcome.WARNING),
        (holder.soft_max, False, Outcome.WARNING),
    ):
        if bound is not None and (value < bound if low else value > bound):
            kind = "hard" if outcome == Outcome.ERROR else "soft"
            side = "below the" if low else "above the"
            limit = "minimum" if low else "maximum"
            return outcome, f"{value:g} is {side} {kind} {limit} {bound:g}"
    return Outcome.OK, f"{value:g} is within bounds"


def checks_run(dataset: Dataset, *, run=None, python_check=None) -> list[QualityResult]:
    """Each check on its metric's latest value. ``python_check(check, value)`` runs code checks."""
    results = []
    for check in dataset.checks.select_related("metric"):
        latest = check.metric.values.order_by("-computed_at").first()
        value = latest.value if latest else None
        if check.code.strip():
            if python_check is None:
                raise FlowError(f"Check {check.name} is Python code: run it from a scenario.")
            outcome, message = python_check(check, value)
        else:
            outcome, message = bounds_outcome(value, check)
        results.append(
            QualityResult(
                dataset=dataset,
                check_ref=check,
                outcome=outcome,
                value=value,
                message=message,
                run=run,
            )
        )
    return QualityResult.objects.bulk_create(results)


def _violations(rule: Rule, dataset: Dataset) -> str:
    """A SQL expression counting the rows that break the rule (or the failing condition)."""
    params = rule.params or {}
    column = (
        storage.column_sql(dataset, rule.column, f"Rule {rule.name}")
        if rule.kind not in (Rule.Kind.NOT_EMPTY, Rule.Kind.ROW_COUNT)
        else ""
    )
    if rule.kind == Rule.Kind.NOT_EMPTY:
        return "CASE WHEN count(*) = 0 THEN 1 ELSE 0 END"
    if rule.kind == Rule.Kind.ROW_COUNT:
        low, high = float(params.get("min", 0)), float(params.get("max", float("inf")))
        high_sql = "" if high == float("inf") else f" AND count(*) <= {high}"
        return f"CASE WHEN count(*) >= {low}{high_sql} THEN 0 ELSE 1 END"
    if rule.kind == Rule.Kind.NOT_NULL:
        return f"count(*) - count({column})"
    if rule.kind == Rule.Kind.UNIQUE:
        return f"count({column}) - count(DISTINCT {column})"
    if rule.kind == Rule.Kind.IN_RANGE:
        low, high = float(params["min"]), float(params["max"])
        return (
            f"count(*) FILTER (WHERE {column} < {low} OR {column} > {high})"
            if dataset.connection.kind != Connection.Kind.SQLITE
            else f"sum(CASE WHEN {column} < {low} OR {column} > {high} THEN 1 ELSE 0 END)"
        )
    if rule.kind == Rule.Kind.IN_SET:
        values = ", ".join(
            literal(v) if isinstance(v, str) else str(float(v)) for v in params["values"]
        )
        return f"sum(CASE WHEN {column} NOT IN ({values}) THEN 1 ELSE 0 END)"
    return _regex(rule, dataset, column, params["pattern"])


def _regex(rule: Rule, dataset: Dataset, column: str, pattern: str) -> str:
    if dataset.connection.kind == Connection.Kind.SQLITE:
        raise FlowError(f"Rule {rule.name}: SQLite has no regular expressions.")
    if dataset.connection.is_sql:
        test = f"CAST({column} AS TEXT) ~ {literal('^(?:' + pattern + ')$')}"
    else:
        test = f"regexp_full_match(CAST({column} AS VARCHAR), {literal(pattern)})"
    return f"sum(CASE WHEN {column} IS NOT NULL AND NOT ({test}) THEN 1 ELSE 0 END)"


def rules_verify(dataset: Dataset, *, run=None) -> list[QualityResult]:
    rules = list(dataset.rules.all())
    counts = _select(dataset, [_violations(rule, dataset) for rule in rules])
    results = []
    for rule, count in zip(rules, counts, strict=True):
        count = int(count or 0)
        failing = rule.kind in (Rule.Kind.NOT_EMPTY, Rule.Kind.ROW_COUNT)
        if count == 0:
            outcome, message = Outcome.OK, "passed"
        else:
            outcome = rule.severity
            message = "failed" if failing else f"{count} row(s) break the rule"
        results.append(
            QualityResult(
                dataset=dataset, rule=rule, outcome=outcome, value=count, message=message, run=run
            )
        )
    return QualityResult.objects.bulk_create(results)


def worst(outcomes) -> str:
    order = [Outcome.OK, Outcome.WARNING, Outcome.ERROR]
    return max(outcomes, key=order.index, default=Outcome.OK)
