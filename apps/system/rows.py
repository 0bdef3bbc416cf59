"""Model instances from one joined row of hand-written SQL, as the ORM would make them; and
such statements prepared once per database session.

For the few statements on the hottest paths (a run's claim, an API token's lookup) whose SQL is
written once per process instead of being built by the ORM on every call: the columns come
from the models' metadata, and the values go through the fields' converters and ``from_db``,
so a new field is read without a change here.
"""

from __future__ import annotations

import hashlib
import re
import weakref

from django.db import connection
from django.db.models import Model

Layout = list[tuple[type[Model], list, list]]


def select_list(joined: list[tuple[type[Model], str]]) -> tuple[str, Layout]:
    """The SELECT list of every concrete column of these (model, table alias) pairs, in
    order, and the layout that ``instances`` reads it back with: per model, its fields with
    their converters (the backend's, then the field's, as the ORM's compiler applies them)."""
    quote = connection.ops.quote_name
    layout = []
    for model, _ in joined:
        fields = list(model._meta.concrete_fields)
        layout.append((model, fields, [converters(field) for field in fields]))
    columns = ", ".join(
        f"{alias}.{quote(field.column)}"
        for (_, alias), (_, fields, _) in zip(joined, layout, strict=True)
        for field in fields
    )
    return columns, layout


def converters(field) -> tuple:
    """The column of ``field`` and what turns its database value into the field's: the
    backend's converters, then the field's, as the ORM's compiler applies them."""
    column = field.get_col(field.model._meta.db_table)
    return column, connection.ops.get_db_converters(column) + column.get_db_converters(connection)


def instances(row: tuple, layout: Layout) -> tuple[list[Model | None], int]:
    """One instance per model of ``layout`` (None for a LEFT JOIN's empty side: its primary
    key is NULL), and the index of the row's first column after them."""
    made, at = [], 0
    for model, fields, reads in layout:
        values = []
        for (column, convert_all), value in zip(reads, row[at : at + len(fields)], strict=True):
            for convert in convert_all:
                value = convert(value, column, connection)
            values.append(value)
        at += len(fields)
        missing = values[fields.index(model._meta.pk)] is None
        names = [field.attname for field in fields]
        made.append(None if missing else model.from_db(connection.alias, names, values))
    return made, at


# The statements each PostgreSQL session (psycopg connection) has prepared, by name.
_prepared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def execute_prepared(cursor, label: str, statement: str, params: list) -> None:
    """Execute ``statement`` (``%s`` placeholders) as a statement PostgreSQL prepared once
    per database session (``cadenza_<label>_<digest>``), for the hot ones whose planning costs
    about as much as their execution. After five executions PostgreSQL may keep a generic
    plan: only for statements whose plan cannot depend on the values (a lookup by a unique
    key), not for the run list's page (a generic plan scanned a small project's runs through
    the whole table: 228 ms instead of 1.7).

    A PREPARE lasts as long as the session and survives a rollback; behind a pooler, the
    processes need a session-mode pool (docs/operations.md, "A connection pooler").
    """
    name = f"cadenza_{label}_{hashlib.sha1(statement.encode()).hexdigest()[:12]}"
    names = _prepared.setdefault(connection.connection, set())
    if name not in names:
        numbers = iter(range(1, 1000))  # PREPARE takes $1, $2, … where psycopg takes %s
        numbered = re.sub("%s", lambda _: f"${next(numbers)}", statement)
        cursor.execute(f"PREPARE {name} AS {numbered}")
        names.add(name)
    cursor.execute(f"EXECUTE {name} ({', '.join(['%s'] * len(params))})", params)
