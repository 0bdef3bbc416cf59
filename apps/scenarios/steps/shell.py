from __future__ import annotations

import re

from django.conf import settings
from rest_framework import serializers

from apps.scenarios.steps.base import StepError, StepResult, StepType


class RunShell(StepType):
    """Run facts reach the command as environment variables, never interpolated into it."""

    key = "shell"
    label = "Run a shell command"
    needs_code = True

    class Params(serializers.Serializer):
        command = serializers.CharField()

    def run(self, ctx, params):
        if not settings.CADENZA_ALLOW_SHELL:
            raise StepError(
                "Shell steps are turned off on this installation (CADENZA_ALLOW_SHELL)."
            )
        ctx.require("code", ctx.scenario)
        env = {
            "CADENZA_RUN_ID": str(ctx.run.pk),
            "CADENZA_PROJECT": ctx.project.key,
            "CADENZA_SCENARIO": ctx.scenario.name,
            "CADENZA_OUTCOME": ctx.outcome,
        }
        for name, value in ctx.variables.items():
            if isinstance(value, str | int | float | bool) and re.fullmatch(r"\w+", name):
                env[f"CADENZA_VAR_{name}"] = str(value)
        result = ctx.run_shell(params["command"], env)
        if result.ok:
            return StepResult(output={"returncode": 0})
        return StepResult(
            "failed", {"returncode": result.returncode}, f"Command failed: {result.describe()}"
        )
