"""The build engine: plan which recipes to run for the requested datasets, then run them.

Modes (DESIGN §6): ``only`` builds just the targets' recipes; ``required`` rebuilds what is
out of date upstream (and the targets if they are); ``force`` rebuilds everything upstream;
``missing`` builds what was never built. A dataset is out of date when its recipe changed
after it was built, or an input changed (was rebuilt, or its files changed), or an input is
itself out of date.
"""

from __future__ import annotations

from django.utils import timezone

from apps.flow import recipes as recipe_runner
from apps.flow import storage
from apps.flow.models import Dataset, Recipe
from apps.flow.storage import FlowError

MODES = ("only", "required", "force", "missing")


def producer(dataset: Dataset) -> Recipe | None:
    return dataset.producers.first()


def upstream_order(targets: list[Dataset]) -> list[Dataset]:
    """Datasets the targets depend on (targets included), inputs before outputs."""
    order: list[Dataset] = []
    state: dict[int, str] = {}

    def visit(dataset: Dataset, path: list[str]) -> None:
        if state.get(dataset.pk) == "done":
            return
        if state.get(dataset.pk) == "visiting":
            cycle = " → ".join([*path[path.index(dataset.name) :], dataset.name])
            raise FlowError(f"The flow has a cycle: {cycle}.")
        state[dataset.pk] = "visiting"
        recipe = producer(dataset)
        if recipe is not None:
            for source in recipe.inputs.select_related("connection", "project"):
                visit(source, [*path, dataset.name])
        state[dataset.pk] = "done"
        order.append(dataset)

    for target in targets:
        visit(target, [])
    return order


def stale(datasets: list[Dataset]) -> set[int]:
    """Ids of the out-of-date datasets among ``datasets`` (given in upstream order)."""
    out_of_date: set[int] = set()
    for dataset in datasets:
        recipe = producer(dataset)
        if recipe is None:
            continue
        if dataset.built_at is None or recipe.updated_at > dataset.built_at:
            out_of_date.add(dataset.pk)
            continue
        for source in recipe.inputs.all():
            changed = source.built_at if producer(source) else storage.data_changed_at(source)
            if source.pk in out_of_date or (changed and changed > dataset.built_at):
                out_of_date.add(dataset.pk)
                break
    return out_of_date


def plan(targets: list[Dataset], mode: str) -> list[Recipe]:
    """The recipes to run, in order, each once."""
    if mode not in MODES:
        raise FlowError(f"Unknown build mode {mode!r}; one of {', '.join(MODES)}.")
    order = upstream_order(targets)
    if mode == "only":
        chosen = [d for d in order if d in targets]
    elif mode == "force":
        chosen = order
    elif mode == "missing":
        chosen = [d for d in order if d.built_at is None]
    else:
        out_of_date = stale(order)
        chosen = [d for d in order if d.pk in out_of_date]
    recipes: list[Recipe] = []
    for dataset in chosen:
        recipe = producer(dataset)
        if recipe is None:
            if dataset in targets and mode == "only":
                raise FlowError(f"{dataset.name} is a source dataset: no recipe builds it.")
            continue
        if recipe not in recipes:
            recipes.append(recipe)
    return recipes


def build(targets: list[Dataset], mode: str, run: recipe_runner.RecipeRun) -> list[dict]:
    """Plan and run; each recipe's outputs are marked built. Stops at the first failure."""
    done = []
    for recipe in plan(targets, mode):
        run.log(f"Recipe {recipe.name} ({recipe.kind}) started")
        rows = recipe_runner.execute(recipe, run)
        dataset_mark_built(recipe, rows, run.schemas)
        run.log(
            f"Recipe {recipe.name} wrote "
            + ", ".join(f"{name}: {count} rows" for name, count in rows.items())
        )
        done.append({"recipe": recipe.name, "rows": rows})
    return done


def dataset_mark_built(recipe: Recipe, rows: dict[str, int], schemas: dict | None = None) -> None:
    """``schemas``: what the recipe learnt of its outputs' schemas (taken); the others are
    read from the new data."""
    now = timezone.now()
    for dataset in recipe.outputs.all():
        schema = (schemas or {}).pop(dataset.name, None) or storage.read_schema(dataset)
        Dataset.objects.filter(pk=dataset.pk).update(
            built_at=now, built_by=recipe, row_count=rows.get(dataset.name), schema=schema
        )


def dataset_clear(dataset: Dataset) -> None:
    """Delete the data, keep the definition."""
    storage.clear(dataset)
    Dataset.objects.filter(pk=dataset.pk).update(built_at=None, row_count=None, built_by=None)
