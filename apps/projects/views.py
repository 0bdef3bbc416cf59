from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from apps.projects import permissions
from apps.projects.models import Project
from apps.runs.selectors import dashboard_scenarios


@login_required
def project_list(request):
    projects = permissions.for_user(Project.objects.all(), request.user, "view")
    return render(request, "projects/list.html", {"projects": projects})


@login_required
def project_dashboard(request, key: str):
    """Every scenario of the project: last outcome, next fire, running now, 30 days of runs."""
    project = permissions.get_object_for(Project.objects.all(), request.user, "view", key=key)
    context = {"project": project, "scenarios": dashboard_scenarios(project)}
    return render(request, "projects/dashboard.html", context)
