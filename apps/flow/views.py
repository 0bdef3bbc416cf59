from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import render

from apps.flow.documentation import exports_folder, exports_list
from apps.projects import permissions
from apps.projects.models import Project


@login_required
def exports_page(request, key: str):
    project = permissions.get_object_for(Project.objects.all(), request.user, "view", key=key)
    return render(
        request, "docs/exports.html", {"project": project, "files": exports_list(project)}
    )


@login_required
def export_download(request, key: str, name: str):
    project = permissions.get_object_for(Project.objects.all(), request.user, "view", key=key)
    folder = exports_folder(project)
    path = (folder / name).resolve()
    if path.parent != folder.resolve() or not path.is_file():
        raise Http404("No such export.")
    content_type = "text/html" if path.suffix == ".html" else "text/markdown; charset=utf-8"
    return FileResponse(
        path.open("rb"), content_type=content_type, as_attachment=request.GET.get("download") == "1"
    )
