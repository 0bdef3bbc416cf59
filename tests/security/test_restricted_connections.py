"""A connection kept to a group: its data reaches no one outside it, whatever way they ask.

The API's build, clear and chart refresh checked the datasets named; a recipe reading the
restricted dataset into one on an open connection, or a scenario step refreshing a chart or
training a model on it, read the data as the run-as user without asking.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from apps.dashboards.models import Chart
from apps.flow.models import Connection, Dataset, Recipe
from apps.ml.models import SavedModel
from apps.runs.models import StepRun
from apps.runs.runner import run_execute
from apps.runs.services import run_start
from apps.scenarios.models import Scenario, Step
from tests.flow.conftest import pg_connection  # noqa: F401 (a fixture)
from tests.security.conftest import World

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
