"""The demo's project, connection, data files, datasets and recipes."""

from __future__ import annotations

from pathlib import Path

from apps.demo import data
from apps.demo import definitions as demo
from apps.demo.seeder import Seeder, validated_save
from apps.flow import storage
from apps.flow.models import Connection, Dataset, Recipe
from apps.flow.services import recipe_link
from apps.flow.validation import connection_errors, dataset_errors, recipe_errors
from apps.projects.models import Project
from apps.projects.services import project_create


def seed(seeder: Seeder) -> None:
    seeder.once(
        f"connection:{demo.CONNECTION}",
        Connection.objects.filter(name=demo.CONNECTION).first,
        _create_connection,
    )
    seeder.once(
        f"project:{demo.PROJECT['key']}",
        Project.objects.filter(key=demo.PROJECT["key"]).first,
        lambda: project_create(user=seeder.owner, **demo.PROJECT),
    )
    for relative, writer in demo.FILES.items():
        seeder.once(
            f"file:{relative}",
            lambda relative=relative: _file(seeder, relative).exists(),
            lambda relative=relative, writer=writer: _write(seeder, relative, writer),
        )
    for name, (path, file_format) in demo.DATASETS.items():
        seeder.once(
            f"dataset:{name}",
            seeder.finder(Dataset, name=name),
            lambda name=name, path=path, file_format=file_format: _create_dataset(
                seeder, name, path, file_format
            ),
        )
    for spec in demo.RECIPES:
        seeder.once(
            f"recipe:{spec['name']}",
            seeder.finder(Recipe, name=spec["name"]),
            lambda spec=spec: _create_recipe(seeder, spec),
        )


def _create_connection() -> None:
    # No root: the default folder, CADENZA_VAR_DIR/data, follows the installation if it moves.
    # Never var/ itself: a dataset path could then read the secret key or the database.
    connection = Connection(name=demo.CONNECTION, kind=Connection.Kind.FILESYSTEM, config={})
    errors = connection_errors(
        instance=None, name=connection.name, kind=connection.kind, config=connection.config
    )
    validated_save(connection, errors)


def _file(seeder: Seeder, relative: str) -> Path:
    return storage.root(seeder.connection()) / relative


def _write(seeder: Seeder, relative: str, writer: str) -> None:
    path = _file(seeder, relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(getattr(data, writer)())


def _create_dataset(seeder: Seeder, name: str, path: str, file_format: str) -> None:
    dataset = Dataset(
        project=seeder.project(),
        name=name,
        connection=seeder.connection(),
        format=file_format,
        path=path,
    )
    validated_save(dataset, dataset_errors(dataset))


def _create_recipe(seeder: Seeder, spec: dict) -> None:
    inputs = [seeder.dataset(name) for name in spec["inputs"]]
    outputs = [seeder.dataset(name) for name in spec["outputs"]]
    recipe = Recipe(
        project=seeder.project(), name=spec["name"], kind=spec["kind"], code=spec["code"]
    )
    validated_save(recipe, recipe_errors(recipe, inputs, outputs))
    recipe_link(recipe, inputs=inputs, outputs=outputs)
