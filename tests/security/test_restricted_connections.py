"""A connection kept to a group: its data reaches no one outside it, whatever way they ask.

The API's build, clear and chart refresh checked the datasets named; a recipe reading the
restricted dataset into one on an open connection, or a scenario step refreshing a chart or
training a model on it, read the data as the run-as user without asking.
"""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.dashboards.models import Chart
from apps.flow.models import Connection, Dataset, Recipe
from apps.ml.models import SavedModel
from apps.runs.models import StepRun
from apps.runs.runner import run_execute
from apps.runs.services import run_start
from apps.scenarios.models import Scenario, Step
from apps.triggers.models import Trigger, TriggerEvaluation
from apps.triggers.services import trigger_save, triggers_tick
from tests.flow.conftest import pg_connection  # noqa: F401 (a fixture)
from tests.security.conftest import World
from tests.triggers.conftest import edition  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]
API = "/api/v1/projects/SALES/"
PAY = "id,who,salary\n" + "".join(f"{i},emp{i},{1000 + i}\n" for i in range(20))


@pytest.fixture
def vault(world: World, cast, tmp_path):
    """SALES's payroll on a connection of the finance group, which the owner is in."""
    (tmp_path / "pay.csv").write_text(PAY)
    finance = Group.objects.create(name="finance")
    cast["owner"].groups.add(finance)
    vault = Connection.objects.create(name="vault", kind="filesystem",
                                      config={"root": str(tmp_path)})  # fmt: skip
    vault.allowed_groups.set([finance])
    return Dataset.objects.create(project=world.sales.project, name="payroll", connection=vault,
                                  format="csv", path="pay.csv")  # fmt: skip


@pytest.fixture
def copy_recipe(vault, world: World):
    """payroll (vault) → copy (the open ``files`` connection), by a sync recipe."""
    files = Connection.objects.get(name="files")
    copy = Dataset.objects.create(project=world.sales.project, name="copy", connection=files,
                                  format="csv", path="copy.csv")  # fmt: skip
    recipe = Recipe.objects.create(project=world.sales.project, name="steal", kind="sync")
    recipe.inputs.set([vault])
    recipe.outputs.set([copy])
    return copy


def test_a_recipe_reads_a_restricted_input_only_for_its_group(cast, api, copy_recipe):
    refused = api(cast["editor"]).post(f"{API}datasets/copy/build/", {"mode": "only"})
    assert refused.status_code == 400
    assert refused.json()["detail"] == (
        f"Recipe steal: {cast['editor']} may not use the connection vault (of payroll)."
    )
    copy_recipe.refresh_from_db()
    assert copy_recipe.built_at is None
    built = api(cast["owner"]).post(f"{API}datasets/copy/build/", {"mode": "only"})
    assert built.status_code == 200 and built.json()["rows"] == {"copy": 20}, built.json()


def run_as_editor(world: World, cast, step_type: str, params: dict) -> StepRun:
    scenario = Scenario.objects.create(project=world.sales.project, name=f"peek {step_type}",
                                       run_as=cast["editor"])  # fmt: skip
    Step.objects.create(scenario=scenario, position=0, name="s", type=step_type, params=params)
    run = run_start(scenario=scenario, user=cast["editor"]).run
    run_execute(run.pk)
    return StepRun.objects.get(run=run)


def test_steps_read_a_restricted_dataset_only_for_its_group(world: World, cast, vault):
    chart = Chart.objects.create(project=world.sales.project, name="pay", dataset=vault,
                                 group_by="who", aggregate="sum", value="salary")  # fmt: skip
    model = SavedModel.objects.create(project=world.sales.project, name="pay", dataset=vault,
                                      target="salary", task="regression",
                                      algorithm="linear_regression")  # fmt: skip
    refusal = "The run-as user may not use the connection vault (filesystem)."
    for step_type, params in [
        ("refresh_charts", {"charts": ["pay"]}),
        ("train_model", {"model": "pay"}),
        ("run_model_checks", {"model": "pay"}),
        ("export_model_docs", {"model": "pay"}),
    ]:
        step = run_as_editor(world, cast, step_type, params)
        assert (step.status, step.error or step.message) == ("failed", refusal), step_type
    chart.refresh_from_db()
    model.refresh_from_db()
    assert not chart.cached and model.active_version is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "alias", "path": "hrsecret.csv"}, "path"),  # HR's file
        ({"name": "alias", "path": "./sub/../hrsecret.csv"}, "path"),
        ({"name": "alias", "path": "."}, "path"),  # the folder holding HR's files
        ({"name": "ledger"}, "name"),  # no path: the name is the path, and HR has a "ledger"
    ],
)
def test_a_dataset_cannot_point_at_another_projects_data(world: World, cast, api, body, field):
    files = Connection.objects.get(name="files")
    Dataset.objects.create(project=world.hr.project, name="ledger", connection=files, format="csv")
    editor = api(cast["editor"])
    refused = editor.post(f"{API}datasets/", {**body, "connection": "files"}, format="json")
    assert refused.status_code == 400, refused.json()
    assert "another project's dataset: choose another path" in refused.json()[field][0]
    assert "HR" not in refused.json()[field][0]  # which project, the outsider may not know
    assert (world.root / "hrsecret.csv").exists()
    mine = editor.post(f"{API}datasets/", {"name": "mine", "connection": "files",
                                           "path": "sales/mine.csv"}, format="json")  # fmt: skip
    assert mine.status_code == 201, mine.json()


def test_a_table_of_another_project_cannot_be_named(world: World, cast, api, pg_connection):
    Dataset.objects.create(project=world.hr.project, name="payroll", connection=pg_connection,
                           format="table", table="Payroll")  # fmt: skip
    editor = api(cast["editor"])
    refused = editor.post(f"{API}datasets/", {"name": "peek", "connection": "warehouse",
                                              "table": "payroll"}, format="json")  # fmt: skip
    assert refused.status_code == 400 and "another project" in refused.json()["table"][0]
    named = editor.post(f"{API}datasets/", {"name": "payroll", "connection": "warehouse"},
                        format="json")  # fmt: skip
    assert named.status_code == 400 and "another project" in named.json()["name"][0]


def test_a_dataset_change_trigger_on_restricted_data_needs_a_writer_of_its_group(
    world: World, cast, api, vault, edition
):
    edition("team")
    scenario = Scenario.objects.create(project=world.sales.project, name="watch")
    body = {"scenario": scenario.pk, "name": "pay", "kind": "dataset_change",
            "params": {"datasets": ["payroll"]}}  # fmt: skip
    refused = api(cast["editor"]).post(f"{API}triggers/", body, format="json")
    assert refused.status_code == 400
    assert refused.json() == {
        "params": ["datasets: You may not use the connection vault (of payroll)."]
    }
    assert not Trigger.objects.filter(scenario=scenario).exists()
    made = api(cast["owner"]).post(f"{API}triggers/", body, format="json")  # in finance
    assert made.status_code == 201, made.json()


def test_two_connections_to_one_database_do_not_share_a_projects_table(
    world: World, cast, api, pg_connection, tmp_path
):
    """Another connection to the same database (another name, "localhost" for 127.0.0.1)
    reaches the same tables: a clash is a clash whichever connection names it."""
    Dataset.objects.create(project=world.hr.project, name="payroll", connection=pg_connection,
                           format="table")  # fmt: skip
    host = pg_connection.config["host"]
    alias = Connection.objects.create(
        name="alias",
        kind="postgresql",
        config={
            **pg_connection.config,
            "host": "localhost" if host == "127.0.0.1" else host.upper(),
        },
    )
    Connection.objects.create(name="other_db", kind="postgresql", config={
        **pg_connection.config, "database": "elsewhere"})  # fmt: skip
    editor = api(cast["editor"])
    refused = editor.post(f"{API}datasets/", {"name": "peek", "connection": alias.name,
                                              "table": "PAYROLL"}, format="json")  # fmt: skip
    assert refused.status_code == 400 and "another project" in refused.json()["table"][0]
    elsewhere = editor.post(f"{API}datasets/", {"name": "peek", "connection": "other_db",
                                                "table": "payroll"}, format="json")  # fmt: skip
    assert elsewhere.status_code == 201, elsewhere.json()
    # SQLite: two paths to one file are one database.
    (tmp_path / "sub").mkdir()
    Connection.objects.create(name="lite", kind="sqlite",
                              config={"path": str(tmp_path / "hr.sqlite3")})  # fmt: skip
    Connection.objects.create(
        name="lite2", kind="sqlite", config={"path": str(tmp_path / "sub" / ".." / "hr.sqlite3")}
    )
    Dataset.objects.create(
        project=world.hr.project,
        name="staff",
        connection=Connection.objects.get(name="lite"),
        format="table",
    )
    sqlite_refused = editor.post(f"{API}datasets/", {"name": "staff", "connection": "lite2"},
                                 format="json")  # fmt: skip
    assert sqlite_refused.status_code == 400, sqlite_refused.json()
    assert "another project" in sqlite_refused.json()["name"][0]


def test_two_connections_on_one_folder_do_not_share_a_projects_file(world: World, cast, api):
    """Connections without a root share VAR_DIR/data: a clash is a clash whichever it is."""
    hr_side = Connection.objects.create(name="hr-files", kind="filesystem", config={})
    Connection.objects.create(name="scratch", kind="filesystem", config={})
    Dataset.objects.create(project=world.hr.project, name="pay", connection=hr_side,
                           format="csv", path="hr-only/pay.csv")  # fmt: skip
    refused = api(cast["editor"]).post(f"{API}datasets/", {"name": "pay", "connection": "scratch",
                                       "path": "hr-only/pay.csv"}, format="json")  # fmt: skip
    assert refused.status_code == 400
    assert "another project's dataset" in refused.json()["path"][0]


def test_flow_check_lists_datasets_that_clashed_before_the_rule(world: World):
    """Datasets saved before the clash rule are not refused after the fact: flow_check names
    them (both sides) for an administrator, and exits non-zero."""
    files = Connection.objects.get(name="files")
    for project in (world.hr.project, world.sales.project):  # saved past the API's checks
        Dataset.objects.create(project=project, name="ledger", connection=files, format="csv")
    out = io.StringIO()
    with pytest.raises(CommandError, match="2 problem"):
        call_command("flow_check", stdout=out)
    listed = sorted(line.split(":")[0] for line in out.getvalue().splitlines())
    assert listed == [f"{world.hr.project.key}/ledger", f"{world.sales.project.key}/ledger"]
    Dataset.objects.filter(project=world.sales.project, name="ledger").delete()
    out = io.StringIO()
    call_command("flow_check", stdout=out)
    assert out.getvalue().strip() == "Every dataset passes."


def test_a_folder_of_parts_read_while_a_part_arrives(world: World, tmp_path):
    """The connection allows a folder dataset's folder, not the parts listed when made."""
    from apps.flow.storage import duckdb_connect, duckdb_source

    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "p1.csv").write_text("a\n1\n")
    files = Connection.objects.create(name="parts", kind="filesystem",
                                      config={"root": str(tmp_path)})  # fmt: skip
    dataset = Dataset.objects.create(project=world.sales.project, name="parts",
                                     connection=files, format="csv", path="parts")  # fmt: skip
    with duckdb_connect(datasets=[dataset]) as con:
        (parts / "p2.csv").write_text("a\n2\n")
        assert con.execute(f"SELECT sum(a) FROM {duckdb_source(dataset)}").fetchone() == (3,)


def test_a_dataset_change_trigger_watches_restricted_data_only_for_its_group(
    world: World, cast, vault, edition
):
    """Watching reads the data (when a file changes, a SQLite table's row count): a trigger
    whose run-as user is outside the group records an error instead, in the tick's batch."""
    edition("team")
    scenario = Scenario.objects.create(project=world.sales.project, name="watch pay",
                                       run_as=cast["editor"])  # fmt: skip
    trigger = trigger_save(Trigger(scenario=scenario, name="pay", kind="dataset_change",
                                   params={"datasets": ["payroll"]}, check_interval_seconds=1),
                           user=cast["owner"])  # fmt: skip

    def tick() -> TriggerEvaluation:
        Trigger.objects.filter(pk=trigger.pk).update(next_check_at=timezone.now())
        triggers_tick()
        return TriggerEvaluation.objects.filter(trigger=trigger).latest("pk")

    refused = tick()
    assert (refused.result, refused.message) == (
        "error",
        "The scenario's run-as user may not use the connection vault of payroll.",
    )
    trigger.refresh_from_db()
    assert trigger.state == {}  # nothing of the data was recorded
    cast["editor"].groups.add(Group.objects.get(name="finance"))
    assert tick().result == "unchanged"  # the baseline, now that the editor may read it
    trigger.refresh_from_db()
    assert "seen" in trigger.state
