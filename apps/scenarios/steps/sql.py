from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError, connections
from rest_framework import serializers

from apps.scenarios.steps.base import StepError, StepResult, StepType


def _connection_names() -> list[str]:
    return sorted(settings.CADENZA_SQL_CONNECTIONS)


class ExecuteSql(StepType):
    """Run SQL on a named connection (CADENZA_SQL_CONNECTIONS until the Flow's connections)."""

    key = "sql"
    label = "Execute SQL"
    needs_code = True

    class Params(serializers.Serializer):
        connection = serializers.CharField()
        sql = serializers.CharField()
        max_rows = serializers.IntegerField(default=1000, min_value=1, max_value=100_000)

        def validate_connection(self, value):
            if value not in settings.CADENZA_SQL_CONNECTIONS:
                raise serializers.ValidationError(
                    f"Unknown connection {value!r}; configured: {_connection_names() or 'none'}."
                )
            return value

    def run(self, ctx, params):
        ctx.require("code", ctx.scenario)
        alias = settings.CADENZA_SQL_CONNECTIONS.get(params["connection"])
        if alias is None:
            raise StepError(f"The connection {params['connection']!r} is not configured.")
        connection = connections[alias]
        try:
            with connection.cursor() as cursor:
                if connection.vendor == "postgresql" and ctx.timeout:
                    cursor.execute(
                        "SELECT set_config('statement_timeout', %s, false)",
                        [str(int(ctx.timeout * 1000))],
                    )
                cursor.execute(params["sql"])
                if cursor.description is None:
                    ctx.log(f"{cursor.rowcount} rows affected")
                    return StepResult(output={"rowcount": cursor.rowcount})
                columns = [column[0] for column in cursor.description]
                rows = cursor.fetchmany(params["max_rows"] + 1)
        except DatabaseError as error:
            raise StepError(f"SQL failed: {error}".strip()) from None
        finally:
            connection.close()  # this step's thread must not keep a connection open
        truncated = len(rows) > params["max_rows"]
        rows = [list(row) for row in rows[: params["max_rows"]]]
        ctx.log(f"{len(rows)} rows{' (truncated)' if truncated else ''}")
        return StepResult(output={"columns": columns, "rows": rows, "truncated": truncated})
