"""Models: training on a dataset, versions with metrics, checks, and a retraining scenario."""

from __future__ import annotations

import random

import pytest

from apps.flow.models import Dataset
from apps.flow.storage import FlowError
from apps.ml.models import ModelCheck, SavedModel
from apps.ml.training import model_train
from tests.runs.test_runner import execute, messages

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@pytest.fixture
def churn(project, files_connection):
    rng = random.Random(7)
    lines = ["tenure,spend,plan,churned"]
    for _ in range(300):
        tenure, spend = rng.randint(1, 60), round(rng.uniform(5, 120), 2)
        plan = rng.choice(["basic", "pro"])
        churned = int(tenure < 20 and rng.random() < 0.85 or rng.random() < 0.05)
        lines.append(f"{tenure},{spend},{plan},{churned}")
    root = files_connection.config["root"]
    with open(f"{root}/customers.csv", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    dataset = Dataset.objects.create(
        project=project,
        name="customers",
        connection=files_connection,
        format="csv",
        path="customers.csv",
    )
    return SavedModel.objects.create(
        project=project,
        name="churn",
        dataset=dataset,
        target="churned",
        task="classification",
        algorithm="random_forest",
        params={"n_estimators": 30},
    )


def test_training_creates_an_active_version_with_metrics(churn):
    version = model_train(churn)
    churn.refresh_from_db()
    assert churn.active_version == version and version.number == 1
    assert set(version.metrics) == {"accuracy", "f1", "auc"}
    assert version.metrics["auc"] > 0.7
    assert version.train_rows == 240 and version.test_rows == 60
    assert "plan_pro" in version.features
    assert model_train(churn).number == 2


def test_regression_metrics(churn):
    churn.task, churn.target, churn.algorithm = "regression", "spend", "linear_regression"
    churn.params = {}
    churn.save()
    assert set(model_train(churn).metrics) == {"r2", "mae"}


@pytest.mark.parametrize(
    "change,message",
    [
        ({"params": {"n_trees": 3}}, "Unknown parameter.*n_trees"),
        ({"algorithm": "svm"}, "Unknown algorithm 'svm'"),
        ({"target": "churn"}, "unknown target column 'churn'"),
    ],
)
def test_bad_definitions_are_named(churn, change, message):
    SavedModel.objects.filter(pk=churn.pk).update(**change)
    churn.refresh_from_db()
    with pytest.raises(FlowError, match=message):
        model_train(churn)


@pytest.mark.parametrize("floor,retrained", [(0.999, True), (0.5, False)])
def test_a_scenario_retrains_when_a_metric_check_fails(
    churn, make_scenario, no_dispatch, cast, floor, retrained
):
    model_train(churn)
    ModelCheck.objects.create(model=churn, name="auc_floor", metric="auc", hard_min=floor)
    scenario = make_scenario(
        steps=[
            {
                "name": "checks",
                "type": "run_model_checks",
                "params": {"model": "churn"},
                "proceed_on_failure": True,
            },
            {
                "name": "retrain",
                "type": "train_model",
                "params": {"model": "churn"},
                "run_condition": "expression",
                "condition_expression": "stepOutput_checks['churn.auc_floor'] != 'OK'",
            },
        ]
    )
    run = execute(scenario, user=cast["owner"])
    statuses = dict(run.step_runs.values_list("name", "status"))
    assert statuses["retrain"] == ("success" if retrained else "skipped"), messages(run)
    assert churn.versions.count() == (2 if retrained else 1)
