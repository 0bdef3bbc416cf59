from __future__ import annotations

from rest_framework import serializers

from apps.scenarios.steps.base import StepError, StepResult, StepType


class TargetParams(serializers.Serializer):
    scenario = serializers.CharField(help_text="Name in this project, or PROJECT/name.")


class RunScenario(StepType):
    key = "run_scenario"
    label = "Run another scenario"

    class Params(TargetParams):
        wait = serializers.BooleanField(default=True, help_text="Wait and take its outcome.")
        params = serializers.DictField(default=dict, help_text="Trigger params for the run.")

    def run(self, ctx, params):
        from apps.runs.services import run_start, run_wait

        target = ctx.find_scenario(params["scenario"])
        ctx.require("run", target)
        if target.pk == ctx.scenario.pk:
            raise StepError("A scenario cannot run itself.")
        started = run_start(
            scenario=target,
            user=ctx.user,
            trigger_kind="scenario",
            trigger_name=str(ctx.scenario),
            trigger_params=params["params"],
            parent_run=ctx.run,
        )
        if started.run is None:
            raise StepError(f"{target} did not start: {started.reason}")
        ctx.log(f"Started {target} run #{started.run.number}")
        if not params["wait"]:
            return StepResult(output={"run": started.run.pk})
        child = run_wait(started.run, cancel=ctx.cancel, on_cancel_abort=True, user=ctx.user)
        status = "failed" if child.status == "aborted" else child.status
        message = f"{target} run #{child.number} ended {child.status}"
        return StepResult(status, {"run": child.pk, "outcome": child.status}, message)


class AbortScenario(StepType):
    key = "abort_scenario"
    label = "Abort another scenario"
    Params = TargetParams

    def run(self, ctx, params):
        from apps.runs.models import ACTIVE_STATUSES
        from apps.runs.services import run_abort

        target = ctx.find_scenario(params["scenario"])
        ctx.require("run", target)
        runs = list(target.runs.filter(status__in=ACTIVE_STATUSES).exclude(pk=ctx.run.pk))
        for run in runs:
            run_abort(run, user=ctx.user)
        ctx.log(f"Asked {len(runs)} active run(s) of {target} to abort")
        return StepResult(output={"aborted": [run.pk for run in runs]})
