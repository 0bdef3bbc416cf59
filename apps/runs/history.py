"""A page of a project's run history, as the run list API shows it: SQL written once per shape.

The list is the busiest read of the API (bench/api.py: 1M runs, 50 clients). Through the ORM,
each request built, compiled and read the same joined keyset query anew: with this module, a
whole request's CPU went from 7.6-8.0 to 4.9-5.4 ms (in-process, before the renderer's
share). Here the statement is written once per shape (which filters, which side of the
cursor, which direction) and cached; the values go through the same converters the
ORM applies (the backend's, then the field's), so SQLite and PostgreSQL read alike, and the
rows come out as RunSerializer's items, times left for the renderer to write in C
(tests/runs/test_api_rows.py pins the JSON to the serializer's).

Permission is the caller's: ``project_id`` must come from ``permissions.visible_project``.
"""

from __future__ import annotations

import functools
from datetime import tzinfo

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from apps.runs.models import Run
from apps.scenarios.models import Scenario
from apps.system import rows

# The list's filters (apps/runs/api.py RunFilterSerializer): name → (Run field, operator).
FILTERS = {
    "scenario": ("scenario", "="),
    "status": ("status", "="),
    "since": ("queued_at", ">="),
    "until": ("queued_at", "<"),
}

# The columns the page reads, in the order ``_render`` unpacks them: (the RunSerializer field
# it shows, model, field, where from: the run "r", its scenario "s", or the user of one of the
# run's foreign keys). The scenario is joined; the users are scalar subqueries, which
# PostgreSQL plans in a third of the time two more joins took (0.19 against 0.53 ms;
# planning cost more than executing).
_USER = get_user_model()
COLUMNS = [
    ("id", Run, "id", "r"), ("number", Run, "number", "r"), ("scenario", Run, "scenario", "r"),
    ("scenario_name", Scenario, "name", "s"), ("status", Run, "status", "r"),
    ("trigger_kind", Run, "trigger_kind", "r"), ("trigger_name", Run, "trigger_name", "r"),
    ("trigger_params", Run, "trigger_params", "r"),
    ("started_by", _USER, _USER.USERNAME_FIELD, "started_by"),
    ("run_as", _USER, _USER.USERNAME_FIELD, "run_as"),
    ("parent_run", Run, "parent_run", "r"), ("queued_at", Run, "queued_at", "r"),
    ("started_at", Run, "started_at", "r"), ("finished_at", Run, "finished_at", "r"),
    ("abort_requested_at", Run, "abort_requested_at", "r"),
    ("outcome_message", Run, "outcome_message", "r"),
]  # fmt: skip


def run_history_page(
    project_id: int,
    filters: dict,
    *,
    descending: bool = True,
    beyond: int | None = None,
    offset: int = 0,
    limit: int,
) -> list[dict]:
    """Up to ``limit`` runs of the project matching ``filters`` (names of FILTERS), by id
    (newest first when ``descending``), after skipping ``offset``; with ``beyond``, only the
    ids past it in that direction (the keyset cursor: one index range scan at any depth)."""
    names = tuple(name for name in FILTERS if name in filters)
    sql, converters = _page_sql(names, beyond is not None, descending)
    adapt = connection.ops.adapt_datetimefield_value
    values = [adapt(filters[name]) if name in ("since", "until") else filters[name]
              for name in names]  # fmt: skip
    params = [project_id, *values, *([beyond] if beyond is not None else []), limit, offset]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            _read_timestamps_in_c(cursor)
        cursor.execute(sql, params)
        found = cursor.fetchall()
    tz = timezone.get_current_timezone()
    return [_render(row, converters, tz) for row in found]


@functools.cache
def _page_sql(filters: tuple[str, ...], keyset: bool, descending: bool) -> tuple[str, list]:
    quote = connection.ops.quote_name
    fields = [(model._meta.get_field(name), source) for _, model, name, source in COLUMNS]
    select = ", ".join(_column(field, source) for field, source in fields)
    run_id, project = (quote(Run._meta.get_field(name).column) for name in ("id", "project"))
    where = [f"r.{project} = %s"]
    for name in filters:
        field, operator = FILTERS[name]
        where.append(f"r.{quote(Run._meta.get_field(field).column)} {operator} %s")
    if keyset:
        where.append(f"r.{run_id} {'<' if descending else '>'} %s")
    sql = (
        f"SELECT {select} FROM {quote(Run._meta.db_table)} r"
        f" INNER JOIN {quote(Scenario._meta.db_table)} s"
        f" ON s.{quote(Scenario._meta.pk.column)} = r.{quote(Run.scenario.field.column)}"
        f" WHERE {' AND '.join(where)}"
        f" ORDER BY r.{run_id} {'DESC' if descending else 'ASC'} LIMIT %s OFFSET %s"
    )
    # Only the columns that need one (on PostgreSQL: the JSON), as (index, column, converters).
    converters = []
    for index, (field, _) in enumerate(fields):
        column, convert = rows.converters(field)
        if convert:
            converters.append((index, column, convert))
    return sql, converters


def _column(field, source: str) -> str:
    quote = connection.ops.quote_name
    if source in ("r", "s"):
        return f"{source}.{quote(field.column)}"
    users, key = quote(field.model._meta.db_table), quote(field.model._meta.pk.column)
    through = quote(Run._meta.get_field(source).column)
    return f"(SELECT u.{quote(field.column)} FROM {users} u WHERE u.{key} = r.{through})"


def _read_timestamps_in_c(cursor) -> None:
    """psycopg's own timestamptz loader (in C with psycopg[binary]) on this cursor: Django's
    Python subclass of it, which only attaches the connection's time zone, took ~5 µs a value,
    1 ms of a page's 200. The instants are the same, aware; the page is rendered in the current
    time zone either way."""
    from psycopg import adapters, postgres
    from psycopg.pq import Format

    oid = postgres.types["timestamptz"].oid
    cursor.cursor.adapters.register_loader(oid, adapters.get_loader(oid, Format.TEXT))


def _render(row: tuple, converters: list, tz: tzinfo) -> dict:
    """RunSerializer's item, but for its times: datetimes in the current time zone, which
    DRF's JSON encoder writes as the serializer's DateTimeField would (ISO 8601, "Z" for UTC),
    and apps/system/renderers.py's in C."""
    values = list(row)
    for index, column, convert_all in converters:
        for convert in convert_all:
            values[index] = convert(values[index], column, connection)
    (
        id_,
        number,
        scenario,
        scenario_name,
        status,
        trigger_kind,
        trigger_name,
        trigger_params,
        started_by,
        run_as,
        parent_run,
        queued,
        started,
        finished,
        abort,
        message,
    ) = values
    return {
        "id": id_, "number": number, "scenario": scenario, "scenario_name": scenario_name,
        "status": status, "trigger_kind": trigger_kind, "trigger_name": trigger_name,
        "trigger_params": trigger_params, "started_by": started_by, "run_as": run_as,
        "parent_run": parent_run,
        "queued_at": queued and queued.astimezone(tz),
        "started_at": started and started.astimezone(tz),
        "finished_at": finished and finished.astimezone(tz),
        "duration_seconds": (finished - started).total_seconds() if started and finished else None,
        "abort_requested_at": abort and abort.astimezone(tz),
        "outcome_message": message,
    }  # fmt: skip
