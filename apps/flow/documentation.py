"""Flow and model documentation, exported as self-contained HTML and Markdown files into the
project's managed folder (``var/exports/<PROJECT>/``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from apps.flow import build
from apps.flow.models import Dataset, Recipe
from apps.projects.models import Project

BOX_W, BOX_H, GAP_X, GAP_Y = 170, 34, 60, 16


def exports_folder(project: Project) -> Path:
    folder = settings.VAR_DIR / "exports" / project.key
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def exports_list(project: Project) -> list[dict]:
    folder = exports_folder(project)
    files = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    return [
        {
            "name": p.name,
            "size": p.stat().st_size,
            "modified": datetime.fromtimestamp(p.stat().st_mtime, tz=UTC),
        }
        for p in files
        if p.is_file()
    ]


def lineage(datasets: list[Dataset], recipes: list[Recipe]) -> dict:
    """Boxes placed in columns by depth (sources left), and arrows input → output."""
    producers = {out.pk: recipe for recipe in recipes for out in recipe.outputs.all()}
    depth: dict[int, int] = {}

    def depth_of(dataset: Dataset, seen=()) -> int:
        if dataset.pk not in depth:
            recipe = producers.get(dataset.pk)
            inputs = [d for d in recipe.inputs.all() if d.pk not in seen] if recipe else []
            depth[dataset.pk] = 1 + max(
                (depth_of(d, (*seen, dataset.pk)) for d in inputs), default=-1
            )
        return depth[dataset.pk]

    rows: dict[int, int] = {}
    boxes = {}
    for dataset in datasets:
        column = depth_of(dataset)
        row = rows[column] = rows.get(column, -1) + 1
        boxes[dataset.pk] = {
            "name": dataset.name,
            "x": 10 + column * (BOX_W + GAP_X),
            "y": 10 + row * (BOX_H + GAP_Y),
            "w": BOX_W,
            "h": BOX_H,
        }
    arrows = [
        {
            "x1": boxes[i.pk]["x"] + BOX_W,
            "y1": boxes[i.pk]["y"] + BOX_H / 2,
            "x2": boxes[o.pk]["x"],
            "y2": boxes[o.pk]["y"] + BOX_H / 2,
            "label": recipe.name,
        }
        for recipe in recipes
        for i in recipe.inputs.all()
        for o in recipe.outputs.all()
        if i.pk in boxes and o.pk in boxes
    ]
    width = max((b["x"] + BOX_W for b in boxes.values()), default=0) + 10
    height = max((b["y"] + BOX_H for b in boxes.values()), default=0) + 10
    return {"boxes": list(boxes.values()), "arrows": arrows, "width": width, "height": height}


def _write(project: Project, stem: str, context: dict, template: str) -> list[Path]:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    written = []
    for extension in ("html", "md"):
        path = exports_folder(project) / f"{stem}-{stamp}.{extension}"
        path.write_text(render_to_string(f"docs/{template}.{extension}", context))
        written.append(path)
    return written


def flow_docs_export(project: Project) -> list[Path]:
    datasets = list(
        project.datasets.select_related("connection", "built_by").prefetch_related(
            "metrics__values"
        )
    )
    recipes = list(project.recipes.prefetch_related("inputs", "outputs"))
    stale = build.stale(build.upstream_order(datasets)) if datasets else set()
    for dataset in datasets:
        dataset.out_of_date = dataset.pk in stale
        dataset.latest_metrics = [
            (m.name, next(iter(m.values.all()), None)) for m in dataset.metrics.all()
        ]
    context = {
        "project": project,
        "datasets": datasets,
        "recipes": recipes,
        "lineage": lineage(datasets, recipes),
        "generated": timezone.now(),
    }
    return _write(project, "flow", context, "flow")


def model_docs_export(model) -> list[Path]:
    versions = list(model.versions.all())
    context = {
        "project": model.project,
        "model": model,
        "versions": versions,
        "generated": timezone.now(),
    }
    return _write(model.project, f"model-{model.name}", context, "model")
