from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse

from apps.dashboards.models import Dashboard
from apps.projects import permissions
from apps.projects.models import Project


def dashboard_url(dashboard: Dashboard) -> str:
    return reverse("dashboard", kwargs={"key": dashboard.project.key, "dashboard_id": dashboard.pk})


@login_required
def dashboard_page(request, key: str, dashboard_id: int):
    project = permissions.get_object_for(Project.objects.all(), request.user, "view", key=key)
    dashboard = permissions.get_object_for(
        Dashboard.objects.filter(project=project), request.user, "view", pk=dashboard_id
    )
    charts = [
        {
            "id": c.pk,
            "element": f"chart-data-{c.pk}",
            "name": c.name,
            "kind": c.kind,
            "cached": c.cached,
            "cached_at": c.cached_at,
            "label": f"{c.aggregate}({c.value or '*'})",
        }
        for c in dashboard.charts.all()
    ]
    return render(
        request,
        "dashboards/dashboard.html",
        {"project": project, "dashboard": dashboard, "charts": charts},
    )
