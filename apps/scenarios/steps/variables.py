from __future__ import annotations

from django.db import transaction
from rest_framework import serializers

from apps.projects.models import Project
from apps.scenarios.expressions import ExpressionError, evaluate
from apps.scenarios.steps.base import StepError, StepResult, StepType


class VariablesParams(serializers.Serializer):
    variables = serializers.DictField(help_text="Names and values to set.")
    evaluate = serializers.BooleanField(
        default=False, help_text="Values are expressions over the run's variables."
    )


def _values(ctx, params: dict) -> dict:
    if not params["evaluate"]:
        return params["variables"]
    # JSON objects keep no order (PostgreSQL's jsonb sorts keys), so a value may refer to one
    # listed after it: evaluate in passes until every value is known or no pass makes progress.
    values, names, pending = {}, dict(ctx.variables), dict(params["variables"])
    while pending:
        errors, before = {}, len(pending)
        for name, expression in list(pending.items()):
            try:
                values[name] = names[name] = evaluate(str(expression), names)
                del pending[name]
            except ExpressionError as error:
                errors[name] = error
        if len(pending) == before:
            name, error = next(iter(errors.items()))
            raise StepError(f"Variable {name!r}: {error}")
    return values


class SetScenarioVariables(StepType):
    key = "set_variables"
    label = "Set scenario variables"
    Params = VariablesParams

    def run(self, ctx, params):
        values = _values(ctx, params)
        ctx.set_scenario_variables(values)
        ctx.log(f"Set scenario variables: {', '.join(sorted(values)) or '(none)'}")
        return StepResult(output=values)


class SetProjectVariables(StepType):
    key = "set_project_variables"
    label = "Set project variables"
    Params = VariablesParams

    def run(self, ctx, params):
        ctx.require("change", ctx.project)
        values = _values(ctx, params)
        with transaction.atomic():
            project = Project.objects.select_for_update().get(pk=ctx.project.pk)
            project.variables = {**project.variables, **values}
            project.save(update_fields=["variables", "updated_at"])
        ctx.set_project_variables(values)
        ctx.log(f"Set project variables: {', '.join(sorted(values)) or '(none)'}")
        return StepResult(output=values)
