"""What reporter templates and conditions see of a run."""

from __future__ import annotations

from django.conf import settings
from django.template import Context, Engine, TemplateSyntaxError

from apps.runs.models import FINAL_STATUSES, LogLine, Run
from apps.scenarios.models import variable_name

# Plain-text messages: no HTML escaping of names and log lines.
ENGINE = Engine(autoescape=False)
LOG_TAIL = 20


def run_url(run: Run) -> str:
    return f"{settings.CADENZA_BASE_URL.rstrip('/')}/admin/runs/run/{run.pk}/change/"


def _history(run: Run) -> tuple[str | None, int]:
    """The previous finished run's outcome, and the failures in a row ending with this run."""
    finished = (
        Run.objects.filter(
            scenario_id=run.scenario_id, status__in=FINAL_STATUSES, number__lte=run.number
        )
        .order_by("-number")
        .values_list("number", "status")[:100]
    )
    previous = next((status for number, status in finished if number < run.number), None)
    streak = 0
    for _, status in finished:
        if status != "failed":
            break
        streak += 1
    return previous, streak


def run_context(run: Run, event: str) -> dict:
    previous, failures = _history(run)
    steps = [
        {
            "name": step.name,
            "status": step.status,
            "attempt": step.attempt,
            "duration": round((step.finished_at - step.started_at).total_seconds(), 3)
            if step.started_at and step.finished_at
            else None,
            "message": step.message,
        }
        for step in run.step_runs.order_by("position", "attempt")
    ]
    outcome = run.status if run.is_final else ("running" if event == "start" else run.status)
    tail = list(
        LogLine.objects.filter(run=run)
        .order_by("-seq")
        .values_list("message", flat=True)[:LOG_TAIL]
    )[::-1]
    context = {
        "event": event,
        "run": run,
        "scenario": run.scenario,
        "project": run.project,
        "outcome": outcome,
        "previousOutcome": previous,
        "consecutiveFailures": failures,
        "trigger": {
            "kind": run.trigger_kind,
            "name": run.trigger_name,
            "params": run.trigger_params,
        },
        "steps": steps,
        "run_url": run_url(run),
        "log_tail": "\n".join(tail),
        "variables": run.variables,
        "duration": run.duration_seconds,
    }
    for step in steps:
        context[f"stepOutcome_{variable_name(step['name'])}"] = step["status"]
    return context


def expression_names(context: dict) -> dict:
    """Names for condition expressions: plain values only (no model objects)."""
    names = {
        key: value for key, value in context.items() if key not in ("run", "scenario", "project")
    }
    names.update(context["variables"] or {})
    names["scenarioName"], names["projectKey"] = context["scenario"].name, context["project"].key
    return names


def facts(context: dict) -> dict:
    """Flat facts that travel with a delivery (webhook JSON, shell environment, Teams card)."""
    run = context["run"]
    return {
        "event": context["event"],
        "project": context["project"].key,
        "scenario": context["scenario"].name,
        "run_id": run.pk,
        "run_number": run.number,
        "outcome": context["outcome"],
        "previous_outcome": context["previousOutcome"],
        "trigger": context["trigger"]["kind"],
        "trigger_name": context["trigger"]["name"],
        "run_url": context["run_url"],
        "duration": context["duration"],
    }


def render(template: str, context: dict) -> str:
    return ENGINE.from_string(template).render(Context(context))


def check_template(template: str) -> None:
    """Raise TemplateSyntaxError for a template that cannot compile."""
    ENGINE.from_string(template)


__all__ = [
    "TemplateSyntaxError",
    "check_template",
    "expression_names",
    "facts",
    "render",
    "run_context",
    "run_url",
]
