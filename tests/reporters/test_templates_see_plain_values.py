"""Reporter and message templates are an editor's: they see plain values of the run, never the
model instances (whose relations reached every member's password hash and, through a
dataset's connection, its decrypted secrets)."""

from __future__ import annotations

import pytest

from apps.flow.models import Connection, Dataset
from apps.flow.services import connection_password_set
from apps.reporters.context import render, run_context
from apps.runs.services import run_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]
PASSWORD = "warehouse-pw-4711"


@pytest.fixture
def run(make_scenario, no_dispatch, cast, project):
    warehouse = Connection(name="warehouse", kind="postgresql", config={"host": "127.0.0.1"})
    connection_password_set(warehouse, password=PASSWORD, clear=False)
    warehouse.save()
    Dataset.objects.create(project=project, name="sales", connection=warehouse, format="table")
    scenario = make_scenario(name="O'Brien <b>nightly</b>", description="Daily & weekly")
    return run_start(scenario=scenario, user=cast["editor"], trigger_name="cron").run


def test_the_documented_names_render_as_plain_text(run, cast):
    template = (
        "{{ project.key }} / {{ scenario.name }} run #{{ run.number }} ({{ run }}) by "
        "{{ run.started_by }} as {{ run.run_as }}, {{ run.trigger_kind }} {{ run.trigger_name }}"
        ", {{ scenario.project.key }} {{ run.scenario.name }}: {{ outcome }}. "
        "{{ scenario.description }} {{ run.status }} {{ run.id }}"
    )
    assert render(template, run_context(run, "start")) == (
        f"SALES / O'Brien <b>nightly</b> run #1 ({run}) by {cast['editor'].username} as "
        f"{cast['owner'].username}, manual cron, SALES O'Brien <b>nightly</b>: running. "
        f"Daily & weekly queued {run.pk}"
    )


@pytest.mark.parametrize(
    "template",
    [
        "{{ run.started_by.password }}{{ run.run_as.password }}",
        "{% for m in project.memberships.all %}{{ m.user.password }}{% endfor %}",
        "{% for d in project.datasets.all %}{{ d.connection.secrets }}{% endfor %}",
        "{% for d in run.project.datasets.all %}{{ d.connection.secrets_encrypted }}{% endfor %}",
        "{{ scenario.run_as.password }}{{ scenario.updated_by.email }}",
        "{{ run.scenario.steps.all }}{{ run.step_runs.all }}{{ run.logs.all }}",
        "{{ run.text }}{{ project.items }}",
    ],
)
def test_relations_lead_nowhere(run, cast, template):
    rendered = render(template, run_context(run, "end"))
    assert PASSWORD not in rendered
    assert "QuerySet" not in rendered and "md5$" not in rendered and "@" not in rendered
    assert "gAAAA" not in rendered  # a Fernet token
    assert cast["owner"].password not in rendered


def test_a_template_cannot_change_what_the_next_one_sees(run, cast):
    context = run_context(run, "end")
    spoiler = "{{ run.clear }}{{ project.clear }}{{ trigger.clear }}{{ steps.clear }}"
    spoiler += "{{ variables.clear }}{{ trigger.params.popitem }}"
    render(spoiler, context)
    body = "{{ project.key }} #{{ run.number }} {{ trigger.name }} {{ run.started_by.username }}"
    assert render(body, context) == f"SALES #1 cron {cast['editor'].username}"
    assert render("{{ run.get_status_display }} {{ run.is_final }}", context) == "Queued False"
