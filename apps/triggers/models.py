from __future__ import annotations

from django.db import models
from django_celery_beat.models import CrontabSchedule, IntervalSchedule

from apps.scenarios.models import Scenario


class Trigger(models.Model):
    class CatchUp(models.TextChoices):
        SKIP = "skip", "Skip missed slots"
        ONCE = "once", "Run once for missed slots"

    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="triggers")
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
        CrontabSchedule, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    interval = models.ForeignKey(
        IntervalSchedule, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
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

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="evaluations")
    at = models.DateTimeField(auto_now_add=True)
    result = models.CharField(max_length=10, choices=Result.choices)
    message = models.TextField(blank=True)
    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    project_path = "trigger__scenario__project"

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["trigger", "-at"], name="trigger_eval_recent"),
            # /metrics counts the last window by result; retention deletes by age.
            models.Index(fields=["at"], name="trigger_eval_at"),
        ]

    def __str__(self) -> str:
        return f"{self.result}: {self.message[:60]}"
