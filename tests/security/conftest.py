"""Two projects populated with one object of every kind, for the security matrices.

SALES is the project under test: the cast holds every role in it. HR belongs to the outsider
(its admin). Every name in SALES carries ``salesonly`` and every name in HR ``hrsecret``, so a
response that leaks a row of the wrong project shows it in its text.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.accounts.services import token_create
from apps.dashboards.models import Chart, Dashboard
from apps.flow.models import Connection, Dataset, Recipe
from apps.ml.models import ModelCheck, ModelVersion, SavedModel
from apps.projects.models import Membership, Project, Role
from apps.quality.models import Check, Metric, MetricValue, QualityResult, Rule
from apps.reporters.models import Delivery, MessagingChannel, Reporter
from apps.runs.models import LogLine, StepRun
from apps.runs.services import run_start
from apps.scenarios.models import Scenario, Step
from apps.triggers.models import Trigger, TriggerEvaluation
from apps.triggers.services import trigger_save
from tests.conftest import PASSWORD, make_user

CAST_NAMES = {"owner": "alice", "editor": "bob", "operator": "olga", "reader": "rita",
              "outsider": "charlie"}  # fmt: skip
MEMBER_ROLES = {"owner": Role.ADMIN, "editor": Role.EDITOR, "operator": Role.OPERATOR,
                "reader": Role.READER}  # fmt: skip
FAST_HASHER = ["django.contrib.auth.hashers.MD5PasswordHasher"]

SALES_MARK = "salesonly"
HR_MARK = "hrsecret"

CSV = "id,status,amount,churned\n" + "".join(
    f"{i},{'ok' if i % 3 else 'late'},{i * 1.5},{i % 2}\n" for i in range(1, 41)
)


@dataclass
class Populated:
    """The objects of one project, by resource."""

    project: Project
    objects: dict[str, object] = field(default_factory=dict)

    def __getitem__(self, name: str):
        return self.objects[name]


@dataclass
class World:
    sales: Populated
    hr: Populated
    connection: Connection
    channel: MessagingChannel
    token: ApiToken  # the owner's
    token_key: str
    root: Path

    def restore_files(self) -> None:
        """Rewrite the source data: Clear deletes files, which no rollback brings back."""
        for mark in (SALES_MARK, HR_MARK):
            (self.root / f"{mark}.csv").write_text(CSV)


@pytest.fixture
def files_root():
    root = Path(tempfile.mkdtemp(prefix="cadenza-security-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def populate(project: Project, mark: str, *, owner, connection, channel, root: Path) -> Populated:
    raw = Dataset.objects.create(
        project=project, name=f"{mark}_orders", connection=connection, format="csv",
        path=f"{mark}.csv",
    )  # fmt: skip
    clean = Dataset.objects.create(
        project=project, name=f"{mark}_clean", connection=connection, format="csv",
        path=f"{mark}_clean.csv",
    )  # fmt: skip
    recipe = Recipe.objects.create(
        project=project, name=f"{mark}_cleaning", kind="sql",
        code=f"SELECT id, amount FROM {mark}_orders WHERE status = 'ok'",
    )  # fmt: skip
    recipe.inputs.set([raw])
    recipe.outputs.set([clean])
    metric = Metric.objects.create(dataset=raw, name=f"{mark}_rows", kind="row_count")
    MetricValue.objects.create(metric=metric, value=40)
    check = Check.objects.create(dataset=raw, metric=metric, name=f"{mark}_enough", hard_min=1)
    rule = Rule.objects.create(dataset=raw, name=f"{mark}_status", kind="not_null", column="status")
    model = SavedModel.objects.create(
        project=project, name=f"{mark}_churn", dataset=raw, target="churned",
        task="classification", algorithm="logistic_regression",
    )  # fmt: skip
    version = ModelVersion.objects.create(
        model=model, number=1, algorithm="logistic_regression", artifact=f"{mark}/v1.joblib"
    )
    model.active_version = version
    model.save(update_fields=["active_version"])
    ModelCheck.objects.create(model=model, name=f"{mark}_accuracy", metric="accuracy", hard_min=0)
    chart = Chart.objects.create(
        project=project, name=f"{mark}_by_status", dataset=raw, group_by="status"
    )
    dashboard = Dashboard.objects.create(project=project, name=f"{mark}_board")
    dashboard.charts.set([chart])

    scenario = Scenario.objects.create(
        project=project,
        name=f"{mark}_nightly",
        run_as=owner,
        queue_policy="parallel",
        max_parallel=10,
    )
    step = Step.objects.create(
        scenario=scenario, position=0, name=f"{mark}_define", type="set_variables",
        params={"variables": {"a": 1}},
    )  # fmt: skip
    trigger = trigger_save(
        Trigger(scenario=scenario, name=f"{mark}_daily", kind="time",
                params={"schedule": "daily", "time": "03:00"}),
        user=owner,
    )  # fmt: skip
    TriggerEvaluation.objects.create(trigger=trigger, result="skipped", message=f"{mark} why")
    reporter = Reporter.objects.create(scenario=scenario, name=f"{mark}_hook", channel=channel)
    run = run_start(scenario=scenario, user=owner).run
    step_run = StepRun.objects.create(
        run=run, position=0, name=f"{mark}_define", type="set_variables"
    )
    LogLine.objects.create(run=run, seq=1, ts=timezone.now(), message=f"{mark} log line",
                           step_run=step_run)  # fmt: skip
    delivery = Delivery.objects.create(
        reporter=reporter, channel=channel, run=run, event="end", subject=f"{mark} subject"
    )
    QualityResult.objects.create(dataset=raw, check_ref=check, outcome="OK", run=run)
    QualityResult.objects.create(dataset=raw, rule=rule, outcome="OK", run=run)
    return Populated(
        project=project,
        objects={
            "dataset": raw, "recipe": recipe, "metric": metric, "check": check, "rule": rule,
            "model": model, "chart": chart, "dashboard": dashboard, "scenario": scenario,
            "step": step, "trigger": trigger, "reporter": reporter, "run": run,
            "run-delivery": delivery,
        },
    )  # fmt: skip


def build_world(cast: dict, sales: Project, hr: Project, root: Path) -> World:
    connection = Connection.objects.create(
        name="files", kind="filesystem", config={"root": str(root)}
    )
    channel = MessagingChannel(name="hooks", kind="webhook", config={})
    # Loopback: outbound HTTP refuses it, so a test message fails fast without leaving.
    channel.secrets = {"url": "http://127.0.0.1:9/hook"}
    channel.save()
    common = {"connection": connection, "channel": channel, "root": root}
    populated_sales = populate(sales, SALES_MARK, owner=cast["owner"], **common)
    populated_sales.objects["membership"] = sales.memberships.get(user=cast["reader"])
    populated_hr = populate(hr, HR_MARK, owner=cast["outsider"], **common)
    populated_hr.objects["membership"] = hr.memberships.get(user=cast["outsider"])
    token, key = token_create(user=cast["owner"], name="owner's script")
    world = World(populated_sales, populated_hr, connection, channel, token, key, root)
    world.restore_files()
    return world


@pytest.fixture
def world(cast, project, other_project, files_root, no_dispatch) -> World:
    """The populated projects, made for one test (e.g. a transactional one)."""
    return build_world(cast, project, other_project, files_root)


def make_cast() -> dict:
    """The cast of tests/conftest.py (same names, roles and staff flags), made outside a test."""
    people = {
        "superuser": get_user_model().objects.create_superuser("root", password=PASSWORD),
        **{role: make_user(name, is_staff=True) for role, name in CAST_NAMES.items()},
    }
    sales = Project.objects.create(key="SALES", name="Sales", description="Sales data")
    hr = Project.objects.create(key="HR", name="Human resources")
    for role, level in MEMBER_ROLES.items():
        Membership.objects.create(project=sales, user=people[role], role=level)
    Membership.objects.create(project=hr, user=people["outsider"], role=Role.ADMIN)
    return people


@pytest.fixture(scope="module")
def shared_world(django_db_setup, django_db_blocker, tmp_path_factory):
    """``(world, cast)`` made once for a whole module, in a transaction rolled back at its end.

    Each test still runs in its own savepoint (the ``db`` fixture), and the matrices roll back
    each request, so every test and every request finds the projects as they were made.
    """
    root = tmp_path_factory.mktemp("security-files")
    outer = transaction.atomic()
    with django_db_blocker.unblock(), override_settings(PASSWORD_HASHERS=FAST_HASHER):
        outer.__enter__()
        try:
            cast = make_cast()
            world = build_world(cast, Project.objects.get(key="SALES"),
                                Project.objects.get(key="HR"), root)  # fmt: skip
        except BaseException:
            outer.__exit__(*sys.exc_info())
            raise
    yield world, cast
    with django_db_blocker.unblock():
        transaction.set_rollback(True)
        outer.__exit__(None, None, None)
