"""What the apps built on datasets (quality, models, charts) may learn of a dataset's data on a
user's behalf: whether they may use its connection, and its columns when they can be known."""

from __future__ import annotations

import sqlite3

import psycopg

from apps.flow import storage
from apps.flow.models import Dataset
from apps.flow.storage import FlowError
from apps.system.encryption import SecretsUnreadable

# Reading a dataset that was never built, or whose database is unreachable, fails with one of
# these; the columns are then unknown, and checked again when the metric, model or chart runs.


def read_errors() -> tuple[type[Exception], ...]:
    # duckdb is imported on first use only (apps/system/lazy.py).
    from apps.flow.storage import duckdb

    return (FlowError, duckdb.Error, psycopg.Error, sqlite3.Error, SecretsUnreadable, OSError)


NUMERIC_TYPES = ("BIGINT", "DOUBLE")


def require_usable(dataset: Dataset, user) -> None:
    """FlowError unless ``user`` may use the dataset's connection."""
    if not dataset.connection.usable_by(user):
        raise FlowError(f"You may not use the connection {dataset.connection.name}.")


def known_columns(dataset: Dataset, user) -> dict[str, str] | None:
    """Column name → type: the stored schema, or else detected from the data (and stored)
    when ``user`` may use the connection; None when the columns cannot be known yet."""
    if not dataset.schema:
        if dataset.pk is None or not dataset.connection.usable_by(user):
            return None
        try:
            storage.dataset_columns(dataset)
        except read_errors():
            return None
    return {column["name"]: column["type"] for column in dataset.schema}


def unknown_column(columns: dict[str, str] | None, dataset: Dataset, name: str) -> str | None:
    """Why ``name`` is not a column of the dataset (None when it is, or cannot be known)."""
    if columns is None or name in columns:
        return None
    listed = ", ".join(columns) or "none"
    return f"No column {name!r} in {dataset.name} (columns: {listed})."
