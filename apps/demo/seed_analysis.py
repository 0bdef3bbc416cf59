"""What the demo measures and shows: metrics, checks, rules, the model, charts, a dashboard."""

from __future__ import annotations

from apps.dashboards.models import Chart, Dashboard
from apps.dashboards.validation import chart_errors, dashboard_errors
from apps.demo import definitions as demo
from apps.demo.seeder import Missing, Seeder, validated_save
from apps.ml.models import ModelCheck, SavedModel
from apps.ml.validation import model_check_errors, model_errors
from apps.quality.models import Check, Metric, Rule
from apps.quality.validation import check_errors, metric_errors, rule_errors


def seed(seeder: Seeder) -> None:
    for dataset, name, kind, column in demo.METRICS:
        seeder.once(
            f"metric:{dataset}/{name}",
            _in(seeder, Metric, dataset, name),
            lambda dataset=dataset, name=name, kind=kind, column=column: _create_metric(
                seeder, dataset, name, kind, column
            ),
        )
    for dataset, name, metric, bounds in demo.CHECKS:
        seeder.once(
            f"check:{dataset}/{name}",
            _in(seeder, Check, dataset, name),
            lambda dataset=dataset, name=name, metric=metric, bounds=bounds: _create_check(
                seeder, dataset, name, metric, bounds
            ),
        )
    for dataset, name, kind, column, params, severity in demo.RULES:
        rule = {"name": name, "kind": kind, "column": column, "params": params}
        seeder.once(
            f"rule:{dataset}/{name}",
            _in(seeder, Rule, dataset, name),
            lambda dataset=dataset, rule=rule, severity=severity: _create_rule(
                seeder, dataset, rule, severity
            ),
        )
    seeder.once(
        f"model:{demo.MODEL['name']}",
        seeder.finder(SavedModel, name=demo.MODEL["name"]),
        lambda: _create_model(seeder),
    )
    _seed_charts(seeder)


def _in(seeder: Seeder, model, dataset: str, name: str):
    """Find a metric, check or rule of a demo dataset (Missing when the dataset is gone)."""
    return lambda: model.objects.filter(dataset=seeder.dataset(dataset), name=name).first()


def _create_metric(seeder: Seeder, dataset: str, name: str, kind: str, column: str) -> None:
    metric = Metric(dataset=seeder.dataset(dataset), name=name, kind=kind, column=column)
    validated_save(metric, metric_errors(metric, user=seeder.owner))


def _create_check(seeder: Seeder, dataset: str, name: str, metric: str, bounds: dict) -> None:
    owner = seeder.dataset(dataset)
    measured = Metric.objects.filter(dataset=owner, name=metric).first()
    if measured is None:
        raise Missing(f"metric {dataset}/{metric}")
    check = Check(dataset=owner, name=name, metric=measured, **bounds)
    validated_save(check, check_errors(check))


def _create_rule(seeder: Seeder, dataset: str, fields: dict, severity: str) -> None:
    rule = Rule(dataset=seeder.dataset(dataset), severity=severity, **fields)
    validated_save(rule, rule_errors(rule, user=seeder.owner))


def _create_model(seeder: Seeder) -> None:
    spec = demo.MODEL
    model = SavedModel(
        project=seeder.project(),
        dataset=seeder.dataset(spec["dataset"]),
        **{key: spec[key] for key in ("name", "target", "task", "algorithm", "params")},
    )
    validated_save(model, model_errors(model, user=seeder.owner))
    # The model's checks come with it: a check deleted later stays deleted.
    for name, metric, bounds in spec["checks"]:
        check = ModelCheck(model=model, name=name, metric=metric, **bounds)
        validated_save(check, model_check_errors(check, model.task))


def _seed_charts(seeder: Seeder) -> None:
    for name, (dataset, kind, group_by, aggregate, value) in demo.CHARTS.items():
        fields = {"kind": kind, "group_by": group_by, "aggregate": aggregate, "value": value}
        seeder.once(
            f"chart:{name}",
            seeder.finder(Chart, name=name),
            lambda name=name, dataset=dataset, fields=fields: _create_chart(
                seeder, name, dataset, fields
            ),
        )
    seeder.once(
        f"dashboard:{demo.DASHBOARD['name']}",
        seeder.finder(Dashboard, name=demo.DASHBOARD["name"]),
        lambda: _create_dashboard(seeder),
    )


def _create_chart(seeder: Seeder, name: str, dataset: str, fields: dict) -> None:
    chart = Chart(project=seeder.project(), dataset=seeder.dataset(dataset), name=name, **fields)
    validated_save(chart, chart_errors(chart, user=seeder.owner))


def _create_dashboard(seeder: Seeder) -> None:
    project = seeder.project()
    # Charts the user deleted are simply left out of the dashboard.
    charts = list(Chart.objects.filter(project=project, name__in=demo.DASHBOARD["charts"]))
    dashboard = Dashboard(project=project, name=demo.DASHBOARD["name"])
    validated_save(dashboard, dashboard_errors(dashboard, charts))
    dashboard.charts.set(charts)
