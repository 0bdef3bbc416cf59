"""The scenario page (steps, triggers, reporters, history; Run and Abort) and its actions.

Actions are POST forms with CSRF. Each goes through the permission module (404 for
non-members, 403 without the right) and calls the service the admin and the API call.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.projects import permissions
from apps.projects.models import Project
from apps.reporters.models import Reporter
from apps.runs.selectors import (
    history_chart,
    scenario_active_runs,
    scenario_history,
    scenario_triggers,
)
from apps.runs.services import run_start
from apps.scenarios.models import Scenario
from apps.scenarios.services import scenario_set_active
from apps.triggers.models import Trigger
from apps.triggers.selectors import writes_code
from apps.triggers.services import trigger_save


def _scenario(request, key: str, scenario_id: int, action: str = "view") -> Scenario:
    project = permissions.get_object_for(Project.objects.all(), request.user, "view", key=key)
    return permissions.get_object_for(
        Scenario.objects.filter(project=project).select_related("project", "run_as", "updated_by"),
        request.user,
        action,
        pk=scenario_id,
    )


def scenario_url(scenario: Scenario) -> str:
    return reverse("scenario", kwargs={"key": scenario.project.key, "scenario_id": scenario.pk})


@login_required
def scenario_page(request, key: str, scenario_id: int):
    scenario = _scenario(request, key, scenario_id)
    user = request.user
    runs = scenario_history(scenario)
    triggers = scenario_triggers(scenario)
    may_code = permissions.can(user, "code", scenario)
    may_change = permissions.can(user, "change", scenario)
    for trigger in triggers:  # custom Python triggers are code: switching them needs a coder
        trigger.may_toggle = may_change and (may_code or not writes_code(trigger.kind))
    context = {
        "project": scenario.project,
        "scenario": scenario,
        "steps": list(scenario.steps.order_by("position", "id")),
        "triggers": triggers,
        "reporters": list(Reporter.objects.filter(scenario=scenario).select_related("channel")),
        "runs": runs,
        "active_runs": scenario_active_runs(scenario),
        "chart": history_chart(runs),
        "may_run": permissions.can(user, "run", scenario),
        "may_change": may_change,
    }
    return render(request, "scenarios/scenario.html", context)


@login_required
@require_POST
def scenario_run(request, key: str, scenario_id: int):
    """Start a run (operators); land on its page, or back here saying why it was skipped."""
    scenario = _scenario(request, key, scenario_id, "run")
    try:
        params = json.loads(request.POST.get("params") or "{}")
    except json.JSONDecodeError as error:
        params, problem = None, f"Parameters: not valid JSON ({error.msg})."
    else:
        problem = "" if isinstance(params, dict) else "Parameters: a JSON object, e.g. {}."
    if problem:
        messages.error(request, problem)
        return redirect(scenario_url(scenario))
    started = run_start(
        scenario=scenario,
        user=request.user,
        trigger_kind="manual",
        trigger_name=request.user.get_username(),
        trigger_params=params,
    )
    if started.run is None:
        active = f" (run #{started.active.number})" if started.active else ""
        messages.warning(request, f"Not started: {started.reason}{active}.")
        return redirect(scenario_url(scenario))
    return redirect("run", key=scenario.project.key, run_id=started.run.pk)


@login_required
@require_POST
def scenario_active(request, key: str, scenario_id: int):
    """Let automatic triggers start the scenario, or stop them (editors)."""
    scenario = _scenario(request, key, scenario_id, "change")
    active = request.POST.get("active") == "on"
    scenario_set_active(scenario, active=active)
    messages.success(request, f"Automatic triggers {'on' if active else 'off'}.")
    return redirect(scenario_url(scenario))


@login_required
@require_POST
def trigger_enabled(request, key: str, scenario_id: int, trigger_id: int):
    """Enable or disable one trigger through the trigger service (it keeps beat in step)."""
    scenario = _scenario(request, key, scenario_id)
    trigger = permissions.get_object_for(
        Trigger.objects.filter(scenario=scenario), request.user, "change", pk=trigger_id
    )
    if writes_code(trigger.kind) and not permissions.can(request.user, "code", trigger):
        raise PermissionDenied("Custom Python triggers need the coder profile and editor role.")
    trigger.enabled = request.POST.get("enabled") == "on"
    try:
        trigger_save(trigger, user=request.user)
    except (PermissionDenied, ValidationError) as error:
        reason = "; ".join(getattr(error, "messages", None) or [str(error)])
        messages.error(request, f"{trigger.name}: {reason}")
    else:
        messages.success(request, f"{trigger.name} {'enabled' if trigger.enabled else 'disabled'}.")
    return redirect(scenario_url(scenario))
