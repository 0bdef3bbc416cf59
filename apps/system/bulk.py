"""Plain rows into a table, fast: COPY on PostgreSQL, ``bulk_create`` elsewhere.

For the writes that come by the thousand (a polled cycle's evaluations, a burst's fires),
where building and quoting a model instance per row cost more than the database's work.
"""

from __future__ import annotations

import psycopg
from django.db import IntegrityError, connection, models


def insert_rows(model: type[models.Model], columns: list[str], rows: list[tuple]) -> None:
    """Insert ``rows`` (values in ``columns`` order, attnames such as ``trigger_id``).

    Nothing is returned (no ids); a constraint violation raises Django's IntegrityError, as
    the ORM would, and the caller's transaction decides what is kept.
    """
    if not rows:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(model(**dict(zip(columns, row, strict=True))) for row in rows)
        return
    quote = connection.ops.quote_name
    names = ", ".join(quote(model._meta.get_field(column).column) for column in columns)
    try:
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY {quote(model._meta.db_table)} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    except psycopg.errors.IntegrityError as error:
        raise IntegrityError(*error.args) from error
