"""Metrics, checks and rules on files (DuckDB) and PostgreSQL, and a scenario branching on them."""

from __future__ import annotations

import pytest

from apps.accounts.models import ProfileKind
from apps.accounts.services import profile_assign
from apps.flow import build as engine
from apps.flow.storage import FlowError
from apps.quality.models import Check, Metric, QualityResult, Rule
from apps.quality.services import checks_run, metrics_compute, rules_verify
from tests.flow.test_build import fresh
from tests.runs.test_runner import execute, messages

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@pytest.fixture
def built(orders_flow, recipe_run):
    engine.build([fresh(orders_flow["pg"])], "missing", recipe_run[0])
    return {name: fresh(dataset) for name, dataset in orders_flow.items() if name != "root"}


@pytest.mark.parametrize("which", ["clean", "pg"])
def test_metrics_where_the_data_lives(built, which):
    dataset = built[which]
    for name, kind, column in [
        ("rows", "row_count", ""),
        ("cols", "column_count", ""),
        ("low", "min", "amount"),
        ("high", "max", "amount"),
        ("avg", "mean", "amount"),
        ("nulls", "nulls", "amount"),
        ("days", "distinct", "day"),
    ]:
        Metric.objects.create(dataset=dataset, name=name, kind=kind, column=column)
    values = metrics_compute(dataset)
    expected = {
        "clean": {
            "rows": 4,
            "cols": 3,
            "low": 1.0,
            "high": 10.5,
            "avg": 4.75,
            "nulls": 0,
            "days": 3,
        },
        "pg": {
            "rows": 3,
            "cols": 2,
            "low": 1.0,
            "high": 15.0,
            "avg": 19 / 3,
            "nulls": 0,
            "days": 3,
        },
    }[which]
    assert values == pytest.approx(expected)
    assert Metric.objects.get(dataset=dataset, name="rows").values.count() == 1


def test_file_size_and_custom_sql(built):
    clean = built["clean"]
    Metric.objects.create(dataset=clean, name="size", kind="file_size")
    Metric.objects.create(
        dataset=clean,
        name="big",
        kind="sql",
        sql="SELECT count(*) FROM orders_clean WHERE amount > 4",
    )
    values = metrics_compute(clean)
    assert values["big"] == 2 and values["size"] > 50


def test_an_unknown_column_is_named(built):
    Metric.objects.create(dataset=built["clean"], name="bad", kind="max", column="amuont")
    with pytest.raises(FlowError, match="unknown column 'amuont' in orders_clean"):
        metrics_compute(built["clean"])


def test_checks_give_ok_warning_and_error(built):
    clean = built["clean"]
    rows = Metric.objects.create(dataset=clean, name="rows", kind="row_count")
    metrics_compute(clean)
    Check.objects.create(dataset=clean, name="ok", metric=rows, soft_min=2, hard_min=1)
    Check.objects.create(dataset=clean, name="warn", metric=rows, soft_min=5, hard_min=1)
    Check.objects.create(dataset=clean, name="error", metric=rows, soft_max=3, hard_max=3.5)
    results = {r.check_ref.name: (r.outcome, r.message) for r in checks_run(clean)}
    assert results["ok"][0] == "OK"
    assert results["warn"] == ("WARNING", "4 is below the soft minimum 5")
    assert results["error"] == ("ERROR", "4 is above the hard maximum 3.5")


@pytest.mark.parametrize("which", ["clean", "pg"])
def test_rules(built, which):
    dataset = built[which]
    specs = [
        ("filled", "not_empty", "", {}, "OK"),
        ("amount set", "not_null", "amount", {}, "OK"),
        ("unique day", "unique", "day", {}, "OK" if which == "pg" else "WARNING"),
        ("sane amount", "in_range", "amount", {"min": 0, "max": 10}, "ERROR"),
        ("enough rows", "row_count", "", {"min": 10}, "ERROR"),
    ]
    if which == "clean":
        specs.append(("ids", "in_set", "order_id", {"values": [1, 2, 4, 5]}, "OK"))
        specs.append(("iso day", "regex", "day", {"pattern": r"\d{4}-\d{2}-\d{2}"}, "OK"))
    for name, kind, column, params, outcome in specs:
        severity = "WARNING" if outcome == "WARNING" else "ERROR"
        Rule.objects.create(
            dataset=dataset, name=name, kind=kind, column=column, params=params, severity=severity
        )
    outcomes = {r.rule.name: r.outcome for r in rules_verify(dataset)}
    assert outcomes == {name: outcome for name, _, _, _, outcome in specs}
    assert QualityResult.objects.filter(dataset=dataset).count() == len(specs)


def test_a_scenario_branches_on_checks_and_rules(built, make_scenario, no_dispatch, cast):
    clean = built["clean"]
    rows = Metric.objects.create(dataset=clean, name="rows", kind="row_count")
    Check.objects.create(dataset=clean, name="volume", metric=rows, soft_min=10, hard_min=1)
    Rule.objects.create(
        dataset=clean,
        name="positive",
        kind="in_range",
        column="amount",
        params={"min": 0, "max": 1000},
        severity="ERROR",
    )
    scenario = make_scenario(
        steps=[
            {
                "name": "measure",
                "type": "compute_metrics",
                "params": {"datasets": ["orders_clean"]},
            },
            {"name": "check", "type": "run_checks", "params": {"datasets": ["orders_clean"]}},
            {"name": "rules", "type": "verify_rules", "params": {"datasets": ["orders_clean"]}},
            {
                "name": "low volume",
                "type": "set_variables",
                "run_condition": "expression",
                "condition_expression": "stepOutput_check['orders_clean.volume'] == 'WARNING' "
                "and stepOutput_measure['orders_clean.rows'] == 4",
                "params": {"variables": {"alert": "low volume"}},
            },
            {
                "name": "never",
                "type": "set_variables",
                "run_condition": "outcome_in",
                "condition_outcomes": ["success"],
                "params": {"variables": {"never": True}},
            },
        ]
    )
    run = execute(scenario, user=cast["owner"])
    assert run.status == "warning", messages(run)
    statuses = dict(run.step_runs.values_list("name", "status"))
    assert statuses == {
        "measure": "success",
        "check": "warning",
        "rules": "success",
        "low volume": "success",
        "never": "skipped",
    }
    assert run.variables["alert"] == "low volume"


def test_python_check_in_the_sandbox(built, make_scenario, no_dispatch, cast):
    profile_assign(user=cast["owner"], kind=ProfileKind.CODER)
    clean = built["clean"]
    rows = Metric.objects.create(dataset=clean, name="rows", kind="row_count")
    Check.objects.create(
        dataset=clean,
        name="custom",
        metric=rows,
        code=(
            "from cadenza import check\n"
            "v = check.value()\n"
            "check.result('ERROR' if v < 5 else 'OK', f'{v:g} rows')\n"
        ),
    )
    scenario = make_scenario(
        steps=[
            {
                "name": "measure",
                "type": "compute_metrics",
                "params": {"datasets": ["orders_clean"]},
            },
            {"name": "check", "type": "run_checks", "params": {"datasets": ["orders_clean"]}},
        ]
    )
    run = execute(scenario, user=cast["owner"])
    assert run.status == "failed"
    assert run.step_runs.get(name="check").output == {"orders_clean.custom": "ERROR"}
    assert "Check orders_clean.custom: ERROR (4 rows)" in messages(run)


def test_a_script_scenario_drives_the_flow_through_the_client(
    orders_flow, make_scenario, no_dispatch, cast
):
    profile_assign(user=cast["owner"], kind=ProfileKind.CODER)
    Metric.objects.create(dataset=fresh(orders_flow["clean"]), name="rows", kind="row_count")
    scenario = make_scenario(
        kind="python",
        script=(
            "from cadenza import scenario\n"
            "built = scenario.build_dataset('orders_by_day_pg', mode='missing')\n"
            "print('built', built['output']['recipes'])\n"
            "m = scenario.compute_metrics('orders_clean')\n"
            "print('rows', m['output']['orders_clean.rows'])\n"
        ),
    )
    run = execute(scenario, user=cast["owner"])
    assert run.status == "success", messages(run)
    log = messages(run)
    assert "built ['clean', 'by_day', 'to_pg']" in log and "rows 4.0" in log
