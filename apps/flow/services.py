"""Flow writes every interface (API, admin) shares: connection passwords, recipe links,
building and clearing datasets on a user's behalf."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from apps.flow import build
from apps.flow.models import Connection, Dataset, Recipe
from apps.flow.recipes import RecipeRun
from apps.flow.storage import FlowError
from apps.flow.validation import output_errors


def connection_password_set(connection: Connection, *, password: str, clear: bool) -> None:
    """Blank keeps the stored password; ``clear`` removes it. The caller saves."""
    if not password and not clear:
        return
    secrets = connection.secrets
    if clear:
        secrets.pop("password", None)
    if password:
        secrets["password"] = password
    connection.secrets = secrets


def recipe_link(recipe: Recipe, *, inputs: list[Dataset], outputs: list[Dataset]) -> None:
    """Set a saved recipe's inputs and outputs; call inside a transaction.

    The outputs' rows are locked first and their producers checked again, so two recipes
    saved at once cannot both claim a dataset. Raises ValidationError naming ``outputs``.
    """
    list(Dataset.objects.select_for_update().filter(pk__in=[d.pk for d in outputs]))
    errors = output_errors(recipe, outputs)
    if errors:
        raise ValidationError(errors)
    recipe.inputs.set(inputs)
    recipe.outputs.set(outputs)


@dataclass
class BuildOutcome:
    recipes: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    error: str | None = None


def datasets_build(targets: list[Dataset], *, mode: str, user) -> BuildOutcome:
    """Build now, in the caller's thread, on behalf of ``user`` (who may change the targets).

    Synchronous for now (the API and admin actions wait for it); a build step in a scenario
    is the way to build in the background.
    """
    outcome = BuildOutcome()
    run = RecipeRun(
        log=lambda message, level="info": outcome.log.append(str(message)),
        cancel=threading.Event(),
        user=user,
    )
    try:
        _require_usable(targets, user)
        done = build.build(targets, mode, run)
    except FlowError as error:
        outcome.error = str(error)
        return outcome
    outcome.recipes = [item["recipe"] for item in done]
    outcome.rows = {name: count for item in done for name, count in item["rows"].items()}
    return outcome


def dataset_clear_for(dataset: Dataset, *, user) -> None:
    """Delete a dataset's data (the definition stays). FlowError when it cannot."""
    _require_usable([dataset], user)
    build.dataset_clear(dataset)


def _require_usable(datasets: list[Dataset], user) -> None:
    for dataset in datasets:
        if not dataset.connection.usable_by(user):
            raise FlowError(f"You may not use the connection {dataset.connection.name}.")
