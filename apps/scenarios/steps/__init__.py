"""The step-type registry: key → class. One small module per type."""

from __future__ import annotations

from functools import cache

from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string

from apps.scenarios.steps.base import StepError, StepResult, StepType

STEP_TYPES = {
    "set_variables": "apps.scenarios.steps.variables.SetScenarioVariables",
    "set_project_variables": "apps.scenarios.steps.variables.SetProjectVariables",
    "python": "apps.scenarios.steps.python.ExecutePython",
    "sql": "apps.scenarios.steps.sql.ExecuteSql",
    "run_scenario": "apps.scenarios.steps.scenarios.RunScenario",
    "abort_scenario": "apps.scenarios.steps.scenarios.AbortScenario",
    "shell": "apps.scenarios.steps.shell.RunShell",
    "clean_run_logs": "apps.scenarios.steps.cleanup.CleanRunLogs",
    "send_message": "apps.scenarios.steps.message.SendMessage",
    "build": "apps.scenarios.steps.flow.BuildDatasets",
    "clear": "apps.scenarios.steps.flow.ClearDatasets",
    "compute_metrics": "apps.scenarios.steps.quality.ComputeMetrics",
    "run_checks": "apps.scenarios.steps.quality.RunChecks",
    "verify_rules": "apps.scenarios.steps.quality.VerifyRules",
    "train_model": "apps.scenarios.steps.models.TrainModel",
    "run_model_checks": "apps.scenarios.steps.models.RunModelChecks",
    "refresh_charts": "apps.scenarios.steps.outputs.RefreshCharts",
    "export_flow_docs": "apps.scenarios.steps.outputs.ExportFlowDocs",
    "export_model_docs": "apps.scenarios.steps.outputs.ExportModelDocs",
}

__all__ = [
    "STEP_TYPES",
    "StepError",
    "StepResult",
    "StepType",
    "get_step_type",
    "step_type_choices",
    "validate_params",
]


@cache
def get_step_type(key: str) -> type[StepType]:
    if key not in STEP_TYPES:
        raise KeyError(key)
    return import_string(STEP_TYPES[key])


def step_type_choices() -> list[tuple[str, str]]:
    return [(key, get_step_type(key).label) for key in STEP_TYPES]


def validate_params(key: str, params) -> dict:
    """Validated params of a step type, or ValidationError naming ``type`` or ``params``."""
    if key not in STEP_TYPES:
        raise ValidationError({"type": f"Unknown step type {key!r}; one of {sorted(STEP_TYPES)}."})
    if not isinstance(params, dict):
        raise ValidationError({"params": "Step params must be a JSON object."})
    serializer = get_step_type(key).Params(data=params)
    if not serializer.is_valid():
        raise ValidationError(
            {
                "params": [
                    f"{field}: {' '.join(str(m) for m in messages)}"
                    for field, messages in serializer.errors.items()
                ]
            }
        )
    return dict(serializer.validated_data)
