"""Reads for the live dashboard pages (DESIGN §11): the project dashboard, a scenario's page,
a run's page and the monitoring page.

Each page costs a fixed number of queries whatever the number of scenarios, triggers or runs:
per-row facts come from subqueries or one grouped query, never from a loop
(tests/pages/test_queries.py measures it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import TruncDate
from django.http import QueryDict
from django.utils import timezone

from apps.projects import permissions
from apps.projects.models import Project
from apps.reporters.models import Delivery
from apps.runs.models import ACTIVE_STATUSES, FINAL_STATUSES, Run, RunStatus, StepRun
from apps.scenarios.models import Scenario
from apps.triggers.kinds import TRIGGER_KINDS
from apps.triggers.models import Trigger, TriggerEvaluation

STRIP_DAYS = 30
HISTORY_LIMIT = 50
# The colour of a day in the outcome strip is its worst outcome; this is the order of "worst".
SEVERITY = {RunStatus.FAILED: 4, RunStatus.ABORTED: 3, RunStatus.WARNING: 2, RunStatus.SUCCESS: 1}
# Kinds a run can carry besides the trigger kinds: who or what started it by hand.
STARTER_KINDS = ["manual", "api", "scenario", "command"]


# -- project dashboard ----------------------------------------------------------------------------


def dashboard_scenarios(project: Project, *, today: date | None = None) -> list[Scenario]:
    """The project's scenarios, each with ``last_run`` facts, ``next_fire_at``, ``running``
    (its active runs) and ``strip`` (one cell per day of the last 30). Three queries."""
    finished = Run.objects.filter(scenario=OuterRef("pk"), status__in=FINAL_STATUSES).order_by(
        "-id"
    )
    next_fire = (
        Trigger.objects.filter(scenario=OuterRef("pk"), enabled=True, next_fire_at__isnull=False)
        .order_by("next_fire_at")
        .values("next_fire_at")[:1]
    )
    scenarios = list(
        project.scenarios.annotate(
            last_run_id=Subquery(finished.values("pk")[:1]),
            last_run_number=Subquery(finished.values("number")[:1]),
            last_run_status=Subquery(finished.values("status")[:1]),
            last_run_finished_at=Subquery(finished.values("finished_at")[:1]),
            next_fire_at=Subquery(next_fire),
        ).order_by("name")
    )
    running: dict[int, list[Run]] = {}
    for run in project.runs.filter(status__in=ACTIVE_STATUSES).order_by("id"):
        running.setdefault(run.scenario_id, []).append(run)
    strips = outcome_strips(project, today=today)
    for scenario in scenarios:
        scenario.running = running.get(scenario.pk, [])
        scenario.strip = strips.get(scenario.pk) or _empty_strip(today)
    return scenarios


def _days(today: date | None) -> list[date]:
    today = today or timezone.localdate()
    return [today - timedelta(days=back) for back in range(STRIP_DAYS - 1, -1, -1)]


def _empty_strip(today: date | None) -> list[dict]:
    return [{"day": day, "status": None, "title": f"{day:%b %d}: no runs"} for day in _days(today)]


def outcome_strips(project: Project, *, today: date | None = None) -> dict[int, list[dict]]:
    """scenario id → one cell per day: the worst outcome of the day's finished runs, and a
    title counting them. One grouped query, so a scenario running every minute costs nothing."""
    days = _days(today)
    since = timezone.make_aware(datetime.combine(days[0], datetime.min.time()))
    counts: dict[tuple[int, date], dict[str, int]] = {}
    rows = (
        Run.objects.filter(project=project, status__in=FINAL_STATUSES, queued_at__gte=since)
        .annotate(day=TruncDate("queued_at"))
        .values("scenario_id", "day", "status")
        .annotate(n=Count("id"))
    )
    for row in rows:
        counts.setdefault((row["scenario_id"], row["day"]), {})[row["status"]] = row["n"]
    strips: dict[int, list[dict]] = {}
    for scenario_id in {key[0] for key in counts}:
        strips[scenario_id] = [_cell(day, counts.get((scenario_id, day), {})) for day in days]
    return strips


def _cell(day: date, counts: dict[str, int]) -> dict:
    if not counts:
        return {"day": day, "status": None, "title": f"{day:%b %d}: no runs"}
    worst = max(counts, key=lambda status: SEVERITY[status])
    detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return {"day": day, "status": worst, "title": f"{day:%b %d}: {detail}"}


# -- scenario page --------------------------------------------------------------------------------


def scenario_triggers(scenario: Scenario) -> list[Trigger]:
    """Its triggers, each with its last evaluation (``last_eval_*``): why it did or did not run."""
    last = TriggerEvaluation.objects.filter(trigger=OuterRef("pk")).order_by("-at", "-id")
    return list(
        scenario.triggers.annotate(
            last_eval_at=Subquery(last.values("at")[:1]),
            last_eval_result=Subquery(last.values("result")[:1]),
            last_eval_message=Subquery(last.values("message")[:1]),
        ).order_by("name")
    )


def scenario_history(scenario: Scenario, *, limit: int = HISTORY_LIMIT) -> list[Run]:
    """Its latest runs, newest first."""
    return list(scenario.runs.select_related("started_by", "run_as").order_by("-id")[:limit])


def history_chart(runs: list[Run]) -> dict:
    """Chart.js-ready series, oldest first: run numbers, durations (s) and outcomes."""
    ordered = list(reversed(runs))
    return {
        "labels": [f"#{run.number}" for run in ordered],
        "durations": [round(run.duration_seconds or 0, 2) for run in ordered],
        "statuses": [run.status for run in ordered],
        "ids": [run.pk for run in ordered],
    }


def scenario_active_runs(scenario: Scenario) -> list[Run]:
    return list(scenario.runs.filter(status__in=ACTIVE_STATUSES).order_by("id"))


# -- run page -------------------------------------------------------------------------------------


def runs_for_pages() -> QuerySet[Run]:
    return Run.objects.select_related(
        "scenario", "project", "run_as", "started_by", "parent_run", "abort_requested_by"
    )


def run_timeline(run: Run, *, now: datetime | None = None) -> list[dict]:
    """Its step runs, each placed on the run's time axis (``left`` and ``width`` in %)."""
    steps = list(StepRun.objects.filter(run=run).order_by("position", "attempt"))
    start = run.started_at
    end = run.finished_at or now or timezone.now()
    span = max((end - start).total_seconds(), 0.001) if start else None
    rows = []
    for step in steps:
        left = width = 0.0
        if span and step.started_at:
            step_end = step.finished_at or end
            left = max(0.0, (step.started_at - start).total_seconds() / span * 100)
            width = max(0.5, (step_end - step.started_at).total_seconds() / span * 100)
            width = min(width, 100 - left) if left < 100 else 0.5
        seconds = (
            (step.finished_at - step.started_at).total_seconds()
            if step.started_at and step.finished_at
            else None
        )
        rows.append({"step": step, "left": round(left, 2), "width": round(width, 2),
                     "seconds": seconds})  # fmt: skip
    return rows


def run_deliveries(run: Run) -> list[Delivery]:
    return list(run.deliveries.select_related("channel", "reporter").order_by("id"))


# -- monitoring page ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitorFilters:
    project: int | None = None
    scenario: int | None = None
    status: str | None = None
    trigger_kind: str | None = None

    def apply(self, runs: QuerySet[Run]) -> QuerySet[Run]:
        lookups = {
            "project_id": self.project,
            "scenario_id": self.scenario,
            "status": self.status,
            "trigger_kind": self.trigger_kind,
        }
        return runs.filter(**{field: value for field, value in lookups.items() if value})

    def query(self) -> str:
        pairs = [(name, getattr(self, name)) for name in self.__dataclass_fields__]
        return "&".join(f"{name}={value}" for name, value in pairs if value)


def monitor_filters(query: QueryDict) -> MonitorFilters:
    """Filters from the query string; a value that names nothing is ignored, not an error."""

    def number(name: str) -> int | None:
        value = query.get(name, "")
        return int(value) if value.isdigit() else None

    status = query.get("status") or None
    kind = query.get("trigger_kind") or None
    return MonitorFilters(
        project=number("project"),
        scenario=number("scenario"),
        status=status if status in RunStatus.values else None,
        trigger_kind=kind if kind in trigger_kinds() else None,
    )


def trigger_kinds() -> list[str]:
    return [*STARTER_KINDS, *TRIGGER_KINDS]


def monitor_runs(user, filters: MonitorFilters, *, recent: int = HISTORY_LIMIT) -> dict:
    """The runs ``user`` may see, filtered: running now, queued, recent failures (7 days), and
    the latest ones. Four queries, each bounded."""
    runs = filters.apply(
        permissions.for_user(Run.objects.select_related("scenario", "project"), user, "view")
    )
    week_ago = timezone.now() - timedelta(days=7)
    return {
        "running": list(runs.filter(status=RunStatus.RUNNING).order_by("-id")[:100]),
        "queued": list(runs.filter(status=RunStatus.QUEUED).order_by("id")[:100]),
        "failures": list(
            runs.filter(status=RunStatus.FAILED, finished_at__gte=week_ago).order_by("-id")[:20]
        ),
        "recent": list(runs.order_by("-id")[:recent]),
    }


def monitor_choices(user) -> dict:
    """What the filters offer: the projects and scenarios ``user`` may see, statuses, kinds."""
    projects = permissions.for_user(Project.objects.all(), user, "view").only("pk", "key", "name")
    scenarios = permissions.for_user(
        Scenario.objects.select_related("project").only("pk", "name", "project__key"), user, "view"
    ).order_by("project__key", "name")
    return {
        "projects": list(projects),
        "scenarios": list(scenarios),
        "statuses": RunStatus.choices,
        "trigger_kinds": trigger_kinds(),
    }
