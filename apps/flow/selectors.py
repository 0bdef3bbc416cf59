"""Reads of the flow shared by the admin and the API: usable connections, what is out of date."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Prefetch, Q, QuerySet

from apps.flow import build
from apps.flow.models import Connection, Dataset, Recipe


def connections_usable_by(user) -> QuerySet[Connection]:
    """The connections ``user`` may use (the queryset form of ``Connection.usable_by``)."""
    connections = Connection.objects.all()
    if not (user and user.is_authenticated and user.is_active):
        return connections.none()
    if user.is_superuser:
        return connections
    restricted = Connection.allowed_groups.through.objects.values("connection_id")
    theirs = restricted.filter(group__user=user)
    return connections.filter(~Q(pk__in=restricted) | Q(pk__in=theirs))


def out_of_date_ids(project_ids: Iterable[int]) -> set[int]:
    """Ids of the out-of-date datasets of these projects, in a fixed handful of queries.

    ``build.stale`` decides; the datasets come with their producer and its inputs (and
    theirs) prefetched, so it asks the database nothing more (files still get a stat).
    """
    inputs = Dataset.objects.select_related("connection").prefetch_related("producers")
    producers = Recipe.objects.prefetch_related(Prefetch("inputs", queryset=inputs))
    datasets = (
        Dataset.objects.filter(project_id__in=set(project_ids))
        .select_related("connection")
        .prefetch_related(Prefetch("producers", queryset=producers))
    )
    return build.stale(_upstream_first(list(datasets)))


def _upstream_first(datasets: list[Dataset]) -> list[Dataset]:
    """The datasets, each after the inputs of its producer (cycles are cut, not followed)."""
    by_id = {d.pk: d for d in datasets}
    order: list[Dataset] = []
    seen: set[int] = set()

    def visit(dataset: Dataset) -> None:
        if dataset.pk in seen:
            return
        seen.add(dataset.pk)
        for recipe in dataset.producers.all():
            for source in recipe.inputs.all():
                if source.pk in by_id:
                    visit(by_id[source.pk])
        order.append(dataset)

    for dataset in datasets:
        visit(dataset)
    return order
