"""The SQL step on a connection of the Flow: the test PostgreSQL, and SQLite."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from apps.accounts.models import ProfileKind
from apps.accounts.services import profile_assign
from apps.flow.models import Connection
from tests.runs.test_runner import execute, messages

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


@pytest.fixture
def coder_owner(cast):
    profile_assign(user=cast["owner"], kind=ProfileKind.CODER)
    return cast["owner"]


@pytest.fixture
def dwh(pg_connection):
    """The test PostgreSQL under a name CADENZA_SQL_CONNECTIONS does not use."""
    pg_connection.name = "dwh"
    pg_connection.save()
    return pg_connection


def sql(name: str, connection: str, statement: str, **params) -> dict:
    return {
        "name": name,
        "type": "sql",
        "params": {"connection": connection, "sql": statement, **params},
    }


def test_sql_step_runs_on_a_flow_connection_with_the_same_output(
    make_scenario, no_dispatch, coder_owner, dwh
):
    scenario = make_scenario(
        steps=[
            sql("create", "dwh", "CREATE TABLE sql_step_sales (region TEXT, amount NUMERIC)"),
            sql(
                "load",
                "dwh",
                "INSERT INTO sql_step_sales VALUES ('north', 3), ('south', 4.5), ('east', 5)",
            ),  # fmt: skip
            sql(
                "read",
                "dwh",
                "SELECT region, amount FROM sql_step_sales ORDER BY amount",
                max_rows=2,
            ),  # fmt: skip
            {
                "name": "gate",
                "type": "set_variables",
                "run_condition": "expression",
                "condition_expression": "stepOutput_read['rows'][1][1] > 4",
                "params": {"variables": {"checked": True}},
            },
            sql("drop", "dwh", "DROP TABLE sql_step_sales"),
        ]
    )
    run = execute(scenario, user=coder_owner)
    assert run.status == "success", messages(run)
    assert run.step_runs.get(name="read").output == {
        "columns": ["region", "amount"],
        "rows": [["north", 3], ["south", 4.5]],
        "truncated": True,
    }
    assert run.step_runs.get(name="load").output == {"rowcount": 3}
    assert run.variables["checked"] is True


def test_sql_step_on_a_flow_sqlite_connection(make_scenario, no_dispatch, coder_owner, tmp_path):
    Connection.objects.create(name="local", kind="sqlite", config={"path": str(tmp_path / "l.db")})
    scenario = make_scenario(
        steps=[
            sql("create", "local", "CREATE TABLE t (day TEXT, n INTEGER)"),
            sql("load", "local", "INSERT INTO t VALUES ('2026-01-01', 1), ('2026-01-02', 2)"),
            sql("read", "local", "SELECT day, n FROM t ORDER BY n"),
        ]
    )
    run = execute(scenario, user=coder_owner)
    assert run.status == "success", messages(run)
    assert run.step_runs.get(name="read").output == {
        "columns": ["day", "n"],
        "rows": [["2026-01-01", 1], ["2026-01-02", 2]],
        "truncated": False,
    }


def test_the_run_as_user_must_be_allowed_to_use_the_connection(
    make_scenario, no_dispatch, coder_owner, dwh
):
    team = Group.objects.create(name="dwh-team")
    dwh.allowed_groups.add(team)
    scenario = make_scenario(steps=[sql("read", "dwh", "SELECT 1")])
    refused = execute(scenario, user=coder_owner)
    assert refused.status == "failed"
    assert "may not use the connection dwh" in refused.step_runs.get().message
    coder_owner.groups.add(team)
    assert execute(scenario, user=coder_owner).status == "success"


def test_database_errors_fail_the_step_with_the_message(
    make_scenario, no_dispatch, coder_owner, dwh
):
    scenario = make_scenario(steps=[sql("bad", "dwh", "SELECT * FROM no_such_table")])
    run = execute(scenario, user=coder_owner)
    assert run.status == "failed"
    assert 'relation "no_such_table" does not exist' in run.step_runs.get().message


def test_only_sql_connections_are_accepted(make_scenario, no_dispatch, coder_owner, orders_flow):
    scenario = make_scenario(steps=[sql("bad", "files", "SELECT 1")])
    run = execute(scenario, user=coder_owner)
    assert "Unknown connection 'files'" in run.step_runs.get().message


@pytest.mark.django_db(transaction=True, databases=["default", "sql_warehouse"])
def test_a_settings_connection_wins_over_a_flow_connection_of_the_same_name(
    make_scenario, no_dispatch, coder_owner, pg_connection
):
    assert pg_connection.name == "warehouse"  # also in CADENZA_SQL_CONNECTIONS (SQLite)
    scenario = make_scenario(steps=[sql("which", "warehouse", "SELECT sqlite_version()")])
    run = execute(scenario, user=coder_owner)
    assert run.status == "success", messages(run)
