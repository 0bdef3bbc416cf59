"""Training with scikit-learn, in the worker (platform code: users choose an algorithm and
its parameters, they do not run code here)."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

from apps.flow import storage
from apps.flow.storage import FlowError
from apps.ml.models import ModelVersion, SavedModel
from apps.system.lazy import LazyModule

joblib = LazyModule("joblib")
metrics = LazyModule("sklearn.metrics")
model_selection = LazyModule("sklearn.model_selection")
pd = LazyModule("pandas")

ALGORITHMS = {
    "classification": {
        "logistic_regression": "sklearn.linear_model.LogisticRegression",
        "random_forest": "sklearn.ensemble.RandomForestClassifier",
        "gradient_boosting": "sklearn.ensemble.GradientBoostingClassifier",
    },
    "regression": {
        "linear_regression": "sklearn.linear_model.LinearRegression",
        "random_forest": "sklearn.ensemble.RandomForestRegressor",
        "gradient_boosting": "sklearn.ensemble.GradientBoostingRegressor",
    },
}


def estimator_for(task: str, algorithm: str, params: dict):
    """The estimator, or FlowError naming the unknown algorithm or parameter."""
    choices = ALGORITHMS.get(task, {})
    if algorithm not in choices:
        raise FlowError(f"Unknown algorithm {algorithm!r} for {task}; one of {sorted(choices)}.")
    cls = import_string(choices[algorithm])
    unknown = set(params) - set(cls().get_params())
    if unknown:
        raise FlowError(f"Unknown parameter(s) {', '.join(sorted(unknown))} for {algorithm}.")
    defaults = {"random_state": 0} if "random_state" in cls().get_params() else {}
    try:
        return cls(**{**defaults, **params})
    except (TypeError, ValueError) as error:
        raise FlowError(f"Bad parameters for {algorithm}: {error}") from None


def _frame(model: SavedModel) -> pd.DataFrame:
    _, frames = storage.read_frames(model.dataset)
    data = pd.concat(list(frames), ignore_index=True)
    if model.target not in data.columns:
        raise FlowError(
            f"Model {model.name}: unknown target column {model.target!r} in "
            f"{model.dataset.name} (columns: {', '.join(data.columns)})."
        )
    return data.dropna(subset=[model.target])


def _scores(task: str, estimator, x_test, y_test) -> dict[str, float]:
    predicted = estimator.predict(x_test)
    if task == "regression":
        return {
            "r2": metrics.r2_score(y_test, predicted),
            "mae": metrics.mean_absolute_error(y_test, predicted),
        }
    scores = {
        "accuracy": metrics.accuracy_score(y_test, predicted),
        "f1": metrics.f1_score(y_test, predicted, average="weighted"),
    }
    if hasattr(estimator, "predict_proba") and len(set(y_test)) == 2:
        scores["auc"] = metrics.roc_auc_score(y_test, estimator.predict_proba(x_test)[:, 1])
    return {name: round(float(value), 6) for name, value in scores.items()}


def model_train(model: SavedModel, *, run=None) -> ModelVersion:
    data = _frame(model)
    if len(data) < 10:
        raise FlowError(f"Model {model.name}: {len(data)} rows are too few to train on.")
    features = pd.get_dummies(data.drop(columns=[model.target]), dummy_na=False).astype(float)
    target = data[model.target]
    estimator = estimator_for(model.task, model.algorithm, model.params)
    stratify = (
        target if model.task == "classification" and target.value_counts().min() > 1 else None
    )
    x_train, x_test, y_train, y_test = model_selection.train_test_split(
        features, target, test_size=0.2, random_state=0, stratify=stratify
    )
    estimator.fit(x_train, y_train)
    scores = _scores(model.task, estimator, x_test, y_test)
    return _save_version(
        model, estimator, list(features.columns), scores, len(x_train), len(x_test), run
    )


def _save_version(model, estimator, features, scores, train_rows, test_rows, run):
    folder = settings.VAR_DIR / "models" / model.project.key / model.name
    folder.mkdir(parents=True, exist_ok=True)
    with transaction.atomic():
        locked = SavedModel.objects.select_for_update().get(pk=model.pk)
        number = (
            locked.versions.order_by("-number").values_list("number", flat=True).first() or 0
        ) + 1
        artifact = folder / f"v{number}.joblib"
        joblib.dump({"estimator": estimator, "features": features}, artifact)
        version = ModelVersion.objects.create(
            model=locked,
            number=number,
            algorithm=model.algorithm,
            params=model.params,
            features=features,
            metrics=scores,
            train_rows=train_rows,
            test_rows=test_rows,
            artifact=str(artifact),
            run=run,
        )
        SavedModel.objects.filter(pk=model.pk).update(active_version=version)
    return version


def model_checks_run(model: SavedModel) -> dict[str, tuple[str, str]]:
    """Outcome and message of each check on the active version's metrics."""
    from apps.quality.services import bounds_outcome

    metrics_now = model.active_version.metrics if model.active_version else {}
    return {
        check.name: bounds_outcome(metrics_now.get(check.metric), check)
        for check in model.checks.all()
    }
