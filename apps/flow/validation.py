"""Checks of connection, dataset and recipe input shared by the API and the admin.

Each returns errors keyed by field (empty when all is well), so the API answers 400 naming
the field and the admin shows the message beside it.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import PurePath

from django.conf import settings
from django.db.models import Q

from apps.flow import storage
from apps.flow.models import Connection, Dataset, Recipe
from apps.flow.storage import FlowError

# kind → config key → required?
CONFIG_KEYS: dict[str, dict[str, bool]] = {
    Connection.Kind.FILESYSTEM: {"root": False},
    Connection.Kind.POSTGRESQL: {"host": True, "port": True, "database": True, "user": True},
    Connection.Kind.SQLITE: {"path": True},
}
FILE_FORMATS = (Dataset.Format.CSV, Dataset.Format.PARQUET)

# -- connections --------------------------------------------------------------------------------


def connection_errors(
    *, instance: Connection | None, name: str | None, kind: str | None, config
) -> dict[str, str]:
    """Errors of a connection's name, kind (``instance``: as it was) and config."""
    errors = {}
    if name and name in settings.CADENZA_SQL_CONNECTIONS:
        errors["name"] = f"{name!r} already names a connection of CADENZA_SQL_CONNECTIONS."
    changes_kind = instance is not None and instance.pk and kind != instance.kind
    if changes_kind and instance.datasets.exists():
        errors["kind"] = "Datasets use this connection: its kind cannot change."
    problem = config_problem(kind, config) if kind in CONFIG_KEYS else None
    if problem:
        errors["config"] = problem
    return errors


def config_problem(kind: str, config) -> str | None:
    if not isinstance(config, dict):
        return "A JSON object, e.g. " + _example(kind) + "."
    keys = CONFIG_KEYS[kind]
    if "password" in config:
        return "Put the password in the password field: config is stored in clear."
    unknown = sorted(set(config) - set(keys))
    if unknown:
        return f"Unknown key {', '.join(unknown)}; a {kind} connection takes {', '.join(keys)}."
    missing = [key for key, required in keys.items() if required and config.get(key) in (None, "")]
    if missing:
        return f"A {kind} connection needs {', '.join(missing)}, e.g. {_example(kind)}."
    for key, value in config.items():
        problem = _value_problem(key, value)
        if problem:
            return f"{key}: {problem}"
    return None


def _value_problem(key: str, value) -> str | None:
    if key == "port":
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536
        return None if ok else "a whole number from 1 to 65535."
    if not isinstance(value, str) or not value.strip():
        return "a non-empty string."
    if key in ("root", "path") and not PurePath(value).is_absolute():
        return "an absolute path."
    return None


def _example(kind: str) -> str:
    return {
        Connection.Kind.FILESYSTEM: '{"root": "/srv/data"}',
        Connection.Kind.POSTGRESQL: (
            '{"host": "db.example.com", "port": 5432, "database": "dwh", "user": "cadenza"}'
        ),
        Connection.Kind.SQLITE: '{"path": "/srv/data/dwh.sqlite3"}',
    }.get(kind, "{}")


# -- datasets -----------------------------------------------------------------------------------


def dataset_errors(dataset: Dataset) -> dict[str, str]:
    """Errors of a dataset's format, path and table for its connection's kind."""
    connection = dataset.connection
    if connection.is_sql:
        errors = {}
        if dataset.format != Dataset.Format.TABLE:
            errors["format"] = f"{connection.name} is a {connection.kind} connection: use 'table'."
        if dataset.path:
            errors["path"] = "Only files datasets have a path; a SQL dataset names its table."
        table = dataset.table_name.lower()
        here = storage.database_of(connection)
        same_database = Q(connection_id__in=[
            other.pk for other in Connection.objects.filter(kind=connection.kind)
            if other.pk == connection.pk or storage.database_of(other) == here
        ])  # fmt: skip
        if not errors and _another_projects(
            dataset, same_database, lambda other: other.table_name.lower() == table
        ):
            field = "table" if dataset.table else "name"
            errors[field] = (
                f"Table {dataset.table_name} of {connection.name} is a dataset of another "
                "project: choose another table."
            )
        return errors
    if dataset.format not in FILE_FORMATS:
        return {"format": f"{connection.name} holds files: use 'csv' or 'parquet'."}
    if dataset.table:
        return {"table": "Only SQL datasets have a table; a files dataset has a path."}
    try:
        path = storage.files_path(dataset)
    except FlowError as error:
        return {"path": str(error)}

    def overlaps(other: Dataset) -> bool:
        try:
            theirs = storage.files_path(other)
        except FlowError:
            return False
        return theirs == path or theirs in path.parents or path in theirs.parents

    # Every files connection: two without a root share VAR_DIR/data, and roots may nest.
    if _another_projects(dataset, Q(connection__kind=connection.kind), overlaps):
        field = "path" if dataset.path else "name"
        return {
            field: f"{dataset.path or dataset.name} in {connection.name} holds (or is inside) "
            "the data of another project's dataset: choose another path."
        }
    return {}


def _another_projects(dataset: Dataset, where: Q, clashes) -> bool:
    """Does a dataset of another project (among ``where``) clash with this one? A project's
    data is its members' alone: on a shared connection, a dataset pointed at another
    project's file or table read it (a chart) and deleted it (Clear)."""
    others = Dataset.objects.filter(where).exclude(project_id=dataset.project_id)
    if dataset.pk is not None:
        others = others.exclude(pk=dataset.pk)  # moved to another project: no clash with itself
    return any(clashes(other) for other in others.select_related("connection"))


# -- recipes ------------------------------------------------------------------------------------


def recipe_errors(recipe: Recipe, inputs: list[Dataset], outputs: list[Dataset]) -> dict[str, str]:
    """Errors of a recipe (saved or not, its project set) with these inputs and outputs."""
    errors = _kind_errors(recipe, inputs, outputs)
    for field, datasets in (("inputs", inputs), ("outputs", outputs)):
        strangers = [d.name for d in datasets if d.project_id != recipe.project_id]
        if strangers:
            errors[field] = f"Not in project {recipe.project.key}: {', '.join(strangers)}."
    if not outputs:
        errors.setdefault("outputs", "A recipe writes at least one dataset.")
    if "outputs" not in errors:
        errors.update(output_errors(recipe, outputs))
    if not errors:
        cycle = cycle_through(recipe, inputs, outputs)
        if cycle:
            errors["inputs"] = f"The flow would have a cycle: {' → '.join(cycle)}."
    return errors


def _kind_errors(recipe: Recipe, inputs: list[Dataset], outputs: list[Dataset]) -> dict[str, str]:
    errors = {}
    if recipe.kind in (Recipe.Kind.SQL, Recipe.Kind.PYTHON) and not (recipe.code or "").strip():
        errors["code"] = f"A {recipe.get_kind_display()} recipe needs code."
    if recipe.kind == Recipe.Kind.SYNC:
        if len(inputs) != 1:
            errors["inputs"] = "A sync recipe copies exactly one input dataset."
        if len(outputs) != 1:
            errors["outputs"] = "A sync recipe copies to exactly one output dataset."
    if recipe.kind == Recipe.Kind.SQL:
        if len(outputs) > 1:
            errors["outputs"] = "A SQL recipe writes exactly one output dataset."
        elif _mixes_connections([*inputs, *outputs]):
            errors["inputs"] = (
                "A SQL recipe runs on files, or inside one database with all its datasets: "
                "these are on different connections; copy data over with a sync recipe first."
            )
    return errors


def _mixes_connections(datasets: list[Dataset]) -> bool:
    on_sql = any(d.connection.is_sql for d in datasets)
    return on_sql and len({d.connection_id for d in datasets}) > 1


def output_errors(recipe: Recipe, outputs: list[Dataset]) -> dict[str, str]:
    """A dataset has one producer: none of ``outputs`` may be another recipe's output."""
    taken = (
        Recipe.outputs.through.objects.filter(dataset__in=outputs)
        .exclude(recipe_id=recipe.pk)
        .select_related("recipe", "dataset")
        .order_by("dataset__name")
    )
    claims = [f"{row.dataset.name} (by {row.recipe.name})" for row in taken]
    if not claims:
        return {}
    return {"outputs": f"Already produced by another recipe: {', '.join(claims)}."}


def cycle_through(recipe: Recipe, inputs: list[Dataset], outputs: list[Dataset]) -> list[str]:
    """The dataset names around the cycle this recipe would close (empty when none), in the
    flow's direction: walking upstream from the inputs must never reach an output."""
    upstream = _project_upstream(recipe)
    for output in outputs:
        upstream[output.pk] |= {d.pk for d in inputs}
    targets = {d.pk for d in outputs}
    seen: set[int] = set()

    def walk(dataset_id: int, path: list[int]) -> list[int]:
        if dataset_id in targets:
            return [*path, dataset_id]
        if dataset_id in seen:
            return []
        seen.add(dataset_id)
        for source in upstream[dataset_id]:
            found = walk(source, [*path, dataset_id])
            if found:
                return found
        return []

    for dataset in inputs:
        found = walk(dataset.pk, [])
        if found:
            names = dict(Dataset.objects.filter(pk__in=found).values_list("pk", "name"))
            flow = [names[pk] for pk in reversed(found)]
            return [*flow, flow[0]]
    return []


def _project_upstream(recipe: Recipe) -> defaultdict[int, set[int]]:
    """dataset id → ids of the inputs of the recipes that write it, leaving ``recipe`` out."""
    others = Recipe.objects.filter(project_id=recipe.project_id).exclude(pk=recipe.pk)
    inputs_of: defaultdict[int, set[int]] = defaultdict(set)
    for recipe_id, dataset_id in Recipe.inputs.through.objects.filter(
        recipe__in=others
    ).values_list("recipe_id", "dataset_id"):
        inputs_of[recipe_id].add(dataset_id)
    upstream: defaultdict[int, set[int]] = defaultdict(set)
    for recipe_id, dataset_id in Recipe.outputs.through.objects.filter(
        recipe__in=others
    ).values_list("recipe_id", "dataset_id"):
        upstream[dataset_id] |= inputs_of[recipe_id]
    return upstream


def writes_python(before: Recipe | None, kind: str, code: str) -> bool:
    """Does this write put Python in a recipe (a new Python recipe, changed Python code, or
    code turned into Python)?"""
    if kind != Recipe.Kind.PYTHON:
        return False
    return before is None or before.kind != kind or before.code != code
