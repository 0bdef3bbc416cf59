"""The run page (header, step timeline, deliveries, live log), Abort, and the monitoring page
of every run the user can see. Reads come from ``apps.runs.selectors``; access from the
permission module (404 for non-members, 403 without the right)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.projects import permissions
from apps.projects.models import Project
from apps.runs.models import Run
from apps.runs.selectors import (
    monitor_choices,
    monitor_filters,
    monitor_runs,
    run_deliveries,
    run_timeline,
    runs_for_pages,
)
from apps.runs.services import run_abort


def _run(request, key: str, run_id: int, action: str = "view") -> Run:
    project = permissions.get_object_for(Project.objects.all(), request.user, "view", key=key)
    return permissions.get_object_for(
        runs_for_pages().filter(project=project), request.user, action, pk=run_id
    )


def _panels(run: Run) -> dict:
    return {"timeline": run_timeline(run), "deliveries": run_deliveries(run)}


@login_required
def run_page(request, key: str, run_id: int):
    run = _run(request, key, run_id)
    context = {
        "project": run.project,
        "scenario": run.scenario,
        "run": run,
        "may_run": permissions.can(request.user, "run", run),
        **_panels(run),
    }
    return render(request, "runs/run.html", context)


@login_required
def run_panels(request, key: str, run_id: int):
    """The step timeline and deliveries alone: the run page refreshes them as steps end."""
    run = _run(request, key, run_id)
    return render(request, "runs/_panels.html", {"run": run, **_panels(run)})


@login_required
@require_POST
def run_abort_view(request, key: str, run_id: int):
    run = run_abort(_run(request, key, run_id, "run"), user=request.user)
    if run.is_final:
        messages.success(request, f"Run #{run.number} aborted.")
    else:
        messages.success(request, f"Run #{run.number}: abort requested; it stops shortly.")
    return redirect("run", key=key, run_id=run.pk)


@login_required
def monitor_page(request):
    """All runs the user can see, across projects; the page keeps itself up to date over
    ``ws/monitor/`` and reloads its sections (``?sections=1``) when runs change."""
    filters = monitor_filters(request.GET)
    context = {"filters": filters, **monitor_runs(request.user, filters)}
    if request.GET.get("sections"):
        return render(request, "runs/_monitor_sections.html", context)
    return render(request, "runs/monitor.html", {**context, **monitor_choices(request.user)})
