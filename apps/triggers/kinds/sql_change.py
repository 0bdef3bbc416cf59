from __future__ import annotations

import sqlite3

import psycopg
from rest_framework import serializers

from apps.triggers.kinds.base import Evaluation, TriggerKind, changed_with_grace, fingerprint

MAX_ROWS = 100  # rows of the result passed to the run


class SqlChange(TriggerKind):
    key = "sql_change"
    label = "SQL query change"
    feature = "trigger.sql_change"

    class Params(serializers.Serializer):
        connection = serializers.CharField()
        sql = serializers.CharField(help_text="One read-only statement: its result is watched.")

    def refusal(self, params: dict, user, project_id: int | None) -> str | None:
        from apps.flow.models import Connection

        connection = Connection.objects.filter(name=params["connection"]).first()
        if connection is None or not connection.is_sql:
            return f"connection: No SQL connection {params['connection']!r}."
        if not connection.usable_by(user):
            return f"connection: You may not use the connection {connection.name}."
        return None

    def evaluate(self, trigger, now):
        from apps.flow import storage
        from apps.flow.models import Connection

        connection = Connection.objects.filter(name=trigger.params["connection"]).first()
        if connection is None or not connection.is_sql:
            return Evaluation("error", f"No SQL connection {trigger.params['connection']!r}.")
        run_as = trigger.scenario.effective_run_as()
        if not connection.usable_by(run_as):
            return Evaluation(
                "error", f"{run_as or 'Nobody'} may not use the connection {connection.name}."
            )
        try:
            rows = storage.read_only_rows(connection, trigger.params["sql"])
        except (psycopg.Error, sqlite3.Error) as error:
            return Evaluation("error", f"The query failed: {error}".strip())
        result, state = changed_with_grace(
            trigger.state, fingerprint(rows), now, trigger.grace_seconds
        )
        if result != "fired":
            return Evaluation(result, f"{len(rows)} row(s)", state=state)
        shown = [
            [str(value) if value is not None else None for value in row] for row in rows[:MAX_ROWS]
        ]
        return Evaluation(
            "fired",
            f"the result changed ({len(rows)} rows)",
            {"rows": shown, "row_count": len(rows)},
            state,
        )
