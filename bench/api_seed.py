"""`python -m bench.api_seed seed|floor|explain`: the Django side of the `api` benchmark.

``seed`` writes 1,000,000 runs with one INSERT … SELECT generate_series (the ORM one by one
would take an hour) over 3 projects × 10 scenarios, 4 trigger kinds, mostly successes, spread
over 90 days with ids in time order, as a real history is; then VACUUM ANALYZE, as autovacuum
would have done long before a table reaches that size. The API user is a plain *reader*
member of the project (not a superuser), so every request goes through the permission filter.

``floor`` times the bare ORM query of each page the load generator asks for (same filter,
ordering and LIMIT), in this process, one after the other. ``explain`` prints EXPLAIN ANALYZE
of the list page and of its count.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import django

PROJECTS = ("BENCH", "OTHER", "THIRD")
SCENARIOS_PER_PROJECT = 10
DAYS = 90
PAGE = 50

# Per 100 runs: 80 success, 10 failed, 7 warning, 3 aborted (status is a function of the id,
# scattered by a multiplicative hash so that no scenario gets only failures).
INSERT_RUNS = """
INSERT INTO runs_run (
    scenario_id, project_id, number, status, lane, trigger_kind, trigger_name,
    trigger_params, queued_at, dispatched_at, started_at, finished_at, definition,
    variables, outcome_message, worker, run_as_id, started_by_id
)
SELECT
    s.id, s.project_id, (g / %(scenarios)s) + 1,
    CASE WHEN h < 80 THEN 'success' WHEN h < 90 THEN 'failed'
         WHEN h < 97 THEN 'warning' ELSE 'aborted' END,
    NULL,
    (ARRAY['manual', 'time', 'dataset_change', 'after_scenario'])[1 + (g * 31 %% 4)],
    '', '{}'::jsonb, q, q, q + interval '20 ms', q + interval '1 s' * (1 + g %% 300),
    %(definition)s::jsonb, %(variables)s::jsonb,
    CASE WHEN h >= 80 AND h < 90 THEN 'Step "load" failed.' ELSE '' END,
    'bench@seed', %(user)s, CASE WHEN g %% 4 = 0 THEN %(user)s END
FROM generate_series(0::bigint, %(rows)s - 1) AS g
CROSS JOIN LATERAL (SELECT (g * 7919) %% 100 AS h,
    now() - make_interval(days => %(days)s) + make_interval(days => %(days)s) * g / %(rows)s
    AS q) AS x
JOIN (SELECT id, project_id, row_number() OVER (ORDER BY id) - 1 AS slot
      FROM scenarios_scenario WHERE id = ANY(%(ids)s)) AS s ON s.slot = g %% %(scenarios)s
"""


# What a run stores of its scenario (apps.runs.services._definition): the list never reads it,
# the detail does. ~0.7 kB, as for a two-step scenario.
DEFINITION = {
    "scenario": {"id": 0, "name": "Nightly load", "kind": "steps", "script": "",
                 "run_timeout_seconds": 3600, "queue_policy": "skip"},
    "steps": [
        {"name": "extract", "type": "python", "enabled": True, "run_condition": "no_failure",
         "params": {"code": "import csv\nrows = list(csv.reader(open('in.csv')))\n" * 4},
         "retries": 2, "retry_delay_seconds": 30, "retry_backoff": 2.0, "timeout_seconds": 600},
        {"name": "load", "type": "build", "enabled": True, "run_condition": "no_failure",
         "params": {"datasets": ["orders_daily"], "mode": "recursive"}, "retries": 0},
    ],
}  # fmt: skip
VARIABLES = {"env": "prod", "region": "eu-west-1", "threshold": 0.25, "owner": "data-team"}


def _without_secondary_indexes(cursor, table: str) -> list[str]:
    """Drop the table's indexes that back no constraint; their definitions, to rebuild them
    after a bulk load (one sorted build each beats a million single-row inserts)."""
    cursor.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = %s AND NOT"
        " EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
        [table],
    )
    indexes = cursor.fetchall()
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    return [definition for _, definition in indexes]


def seed(rows: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from apps.accounts.services import token_create
    from apps.projects.models import Membership, Role
    from apps.projects.services import project_create
    from apps.scenarios.models import Scenario

    owner = get_user_model().objects.create_user("bench-owner")
    reader = get_user_model().objects.create_user("bench-reader")
    scenarios = []
    for key in PROJECTS:
        project = project_create(user=owner, key=key, name=f"Project {key}")
        Membership.objects.create(project=project, user=reader, role=Role.READER)
        scenarios += [
            Scenario.objects.create(project=project, name=f"Scenario {n}", run_as=owner)
            for n in range(SCENARIOS_PER_PROJECT)
        ]
    ids = [scenario.pk for scenario in scenarios]
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        # As pg_restore --disable-triggers: the generated rows reference only rows made
        # above, so checking 6 foreign keys a row (6M trigger calls) would prove nothing.
        cursor.execute("SET LOCAL session_replication_role = replica")
        indexes = _without_secondary_indexes(cursor, "runs_run")
        params = {"scenarios": len(ids), "user": owner.pk, "rows": rows, "days": DAYS}
        cursor.execute(INSERT_RUNS, {**params, "ids": ids, "definition": json.dumps(DEFINITION),
                                     "variables": json.dumps(VARIABLES)})  # fmt: skip
        inserted = time.monotonic() - started
        for definition in indexes:
            cursor.execute(definition)
        cursor.execute(
            "UPDATE scenarios_scenario s SET run_counter = r.top FROM (SELECT scenario_id,"
            " max(number) AS top FROM runs_run GROUP BY scenario_id) r WHERE r.scenario_id = s.id"
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE runs_run")
    _, token = token_create(user=reader, name="bench")
    bench = [scenario.pk for scenario in scenarios if scenario.project.key == PROJECTS[0]]
    return {
        "rows": rows,
        "insert_seconds": round(inserted, 1),
        "seed_seconds": round(time.monotonic() - started, 1),
        "token": token,
        "project": PROJECTS[0],
        "scenarios": bench,
    }


# The run's own columns that the list shows (the API adds the scenario's and users' names).
COLUMNS = ["id", "number", "project", "scenario", "status", "trigger_kind", "trigger_name",
           "trigger_params", "started_by", "run_as", "parent_run", "queued_at", "started_at",
           "finished_at", "abort_requested_at", "outcome_message"]  # fmt: skip


def page_query(project_key: str, filters: dict):
    """The page the list API serves for ``filters``, as bare as it gets: no join, no
    permission filter, no serialization."""
    from apps.projects.models import Project
    from apps.runs.models import Run

    project_id = Project.objects.values_list("pk", flat=True).get(key=project_key)
    lookups = {"scenario": "scenario_id", "status": "status"}
    runs = Run.objects.filter(project_id=project_id).only(*COLUMNS)
    runs = runs.filter(**{lookups[name]: value for name, value in filters.items()})
    return runs.order_by("-id")[:PAGE]


def floor(project_key: str, mixes: list[dict], repeat: int) -> dict:
    """Milliseconds per page query, for each filter mix in turn (first pass not kept)."""
    samples, queries = [], [page_query(project_key, filters) for filters in mixes]
    for round_ in range(repeat + 1):
        for query in queries:
            started = time.perf_counter()
            list(query.all())  # a fresh queryset: no result cache
            if round_:
                samples.append((time.perf_counter() - started) * 1000)
    return {"samples": samples}


def explain(project_key: str, mixes: list[dict], token: str) -> dict:
    """EXPLAIN ANALYZE of every query the real list view runs on runs_run, per filter mix."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="127.0.0.1")
    plans = {}
    for filters in mixes:
        url = f"/api/v1/projects/{project_key}/runs/"
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url, filters)
        label = "&".join(f"{key}={value}" for key, value in filters.items()) or "(none)"
        plans[label] = {"status": response.status_code, "queries": len(queries), "plans": []}
        for query in queries:
            if "runs_run" not in query["sql"] or not query["sql"].startswith("SELECT"):
                continue
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN ANALYZE {query['sql']}")
                plan = [row[0] for row in cursor.fetchall()]
            plans[label]["plans"].append({"sql": query["sql"], "plan": plan})
    return plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["seed", "floor", "explain"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--project", default=PROJECTS[0])
    parser.add_argument("--mixes", default="[{}]", help="JSON list of filter dicts")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--token", default="", help="the API token (explain)")
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    mixes = json.loads(options.mixes)
    if options.command == "seed":
        result = seed(options.rows)
    elif options.command == "floor":
        result = floor(options.project, mixes, options.repeat)
    else:
        result = explain(options.project, mixes, options.token)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
