"""Execute SQL on a connection of the Flow (PostgreSQL or SQLite, usable by the run-as user)
or on a database named in CADENZA_SQL_CONNECTIONS (which wins when a name is in both)."""

from __future__ import annotations

import datetime
import decimal
import sqlite3

import psycopg
from django.conf import settings
from django.db import DatabaseError, connections
from rest_framework import serializers

from apps.scenarios.steps.base import StepError, StepResult, StepType

SQL_KINDS = ("postgresql", "sqlite")


def _flow_connection(name: str):
    from apps.flow.models import Connection

    return Connection.objects.filter(name=name, kind__in=SQL_KINDS).first()


def _connection_names() -> list[str]:
    from apps.flow.models import Connection

    flow = Connection.objects.filter(kind__in=SQL_KINDS).values_list("name", flat=True)
    return sorted({*settings.CADENZA_SQL_CONNECTIONS, *flow})


class ExecuteSql(StepType):
    """Run SQL on a named connection: one of the Flow's, or of CADENZA_SQL_CONNECTIONS."""

    key = "sql"
    label = "Execute SQL"
    needs_code = True

    class Params(serializers.Serializer):
        connection = serializers.CharField(
            help_text="A PostgreSQL or SQLite connection of the Flow, or of the settings."
        )
        sql = serializers.CharField()
        max_rows = serializers.IntegerField(default=1000, min_value=1, max_value=100_000)

        def validate_connection(self, value):
            if value not in settings.CADENZA_SQL_CONNECTIONS and _flow_connection(value) is None:
                raise serializers.ValidationError(
                    f"Unknown connection {value!r}; configured: {_connection_names() or 'none'}."
                )
            return value

    def run(self, ctx, params):
        ctx.require("code", ctx.scenario)
        name = params["connection"]
        if name in settings.CADENZA_SQL_CONNECTIONS:
            return _run_on_alias(ctx, settings.CADENZA_SQL_CONNECTIONS[name], params)
        connection = _flow_connection(name)
        if connection is None:
            raise StepError(f"The connection {name!r} is not configured.")
        if not connection.usable_by(ctx.user):
            who = ctx.user.get_username() if ctx.user else "nobody"
            raise StepError(f"The run-as user {who} may not use the connection {name}.")
        return _run_on_flow(ctx, connection, params)


def _run_on_alias(ctx, alias: str, params: dict) -> StepResult:
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                _set_timeout(ctx, cursor)
            return _execute(ctx, cursor, params)
    except DatabaseError as error:
        raise StepError(f"SQL failed: {error}".strip()) from None
    finally:
        connection.close()  # this step's thread must not keep a connection open


def _run_on_flow(ctx, connection, params: dict) -> StepResult:
    from apps.flow.storage import sql_connect

    try:
        with sql_connect(connection) as db:
            cursor = db.cursor()
            if connection.kind == "postgresql":
                _set_timeout(ctx, cursor)
            return _execute(ctx, cursor, params)
    except (psycopg.Error, sqlite3.Error) as error:
        raise StepError(f"SQL failed: {error}".strip()) from None


def _set_timeout(ctx, cursor) -> None:
    if ctx.timeout:
        cursor.execute(
            "SELECT set_config('statement_timeout', %s, false)", [str(int(ctx.timeout * 1000))]
        )


def _execute(ctx, cursor, params: dict) -> StepResult:
    """The same output whatever the driver: rowcount, or columns, rows and truncated."""
    cursor.execute(params["sql"])
    if cursor.description is None:
        ctx.log(f"{cursor.rowcount} rows affected")
        return StepResult(output={"rowcount": cursor.rowcount})
    columns = [column[0] for column in cursor.description]
    rows = cursor.fetchmany(params["max_rows"] + 1)
    truncated = len(rows) > params["max_rows"]
    rows = [[_json_value(value) for value in row] for row in rows[: params["max_rows"]]]
    ctx.log(f"{len(rows)} rows{' (truncated)' if truncated else ''}")
    return StepResult(output={"columns": columns, "rows": rows, "truncated": truncated})


def _json_value(value):
    """Step outputs are JSON, and expressions compare them: numbers stay numbers (a decimal
    becomes an int or a float), dates and times become ISO text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)  # UUIDs, intervals, infinite decimals, …
