from __future__ import annotations

from rest_framework import serializers

from apps.scenarios.steps.base import StepError, StepResult, StepType


class DatasetsParams(serializers.Serializer):
    datasets = serializers.ListField(child=serializers.CharField(), min_length=1)


def _datasets(ctx, names: list[str]):
    from apps.flow.models import Dataset

    found = {
        d.name: d
        for d in Dataset.objects.select_related("connection", "project").filter(
            project=ctx.project, name__in=names
        )
    }
    missing = [name for name in names if name not in found]
    if missing:
        raise StepError(f"No dataset {', '.join(missing)} in project {ctx.project.key}.")
    for dataset in found.values():
        ctx.require("change", dataset)
        require_connection(ctx, dataset)
    return [found[name] for name in names]


def require_connection(ctx, dataset) -> None:
    """StepError unless the run-as user may use the dataset's connection: a step reads the
    data on their behalf, whatever it makes of it (a chart, a model, its documentation)."""
    if not dataset.connection.usable_by(ctx.user):
        raise StepError(f"The run-as user may not use the connection {dataset.connection}.")


class BuildDatasets(StepType):
    key = "build"
    label = "Build datasets"

    class Params(DatasetsParams):
        mode = serializers.ChoiceField(["only", "required", "force", "missing"], default="required")

    def run(self, ctx, params):
        from apps.flow.build import build
        from apps.flow.recipes import RecipeRun
        from apps.flow.storage import FlowError

        targets = _datasets(ctx, params["datasets"])
        try:
            done = build(
                targets, params["mode"], RecipeRun(ctx.log, ctx.cancel, ctx.timeout, user=ctx.user)
            )
        except FlowError as error:
            raise StepError(str(error)) from None
        if not done:
            ctx.log("Nothing to build: everything is up to date")
        return StepResult(
            output={
                "recipes": [item["recipe"] for item in done],
                "rows": {k: v for item in done for k, v in item["rows"].items()},
            }
        )


class ClearDatasets(StepType):
    key = "clear"
    label = "Clear datasets"
    Params = DatasetsParams

    def run(self, ctx, params):
        from apps.flow.build import dataset_clear

        for dataset in _datasets(ctx, params["datasets"]):
            dataset_clear(dataset)
            ctx.log(f"Cleared {dataset.name}")
        return StepResult(output={"cleared": params["datasets"]})
