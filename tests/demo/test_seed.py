"""seed_demo: what it creates, that seeding again changes nothing, that the user's edits and
deletions survive it, and what the community edition gets."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from apps.dashboards.models import Chart, Dashboard
from apps.demo import definitions as demo
from apps.demo.models import DemoSeed
from apps.flow.models import Connection, Dataset, Recipe
from apps.ml.models import ModelCheck, SavedModel
from apps.projects.models import Membership, Project
from apps.quality.models import Check, Metric, Rule
from apps.reporters.models import MessagingChannel, Reporter
from apps.runs.models import Run
from apps.scenarios.models import Scenario, Step
from apps.triggers.models import Trigger

MODELS = [Project, Membership, Connection, Dataset, Recipe, Metric, Check, Rule, SavedModel,
          ModelCheck, Chart, Dashboard, Scenario, Step, Trigger, MessagingChannel, Reporter,
          Run, DemoSeed]  # fmt: skip


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def stamps() -> dict:
    """What an overwrite would change: edit times, codes, params."""
    return {
        "datasets": dict(Dataset.objects.values_list("name", "updated_at")),
        "recipes": dict(Recipe.objects.values_list("name", "updated_at")),
        "scenarios": dict(Scenario.objects.values_list("name", "updated_at")),
        "triggers": dict(Trigger.objects.values_list("name", "updated_at")),
        "steps": list(Step.objects.values_list("pk", "params")),
    }


def test_seed_creates_the_whole_demo(seed):
    report = seed()
    project = Project.objects.get(key="DEMO")
    assert not report.skipped
    assert set(project.datasets.values_list("name", flat=True)) == set(demo.DATASETS)
    assert set(project.scenarios.values_list("name", flat=True)) == {
        demo.BUILD_AND_CHECK, demo.RETRAIN, demo.INGEST,
    }  # fmt: skip
    assert project.memberships.get().user.username == "admin"
    assert Dashboard.objects.get(project=project).charts.count() == len(demo.CHARTS)
    assert Reporter.objects.get(scenario__project=project).channel.kind == "dataset"
    first = Run.objects.get(project=project)
    assert (first.scenario.name, first.status) == (demo.BUILD_AND_CHECK, "queued")
    # Every scenario runs as the admin, its last editor.
    assert {s.effective_run_as().username for s in project.scenarios.all()} == {"admin"}


def test_seeding_twice_changes_nothing(seed, var_dir):
    seed()
    before, stamped = counts(), stamps()
    files = {p: p.read_bytes() for p in (var_dir / "data" / "demo").rglob("*") if p.is_file()}
    report = seed()
    assert report.created == []
    assert counts() == before
    assert stamps() == stamped
    assert {p: p.read_bytes() for p in files} == files


def test_the_users_edits_and_deletions_survive_reseeding(seed, var_dir):
    seed()
    Recipe.objects.filter(name="aggregate_by_day").update(code="SELECT day FROM orders")
    Trigger.objects.filter(name="Every minute").delete()  # too noisy for this user
    Chart.objects.filter(name="Orders by region").delete()
    orders = var_dir / "data" / "demo" / "orders.csv"
    orders.write_text("order_id,day,amount\n1,2026-01-01,5\n")
    seed()
    assert Recipe.objects.get(name="aggregate_by_day").code == "SELECT day FROM orders"
    assert not Trigger.objects.filter(name="Every minute").exists()
    assert not Chart.objects.filter(name="Orders by region").exists()
    assert orders.read_text().startswith("order_id,day,amount\n1,")
    # (A saved model PROTECTs its dataset, so a project with models cannot be deleted in
    # one go: the model goes first.)
    SavedModel.objects.filter(project__key="DEMO").delete()
    Project.objects.get(key="DEMO").delete()
    seed()
    assert not Project.objects.filter(key="DEMO").exists()


def test_a_demo_object_never_seeded_before_is_added(seed):
    """A later version of the demo adds its new objects to an installation seeded before."""
    seed()
    Chart.objects.filter(name="Orders by region").delete()
    DemoSeed.objects.filter(key="chart:Orders by region").delete()  # as if it were new
    report = seed()
    assert report.created == ["chart:Orders by region"]
    assert Chart.objects.filter(project__key="DEMO", name="Orders by region").exists()


def test_community_edition_triggers(seed):
    report = seed()
    now = timezone.now()
    every_minute = Trigger.objects.get(name="Every minute")
    assert every_minute.enabled
    assert now < every_minute.next_fire_at <= now + timedelta(minutes=1)
    after = Trigger.objects.get(kind="after_scenario")
    assert after.enabled
    assert after.params["scenario"] == Scenario.objects.get(name=demo.BUILD_AND_CHECK).pk
    # Dataset-change triggers need the Team edition: created off, and the seed says why.
    drop = Trigger.objects.get(kind="dataset_change")
    assert (drop.enabled, drop.next_check_at) == (False, None)
    assert any("Team edition" in note for note in report.notes)


def test_team_edition_watches_the_drop_folder(seed, edition):
    edition("team")
    seed()
    drop = Trigger.objects.get(kind="dataset_change")
    assert drop.enabled
    assert (drop.check_interval_seconds, drop.grace_seconds) == (5, 2)
    assert drop.next_check_at <= timezone.now()


def test_command_seeds_for_the_admin_and_obeys_the_switch(admin, var_dir, no_dispatch, settings):
    settings.CADENZA_DEMO = False
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert "CADENZA_DEMO is off" in out.getvalue()
    assert not Project.objects.filter(key="DEMO").exists()
    settings.CADENZA_DEMO = True
    call_command("seed_demo", stdout=out)
    assert "Demo project DEMO: created" in out.getvalue()
    call_command("seed_demo", stdout=out)
    assert "Demo project DEMO: nothing to create." in out.getvalue()


@pytest.mark.django_db
def test_command_needs_a_superuser(var_dir):
    with pytest.raises(CommandError, match="ensure_admin"):
        call_command("seed_demo")
