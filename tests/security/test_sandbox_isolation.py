"""User code of one project reaching for another's data, through a real run of a Python step.

The step runs in SALES as its owner (a coder); HR is the outsider's project, so the owner
sees none of it. Through ``cadenza.scenario`` (calls the worker performs with the run-as
user's rights) every way to name an HR dataset, model or scenario is refused with a reason;
on disk, the files of HR's datasets are out of the sandbox account's reach (when the worker
runs as root, as the sandbox then runs code as an account of its own).
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from django.conf import settings

from apps.accounts.models import ProfileKind
from apps.accounts.services import profile_assign
from apps.flow.models import Connection, Dataset
from apps.runs.models import LogLine, Run, StepRun
from apps.runs.runner import run_execute
from apps.runs.services import run_start
from apps.scenarios.models import Scenario, Step
from tests.security.conftest import World

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]
SECRET = "hr-payroll-4711"  # in HR's file and variables only: it must show up nowhere


@pytest.fixture
def hr_files_in_var(world: World):
    """An HR dataset on a connection without a root: its files live in VAR_DIR/data, as in
    any installation that keeps the default."""
    connection = Connection.objects.create(name="default-files", kind="filesystem", config={})
    dataset = Dataset.objects.create(
        project=world.hr.project, name="hrsecret_payroll", connection=connection, format="csv",
        path="hr-test/payroll.csv",
    )  # fmt: skip
    folder = settings.VAR_DIR / "data" / "hr-test"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "payroll.csv").write_text(f"name,salary\nalice,{SECRET}\n")
    yield dataset, folder / "payroll.csv"
    shutil.rmtree(folder, ignore_errors=True)


CODE = """
import json
from cadenza import scenario
from cadenza._rpc import call

tried = {}
def attempt(label, do):
    try:
        tried[label] = do()
    except scenario.CadenzaError as error:
        tried[label] = "refused: " + str(error)

attempt("build by name", lambda: scenario.build_dataset("hrsecret_orders"))
attempt("build by id", lambda: scenario.build_dataset("%(dataset_id)s"))
attempt("clear", lambda: scenario.run_step("clear", {"datasets": ["hrsecret_orders"]}))
attempt("metrics", lambda: scenario.compute_metrics("hrsecret_orders"))
attempt("checks", lambda: scenario.run_checks("hrsecret_orders"))
attempt("train", lambda: scenario.train_model("hrsecret_churn"))
attempt("run by name", lambda: scenario.run_scenario("HR/hrsecret_nightly"))
attempt("run by id", lambda: scenario.run_scenario(%(scenario_id)s))
attempt("read_dataset", lambda: call("read_dataset", name="hrsecret_orders"))
attempt("variables", scenario.get_variables)
for path in %(paths)r:
    try:
        tried[path] = open(path).read()
    except OSError as error:
        tried[path] = type(error).__name__
print(json.dumps(tried, default=str))
"""


def test_a_python_step_cannot_reach_another_projects_data(world: World, hr_files_in_var):
    sales, hr = world.sales, world.hr
    owner = sales["scenario"].run_as
    profile_assign(user=owner, kind=ProfileKind.CODER)
    hr.project.variables = {"payroll_key": SECRET}
    hr.project.save(update_fields=["variables"])
    _, payroll = hr_files_in_var
    paths = [str(payroll), str(payroll.parent)]
    code = CODE % {"dataset_id": hr["dataset"].pk, "scenario_id": hr["scenario"].pk,
                   "paths": paths}  # fmt: skip
    scenario = Scenario.objects.create(project=sales.project, name="reach", run_as=owner)
    Step.objects.create(scenario=scenario, position=0, name="reach", type="python",
                        params={"code": code})  # fmt: skip
    hr_runs = Run.objects.filter(scenario=hr["scenario"]).count()

    started = run_start(scenario=scenario, user=owner)
    run_execute(started.run.pk)

    log = list(LogLine.objects.filter(run=started.run).values_list("message", flat=True))
    tried = json.loads(next(line for line in log if line.startswith("{")))
    no_dataset = "No dataset hrsecret_orders in project SALES."
    refused = {
        "build by name": no_dataset,
        "build by id": f"No dataset {hr['dataset'].pk} in project SALES.",
        "clear": no_dataset,
        "metrics": no_dataset,
        "checks": no_dataset,
        "train": "No model 'hrsecret_churn' in project SALES.",
        "run by name": "No scenario 'HR/hrsecret_nightly' visible to the run-as user.",
        "run by id": f"No scenario '{hr['scenario'].pk}' visible to the run-as user.",
    }
    for label, message in refused.items():
        assert tried[label] == {"status": "failed", "output": None, "message": message}
    assert tried["read_dataset"] == "refused: ValueError: unknown method 'read_dataset'"
    assert tried["variables"]["projectKey"] == "SALES"
    if os.geteuid() == 0:  # else the child runs as the worker's own account, as the worker
        assert tried[str(payroll)] == tried[str(payroll.parent)] == "PermissionError"
    # Nothing of HR moved, and its data shows nowhere in the run.
    assert Run.objects.filter(scenario=hr["scenario"]).count() == hr_runs
    assert (world.root / "hrsecret.csv").exists()
    outputs = StepRun.objects.filter(run=started.run).values_list("output", "message")
    assert SECRET not in json.dumps([log, list(outputs)])
