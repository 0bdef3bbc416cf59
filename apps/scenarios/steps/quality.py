from __future__ import annotations

from apps.scenarios.steps.base import StepError, StepResult, StepType
from apps.scenarios.steps.flow import DatasetsParams, _datasets

STATUS = {"OK": "success", "WARNING": "warning", "ERROR": "failed"}


def _outcome(results) -> str:
    from apps.quality.services import worst

    return STATUS[worst(result.outcome for result in results)]


class ComputeMetrics(StepType):
    key = "compute_metrics"
    label = "Compute metrics"
    Params = DatasetsParams

    def run(self, ctx, params):
        from apps.flow.storage import FlowError
        from apps.quality.services import metrics_compute

        output = {}
        for dataset in _datasets(ctx, params["datasets"]):
            try:
                values = metrics_compute(dataset, run=ctx.run)
            except FlowError as error:
                raise StepError(str(error)) from None
            for name, value in values.items():
                output[f"{dataset.name}.{name}"] = value
                ctx.log(f"{dataset.name}.{name} = {value}")
        return StepResult(output=output)


class RunChecks(StepType):
    key = "run_checks"
    label = "Run checks"
    Params = DatasetsParams

    def run(self, ctx, params):
        from apps.flow.storage import FlowError
        from apps.quality.services import checks_run

        output, results = {}, []
        for dataset in _datasets(ctx, params["datasets"]):
            try:
                found = checks_run(dataset, run=ctx.run, python_check=_python_check(ctx))
            except FlowError as error:
                raise StepError(str(error)) from None
            for result in found:
                output[f"{dataset.name}.{result.check_ref.name}"] = result.outcome
                ctx.log(
                    f"Check {dataset.name}.{result.check_ref.name}: {result.outcome} "
                    f"({result.message})",
                    level=_level(result.outcome),
                )
            results += found
        return StepResult(_outcome(results), output)


class VerifyRules(StepType):
    key = "verify_rules"
    label = "Verify data-quality rules"
    Params = DatasetsParams

    def run(self, ctx, params):
        from apps.flow.storage import FlowError
        from apps.quality.services import rules_verify

        output, results = {}, []
        for dataset in _datasets(ctx, params["datasets"]):
            try:
                found = rules_verify(dataset, run=ctx.run)
            except FlowError as error:
                raise StepError(str(error)) from None
            for result in found:
                output[f"{dataset.name}.{result.rule.name}"] = result.outcome
                ctx.log(
                    f"Rule {dataset.name}.{result.rule.name}: {result.outcome} ({result.message})",
                    level=_level(result.outcome),
                )
            results += found
        return StepResult(_outcome(results), output)


def _level(outcome: str) -> str:
    return {"OK": "info", "WARNING": "warning"}.get(outcome, "error")


def _python_check(ctx):
    """Custom Python checks run in the sandbox; their author needed the coder profile."""
    from apps.scenarios.sandbox import Limits, Sandbox

    def run_check(check, value):
        verdict = {"outcome": "ERROR", "message": "The check set no result."}
        history = list(
            check.metric.values.order_by("-computed_at").values_list("value", flat=True)[1:51]
        )

        def handle(method, params):
            if method == "check_value":
                return value
            if method == "check_history":
                return history
            if method == "check_result" and params.get("outcome") in ("OK", "WARNING", "ERROR"):
                verdict.update(outcome=params["outcome"], message=str(params.get("message", "")))
                return None
            raise ValueError(f"{method!r} is not available in a check")

        sandbox = Sandbox(
            on_stdout=ctx.log,
            on_stderr=lambda line: ctx.log(line, level="error"),
            handle_call=handle,
            cancel=ctx.cancel,
            limits=Limits.from_settings(60),
        )
        result = sandbox.run_python(check.code)
        if not result.ok:
            return "ERROR", f"The check's code failed: {result.describe()}"
        return verdict["outcome"], verdict["message"]

    return run_check
