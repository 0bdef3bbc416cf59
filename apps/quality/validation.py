"""Checks of metric, check and rule input shared by the API and the admin.

Each returns errors keyed by field (``__all__`` for the object as a whole), so the API answers
400 naming the field and the admin shows the message beside it. Names are checked by each
interface (the admin's model validation already does it for most).
"""

from __future__ import annotations

import math
import re

from django.core.exceptions import NON_FIELD_ERRORS

from apps.flow.access import known_columns, unknown_column
from apps.flow.models import Connection, Dataset
from apps.quality.models import Check, Metric, Rule

COLUMN_RULES = (
    Rule.Kind.NOT_NULL,
    Rule.Kind.UNIQUE,
    Rule.Kind.IN_RANGE,
    Rule.Kind.IN_SET,
    Rule.Kind.REGEX,
)
RULE_PARAMS: dict[str, tuple[str, ...]] = {
    Rule.Kind.IN_RANGE: ("min", "max"),
    Rule.Kind.ROW_COUNT: ("min", "max"),
    Rule.Kind.IN_SET: ("values",),
    Rule.Kind.REGEX: ("pattern",),
}
RULE_EXAMPLES = {
    Rule.Kind.IN_RANGE: '{"min": 0, "max": 100}',
    Rule.Kind.ROW_COUNT: '{"min": 1} or {"min": 1, "max": 1000000}',
    Rule.Kind.IN_SET: '{"values": ["ok", "cancelled"]}',
    Rule.Kind.REGEX: '{"pattern": "[A-Z]{3}-[0-9]+"}',
}
BOUNDS = ("soft_min", "soft_max", "hard_min", "hard_max")


def column_error(dataset: Dataset, column: str, user, what: str) -> str | None:
    if not column:
        return f"{what} needs a column."
    return unknown_column(known_columns(dataset, user), dataset, column)


def metric_errors(metric: Metric, *, user) -> dict[str, str]:
    errors = {}
    if metric.kind in Metric.COLUMN_KINDS:
        problem = column_error(metric.dataset, metric.column, user, metric.get_kind_display())
        if problem:
            errors["column"] = problem
    if metric.kind == Metric.Kind.SQL and not metric.sql.strip():
        errors["sql"] = "A custom SQL metric needs a query returning one value."
    return errors


def bounds_errors(holder, *, required: bool = True) -> dict[str, str]:
    """Errors of ``holder``'s soft_min, soft_max, hard_min and hard_max."""
    if required and all(getattr(holder, name) is None for name in BOUNDS):
        return {NON_FIELD_ERRORS: "Give at least one bound: soft or hard, minimum or maximum."}
    errors = {}
    for low, high in (("soft_min", "soft_max"), ("hard_min", "hard_max")):
        low_value, high_value = getattr(holder, low), getattr(holder, high)
        if low_value is not None and high_value is not None and low_value > high_value:
            errors[high] = f"Below {low} ({low_value:g})."
    return errors


def check_errors(check: Check) -> dict[str, str]:
    """Errors of a check (its dataset is its metric's)."""
    if check.code.strip():
        return bounds_errors(check, required=False)
    errors = bounds_errors(check)
    if NON_FIELD_ERRORS in errors:
        errors[NON_FIELD_ERRORS] = "Give at least one bound, or Python code."
    return errors


def check_writes_code(before: Check | None, code: str) -> bool:
    """Does this write put Python in a check (new code, or changed code)?"""
    if not code.strip():
        return False
    return before is None or before.code != code


def rule_errors(rule: Rule, *, user) -> dict[str, str]:
    errors = {}
    if rule.kind in COLUMN_RULES:
        problem = column_error(rule.dataset, rule.column, user, rule.get_kind_display())
        if problem:
            errors["column"] = problem
    problem = rule_params_error(rule.kind, rule.params)
    if problem:
        errors["params"] = problem
    if rule.kind == Rule.Kind.REGEX and rule.dataset.connection.kind == Connection.Kind.SQLITE:
        errors["kind"] = "SQLite has no regular expressions: use another rule on this dataset."
    return errors


def rule_params_error(kind: str, params) -> str | None:
    allowed = RULE_PARAMS.get(kind, ())
    example = RULE_EXAMPLES.get(kind, "{}")
    if not isinstance(params, dict):
        return f"A JSON object, e.g. {example}."
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        takes = f"takes {', '.join(allowed)}" if allowed else "takes no params"
        return f"Unknown key {', '.join(unknown)}: a {kind} rule {takes}."
    if kind in (Rule.Kind.IN_RANGE, Rule.Kind.ROW_COUNT):
        return _range_error(kind, params, example)
    if kind == Rule.Kind.IN_SET:
        return _set_error(params.get("values"), example)
    if kind == Rule.Kind.REGEX:
        return _pattern_error(params.get("pattern"), example)
    return None


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _range_error(kind: str, params: dict, example: str) -> str | None:
    required = ("min", "max") if kind == Rule.Kind.IN_RANGE else ("min",)
    for key in RULE_PARAMS[kind]:
        if key not in params and key not in required:
            continue
        if not _is_number(params.get(key)):
            return f"{key}: a number is required, e.g. {example}."
    if "max" in params and params["min"] > params["max"]:
        return f"min ({params['min']:g}) is above max ({params['max']:g})."
    return None


def _set_error(values, example: str) -> str | None:
    if not isinstance(values, list) or not values:
        return f"values: a non-empty list is required, e.g. {example}."
    if not all(isinstance(v, str) or _is_number(v) for v in values):
        return "values: strings and numbers only."
    return None


def _pattern_error(pattern, example: str) -> str | None:
    if not isinstance(pattern, str) or not pattern:
        return f"pattern: a regular expression is required, e.g. {example}."
    try:
        re.compile(pattern)
    except re.error as error:
        return f"pattern: not a valid regular expression ({error})."
    return None
