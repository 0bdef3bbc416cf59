from __future__ import annotations

from django.db import models
from django_celery_beat.models import CrontabSchedule, IntervalSchedule

from apps.scenarios.models import Scenario


class Trigger(models.Model):
    class CatchUp(models.TextChoices):
        SKIP = "skip", "Skip missed slots"
        ONCE = "once", "Run once for missed slots"

    # Indexes are few and partial on purpose: every check rewrites the row (next_check_at),
    # and each index is one more write per trigger per check. (scenario, name) is unique.
    scenario = models.ForeignKey(
        Scenario, on_delete=models.CASCADE, related_name="triggers", db_index=False
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20)
    enabled = models.BooleanField(default=True)
    params = models.JSONField(default=dict, blank=True)
    check_interval_seconds = models.PositiveIntegerField(default=60)
    grace_seconds = models.PositiveIntegerField(
        default=0, help_text="Wait until the source is stable this long before firing."
    )
    catch_up = models.CharField(max_length=4, choices=CatchUp.choices, default=CatchUp.SKIP)
    # Time-based triggers: the schedule lives in django-celery-beat's tables.
    crontab = models.ForeignKey(
        CrontabSchedule,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    interval = models.ForeignKey(
        IntervalSchedule,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    state = models.JSONField(default=dict, blank=True, editable=False)
    next_check_at = models.DateTimeField(null=True, blank=True, editable=False)
    next_fire_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_fired_at = models.DateTimeField(null=True, blank=True, editable=False)
    suspended_reason = models.CharField(max_length=300, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    project_path = "scenario__project"

    class Meta:
        ordering = ["scenario", "name"]
        constraints = [
            models.UniqueConstraint(fields=["scenario", "name"], name="trigger_unique_name")
        ]
        indexes = [
            models.Index(
                fields=["crontab"],
                name="trigger_crontab",
                condition=models.Q(crontab__isnull=False),
            ),
            models.Index(
                fields=["interval"],
                name="trigger_interval",
                condition=models.Q(interval__isnull=False),
            ),
            models.Index(
                fields=["next_fire_at"],
                name="trigger_due_fire",
                condition=models.Q(enabled=True, next_fire_at__isnull=False),
            ),
            models.Index(
                fields=["next_check_at"],
                name="trigger_due_check",
                condition=models.Q(enabled=True, next_check_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scenario} ← {self.name} ({self.kind})"


class TriggerFire(models.Model):
    """One row per (trigger, slot): the unique key that makes a second beat, a redelivered
    message or a racing worker create no second run."""

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="fires")
    slot = models.DateTimeField()
    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    project_path = "trigger__scenario__project"

    class Meta:
        ordering = ["-slot"]
        constraints = [
            models.UniqueConstraint(fields=["trigger", "slot"], name="trigger_fire_once_per_slot")
        ]

    def __str__(self) -> str:
        return f"{self.trigger_id} @ {self.slot:%Y-%m-%d %H:%M:%S}"


class TriggerEvaluation(models.Model):
    class Result(models.TextChoices):
        FIRED = "fired", "Fired"
        UNCHANGED = "unchanged", "Unchanged"
        WAITING = "waiting", "Waiting for the grace delay"
        SKIPPED = "skipped", "Skipped (the scenario is running)"
        SUSPENDED = "suspended", "Suspended (license)"
        ERROR = "error", "Error"

    # A cycle writes one row per trigger: (trigger, -at) serves the FK too, and the run
    # index holds only the rows that have a run.
    trigger = models.ForeignKey(
        Trigger, on_delete=models.CASCADE, related_name="evaluations", db_index=False
    )
    at = models.DateTimeField(auto_now_add=True)
    result = models.CharField(max_length=10, choices=Result.choices)
    message = models.TextField(blank=True)
    run = models.ForeignKey(
        "runs.Run",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )

    project_path = "trigger__scenario__project"

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(
                fields=["run"], name="trigger_eval_run", condition=models.Q(run__isnull=False)
            ),
            models.Index(fields=["trigger", "-at"], name="trigger_eval_recent"),
            # /metrics counts the last window by result; retention deletes by age.
            models.Index(fields=["at"], name="trigger_eval_at"),
        ]

    def __str__(self) -> str:
        return f"{self.result}: {self.message[:60]}"
