"""Checks of saved-model and model-check input shared by the API and the admin: errors keyed by
field (``__all__`` for the object as a whole). Names are checked by each interface."""

from __future__ import annotations

from apps.flow.access import known_columns, unknown_column
from apps.flow.storage import FlowError
from apps.ml.models import ModelCheck, SavedModel
from apps.ml.training import ALGORITHMS, estimator_for
from apps.quality.validation import bounds_errors

TASK_METRICS = {
    SavedModel.Task.CLASSIFICATION: ("accuracy", "f1", "auc"),
    SavedModel.Task.REGRESSION: ("r2", "mae"),
}


def model_errors(model: SavedModel, *, user) -> dict[str, str]:
    """Errors of a saved model's dataset, target, algorithm and params."""
    errors = {}
    if model.dataset.project_id != model.project_id:
        errors["dataset"] = f"{model.dataset.name} is not a dataset of {model.project.key}."
    elif not model.target:
        errors["target"] = "The column to predict is required."
    else:
        problem = unknown_column(known_columns(model.dataset, user), model.dataset, model.target)
        if problem:
            errors["target"] = problem
    if not isinstance(model.params, dict):
        errors["params"] = 'A JSON object of the algorithm\'s parameters, e.g. {"max_depth": 5}.'
    else:
        errors.update(estimator_errors(model.task, model.algorithm, model.params))
    return errors


def estimator_errors(task: str, algorithm: str, params: dict) -> dict[str, str]:
    """The algorithm and params as training will use them, checked up front (names, then
    values where scikit-learn can tell without data)."""
    try:
        estimator = estimator_for(task, algorithm, params)
    except FlowError as error:
        field = "params" if algorithm in ALGORITHMS.get(task, {}) else "algorithm"
        return {field: str(error)}
    validate = getattr(estimator, "_validate_params", None)  # scikit-learn ≥ 1.2
    try:
        if validate is not None:
            validate()
    except (TypeError, ValueError) as error:
        return {"params": f"Bad parameters for {algorithm}: {error}"}
    return {}


def model_check_errors(check: ModelCheck, task: str | None) -> dict[str, str]:
    errors = bounds_errors(check)
    metrics = TASK_METRICS.get(task, ())
    if metrics and check.metric not in metrics:
        errors["metric"] = f"A {task} model is scored by {', '.join(metrics)}."
    return errors
