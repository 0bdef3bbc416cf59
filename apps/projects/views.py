from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from apps.projects import permissions
from apps.projects.models import Project


@login_required
def project_list(request):
    projects = permissions.for_user(Project.objects.all(), request.user, "view")
    return render(request, "projects/list.html", {"projects": projects})
