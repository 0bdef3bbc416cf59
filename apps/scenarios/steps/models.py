from __future__ import annotations

from rest_framework import serializers

from apps.scenarios.steps.base import StepError, StepResult, StepType
from apps.scenarios.steps.flow import require_connection
from apps.scenarios.steps.quality import STATUS


class ModelParams(serializers.Serializer):
    model = serializers.CharField(help_text="The saved model's name in this project.")


def _model(ctx, name: str):
    from apps.ml.models import SavedModel

    model = (
        SavedModel.objects.select_related("dataset__connection", "project", "active_version")
        .filter(project=ctx.project, name=name)
        .first()
    )
    if model is None:
        raise StepError(f"No model {name!r} in project {ctx.project.key}.")
    ctx.require("change", model)
    require_connection(ctx, model.dataset)
    return model


class TrainModel(StepType):
    key = "train_model"
    label = "Train a model"
    Params = ModelParams

    def run(self, ctx, params):
        from apps.flow.storage import FlowError
        from apps.ml.training import model_train

        model = _model(ctx, params["model"])
        try:
            version = model_train(model, run=ctx.run)
        except FlowError as error:
            raise StepError(str(error)) from None
        ctx.log(
            f"Trained {model.name} v{version.number}: "
            + ", ".join(f"{k}={v:g}" for k, v in version.metrics.items())
        )
        return StepResult(output={"version": version.number, "metrics": version.metrics})


class RunModelChecks(StepType):
    key = "run_model_checks"
    label = "Run model checks"
    Params = ModelParams

    def run(self, ctx, params):
        from apps.ml.training import model_checks_run
        from apps.quality.services import worst

        model = _model(ctx, params["model"])
        results = model_checks_run(model)
        for name, (outcome, message) in results.items():
            ctx.log(f"Model check {model.name}.{name}: {outcome} ({message})")
        output = {f"{model.name}.{name}": outcome for name, (outcome, _) in results.items()}
        return StepResult(STATUS[worst(o for o, _ in results.values())], output)
