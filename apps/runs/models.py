from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.projects.models import Project
from apps.scenarios.models import Scenario


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    WARNING = "warning", "Warning"
    FAILED = "failed", "Failed"
    ABORTED = "aborted", "Aborted"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
FINAL_STATUSES = (RunStatus.SUCCESS, RunStatus.WARNING, RunStatus.FAILED, RunStatus.ABORTED)


class Run(models.Model):
    # No single-column indexes on scenario and project: the composite ones below start with
    # them, and every index is one more write per run.
    scenario = models.ForeignKey(
        Scenario, on_delete=models.CASCADE, related_name="runs", db_index=False
    )
    # Denormalised from the scenario: permission filters and the monitoring page read it.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="runs", db_index=False
    )
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    # While a run is active it holds a lane of its scenario; the unique (scenario, lane)
    # constraint is what enforces the queue policy under races. Lane "q" waits its turn.
    lane = models.CharField(max_length=8, null=True, blank=True, editable=False)  # noqa: DJ001
    trigger_kind = models.CharField(max_length=30, default="manual")
    trigger_name = models.CharField(max_length=200, blank=True)
    trigger_params = models.JSONField(default=dict, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    run_as = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    parent_run = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="child_runs"
    )
    queued_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    abort_requested_at = models.DateTimeField(null=True, blank=True)
    abort_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    definition = models.JSONField(default=dict, blank=True)
    variables = models.JSONField(default=dict, blank=True)
    outcome_message = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)

    project_path = "project"
    write_action = "run"

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["scenario", "number"], name="run_unique_number"),
            models.UniqueConstraint(
                fields=["scenario", "lane"],
                condition=Q(lane__isnull=False),
                name="run_one_per_lane",
            ),
        ]
        # The history pages newest first by id (keyset), filtered by project, status and
        # scenario: each filter the list API takes, and the two together, has an index that
        # ends in -id. Without the one for a scenario and a status (a scenario's failures),
        # PostgreSQL read ten rows of the project's failures, or of the scenario's runs, for
        # each one the page showed: 5 ms of its CPU a page once the table outgrew its cache.
        indexes = [
            models.Index(fields=["project", "-id"], name="run_project_recent"),
            models.Index(fields=["project", "status", "-id"], name="run_project_status_recent"),
            models.Index(fields=["scenario", "-id"], name="run_scenario_recent"),
            models.Index(fields=["scenario", "status", "-id"], name="run_scenario_status_recent"),
            models.Index(fields=["status", "heartbeat_at"], name="run_status_heartbeat"),
        ]

    def __str__(self) -> str:
        return f"{self.scenario} #{self.number}"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class StepRun(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCESS = "success", "Success"
        WARNING = "warning", "Warning"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        ABORTED = "aborted", "Aborted"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="step_runs")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    type = models.CharField(max_length=50)
    step = models.JSONField(default=dict, help_text="The step definition as it ran.")
    attempt = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    message = models.TextField(blank=True)
    error = models.TextField(blank=True)

    project_path = "run__project"
    write_action = "run"

    class Meta:
        ordering = ["run", "position", "attempt"]
        # /metrics builds its step-duration histogram over the steps finished lately.
        indexes = [models.Index(fields=["finished_at"], name="steprun_finished")]

    def __str__(self) -> str:
        return f"{self.run} · {self.name} (attempt {self.attempt})"


class LogLine(models.Model):
    class Level(models.TextChoices):
        DEBUG = "debug"
        INFO = "info"
        WARNING = "warning"
        ERROR = "error"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="log_lines")
    seq = models.PositiveIntegerField(help_text="Dense per run, from 1.")
    ts = models.DateTimeField()
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    step_run = models.ForeignKey(
        StepRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message = models.TextField()

    project_path = "run__project"

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="logline_unique_seq")]

    def __str__(self) -> str:
        return f"{self.seq} {self.level}: {self.message[:80]}"

    def as_message(self) -> dict:
        return {
            "seq": self.seq,
            "ts": self.ts.isoformat(),
            "level": self.level,
            "step_run": self.step_run_id,
            "message": self.message,
        }
