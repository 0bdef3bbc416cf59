from __future__ import annotations

from django.utils import timezone

from apps.dashboards.models import Chart
from apps.flow import storage
from apps.flow.storage import FlowError

MAX_GROUPS = 1000


def chart_refresh(chart: Chart) -> dict:
    """Recompute the chart's cached result where the data lives; returns it."""
    dataset = chart.dataset
    group = storage.column_sql(dataset, chart.group_by, f"Chart {chart.name}")
    if chart.aggregate == Chart.Aggregate.COUNT:
        measure = "count(*)"
    elif not chart.value:
        raise FlowError(f"Chart {chart.name}: {chart.aggregate} needs a value column.")
    else:
        measure = (
            f"{chart.aggregate}({storage.column_sql(dataset, chart.value, f'Chart {chart.name}')})"
        )
    rows = storage.query_rows(
        dataset,
        f"SELECT {group}, {measure} FROM {{source}} GROUP BY 1 ORDER BY 1 LIMIT {MAX_GROUPS}",
    )
    result = {
        "labels": [str(label) for label, _ in rows],
        "values": [float(value) if value is not None else None for _, value in rows],
    }
    Chart.objects.filter(pk=chart.pk).update(cached=result, cached_at=timezone.now())
    chart.cached = result
    return result
