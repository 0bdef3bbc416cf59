"""What reporter templates and conditions see of a run: plain values, never model instances.

An editor writes the templates. Given the run itself, ``{{ run.started_by.password }}`` or
``{% for d in project.datasets.all %}{{ d.connection.secrets }}{% endfor %}`` rendered
password hashes and decrypted connection secrets into the message
(tests/reporters/test_templates_see_plain_values.py). So ``run``, ``scenario`` and ``project``
are ``View``s: the fields listed below, each a plain value, and the object's name as text.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from django.conf import settings
from django.template import Context, Engine, TemplateSyntaxError

from apps.runs.models import FINAL_STATUSES, LogLine, Run
from apps.scenarios.models import variable_name

# Plain-text messages: no HTML escaping of names and log lines.
ENGINE = Engine(autoescape=False)
LOG_TAIL = 20


class View(Mapping):
    """A model instance for templates: named plain values, and ``str()`` the instance's.
    Read-only: a template calls what it names, and a dict's ``clear`` would have emptied
    the context of the run's other reporters."""

    def __init__(self, text: str, values: dict):
        self._values, self._text = dict(values), text

    def __getitem__(self, key):
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __str__(self) -> str:
        return self._text


def user_view(user) -> View | str:
    if user is None:
        return ""
    values = {"username": user.get_username(), "full_name": user.get_full_name()}
    return View(user.get_username(), values)


def project_view(project) -> View:
    values = {"id": project.pk, "pk": project.pk, "key": project.key, "name": project.name,
              "description": project.description}  # fmt: skip
    return View(str(project), values)


def scenario_view(scenario, project: View) -> View:
    values = {
        "id": scenario.pk,
        "pk": scenario.pk,
        "name": scenario.name,
        "description": scenario.description,
        "kind": scenario.kind,
        "project": project,
    }
    return View(str(scenario), values)


def run_view(run: Run, scenario: View, project: View) -> View:
    values = {
        "id": run.pk,
        "pk": run.pk,
        "number": run.number,
        "status": run.status,
        "get_status_display": run.get_status_display(),
        "is_final": run.is_final,
        "outcome_message": run.outcome_message,
        "trigger_kind": run.trigger_kind,
        "trigger_name": run.trigger_name,
        "trigger_params": run.trigger_params,
        "queued_at": run.queued_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_seconds": run.duration_seconds,
        # Called by the template engine when a template names them: a query only then.
        "started_by": lambda: user_view(run.started_by),
        "run_as": lambda: user_view(run.run_as),
        "parent_run": run.parent_run_id,
        "scenario": scenario,
        "project": project,
    }
    return View(str(run), values)


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
    project = project_view(run.project)
    scenario = scenario_view(run.scenario, project)
    context = {
        "event": event,
        "run": run_view(run, scenario, project),
        "scenario": scenario,
        "project": project,
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
    names["scenarioName"], names["projectKey"] = (
        context["scenario"]["name"],
        context["project"]["key"],
    )
    return names


def facts(context: dict) -> dict:
    """Flat facts that travel with a delivery (webhook JSON, shell environment, Teams card)."""
    run = context["run"]
    return {
        "event": context["event"],
        "project": context["project"]["key"],
        "scenario": context["scenario"]["name"],
        "run_id": run["id"],
        "run_number": run["number"],
        "outcome": context["outcome"],
        "previous_outcome": context["previousOutcome"],
        "trigger": context["trigger"]["kind"],
        "trigger_name": context["trigger"]["name"],
        "run_url": context["run_url"],
        "duration": context["duration"],
    }


def render(template: str, context: dict) -> str:
    # Context escapes HTML unless told otherwise, whatever the engine says. Each template
    # gets its own copy: it may call what it names (a list's or dict's ``clear``, ``pop``).
    own = copy.deepcopy(context)
    return ENGINE.from_string(template).render(Context(own, autoescape=False))


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
