from __future__ import annotations

from rest_framework import serializers

from apps.scenarios.steps.base import StepResult, StepType


class ExecutePython(StepType):
    key = "python"
    label = "Execute Python code"
    needs_code = True

    class Params(serializers.Serializer):
        code = serializers.CharField(trim_whitespace=False, help_text="Runs in the sandbox.")

    def run(self, ctx, params):
        ctx.require("code", ctx.scenario)
        result = ctx.run_python(params["code"])
        if result.ok:
            return StepResult(output={"returncode": 0})
        return StepResult(
            "failed", {"returncode": result.returncode}, f"Python code failed: {result.describe()}"
        )
