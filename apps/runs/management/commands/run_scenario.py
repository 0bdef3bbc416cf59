"""manage.py run_scenario PROJECT SCENARIO: start a run from a shell, cron or CI job."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.runs.models import Run, RunStatus
from apps.runs.services import run_start, run_wait
from apps.scenarios.models import Scenario

FAILED = (RunStatus.FAILED, RunStatus.ABORTED)


def parse_params(items: list[str]) -> dict:
    """KEY=VALUE pairs; a VALUE that parses as JSON (3, true, "x", [1]) is taken as JSON."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--param {item!r}: use KEY=VALUE.")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def find_scenario(project_key: str, reference: str) -> Scenario:
    scenarios = Scenario.objects.select_related("project", "run_as", "updated_by").filter(
        project__key=project_key
    )
    found = scenarios.filter(name=reference).first()
    if found is None and reference.isdigit():
        found = scenarios.filter(pk=int(reference)).first()
    if found is None:
        raise CommandError(f"No scenario {reference!r} in project {project_key!r}.")
    return found


class Command(BaseCommand):
    help = (
        "Start a run of a scenario as its run-as user (trigger kind 'command'). With --wait, "
        "wait for its outcome and exit 1 if it failed, was aborted or did not start."
    )

    def add_arguments(self, parser):
        parser.add_argument("project", help="project key, e.g. SALES")
        parser.add_argument("scenario", help="scenario name (or id)")
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="a trigger param (repeatable); VALUE is read as JSON when it parses",
        )
        parser.add_argument("--wait", action="store_true", help="wait for the outcome")
        parser.add_argument(
            "--timeout",
            type=float,
            metavar="SECONDS",
            help="with --wait: stop waiting after this long and exit 1 (the run goes on)",
        )
        parser.add_argument(
            "--inline",
            action="store_true",
            help="execute the run in this process rather than on a worker (implies --wait)",
        )

    def handle(self, *args, project, scenario, param, wait, timeout, inline, **options):
        if timeout is not None and timeout <= 0:
            raise CommandError("--timeout must be a positive number of seconds.")
        target = find_scenario(project, scenario)
        user = target.effective_run_as()
        if user is None:
            raise CommandError(f"{target} has no run-as user; set one (or edit it) first.")
        started = run_start(
            scenario=target,
            user=user,
            trigger_kind="command",
            trigger_name="manage.py run_scenario",
            trigger_params=parse_params(param),
        )
        if started.run is None:
            active = f" (run #{started.active.number})" if started.active else ""
            raise CommandError(f"{target}: not started, {started.reason}{active}.")
        run = started.run
        self.stdout.write(f"Started run #{run.number} of {target} (id {run.pk}) as {user}.")
        if inline:
            from apps.runs.runner import run_execute

            run_execute(run.pk)
        elif settings.MODE == "embedded":
            # This process's in-memory broker has no worker: the server's sweep sends it again.
            self.stdout.write("Embedded mode: the server picks the run up on its next sweep.")
        if wait or inline:
            self._report(run_wait(run, timeout=timeout), timeout)

    def _report(self, run: Run, timeout: float | None) -> None:
        if not run.is_final:
            raise CommandError(f"Run #{run.number} is still {run.status} after {timeout:g} s.")
        duration = f" in {run.duration_seconds:.1f} s" if run.duration_seconds is not None else ""
        outcome = f"Run #{run.number} ended {run.status}{duration}"
        message = f"{outcome}: {run.outcome_message}" if run.outcome_message else f"{outcome}."
        if run.status in FAILED:
            raise CommandError(message)
        self.stdout.write(message)
