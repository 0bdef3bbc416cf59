"""Checks of scenario and step input shared by the API and the admin (errors by field)."""

from __future__ import annotations

from apps.scenarios.expressions import ExpressionError, check_syntax
from apps.scenarios.models import Scenario, Step

OUTCOMES = ["success", "warning", "failed"]


def step_condition_errors(condition: str, expression: str, outcomes) -> dict[str, str]:
    """Errors of a step's run condition, keyed by field."""
    errors = {}
    if condition == Step.Condition.EXPRESSION and not (expression or "").strip():
        errors["condition_expression"] = "Required when the run condition is an expression."
    elif expression:
        try:
            check_syntax(expression)
        except ExpressionError as error:
            errors["condition_expression"] = str(error)
    if not isinstance(outcomes, list) or not set(outcomes) <= set(OUTCOMES):
        errors["condition_outcomes"] = f"A list of outcomes among {', '.join(OUTCOMES)}."
    elif condition == Step.Condition.OUTCOME_IN and not outcomes:
        errors["condition_outcomes"] = "Choose at least one outcome."
    return errors


def writes_script(instance: Scenario | None, data: dict) -> bool:
    """Does this write put code in a scenario (a changed script, or a script made to run)?

    ``instance`` is the scenario before the write (None when creating); ``data`` the new
    values, possibly partial."""
    old_script, old_kind = (instance.script, instance.kind) if instance else ("", None)
    script = data.get("script", old_script)
    kind = data.get("kind", old_kind or Scenario.Kind.STEPS)
    made_runnable = kind == Scenario.Kind.PYTHON and kind != old_kind and bool(script)
    return script != old_script or made_runnable
