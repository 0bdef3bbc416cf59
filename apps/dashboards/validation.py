"""Checks of chart and dashboard input shared by the API and the admin: errors keyed by field.
Names are checked by each interface."""

from __future__ import annotations

from apps.dashboards.models import Chart, Dashboard
from apps.flow.access import NUMERIC_TYPES, known_columns, unknown_column

NUMERIC_AGGREGATES = (Chart.Aggregate.SUM, Chart.Aggregate.AVG)


def chart_errors(chart: Chart, *, user) -> dict[str, str]:
    """Errors of a chart's dataset (of its project) and its group_by and value columns."""
    dataset = chart.dataset
    if dataset.project_id != chart.project_id:
        return {"dataset": f"{dataset.name} is not a dataset of {chart.project.key}."}
    errors = {}
    columns = known_columns(dataset, user) if chart.group_by or chart.value else None
    if not chart.group_by:
        errors["group_by"] = "Required: the column whose values label the bars, points or slices."
    else:
        problem = unknown_column(columns, dataset, chart.group_by)
        if problem:
            errors["group_by"] = problem
    if chart.aggregate != Chart.Aggregate.COUNT:
        problem = _value_error(chart, columns)
        if problem:
            errors["value"] = problem
    return errors


def _value_error(chart: Chart, columns: dict[str, str] | None) -> str | None:
    if not chart.value:
        return f"The {chart.get_aggregate_display().lower()} needs a value column."
    problem = unknown_column(columns, chart.dataset, chart.value)
    if problem or columns is None:
        return problem
    kind = columns[chart.value]
    if chart.aggregate in NUMERIC_AGGREGATES and kind not in NUMERIC_TYPES:
        return f"{chart.value} holds {kind} values: a {chart.aggregate} needs numbers."
    return None


def dashboard_errors(dashboard: Dashboard, charts: list[Chart]) -> dict[str, str]:
    strangers = [chart.name for chart in charts if chart.project_id != dashboard.project_id]
    if strangers:
        return {"charts": f"Not in project {dashboard.project.key}: {', '.join(strangers)}."}
    return {}
