from __future__ import annotations

import re

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from apps.projects.models import Project

step_name_validator = RegexValidator(
    r"^[A-Za-z_][A-Za-z0-9_ -]{0,99}$",
    "Start with a letter or underscore; then letters, digits, spaces, '-' or '_'.",
)


class Scenario(models.Model):
    class Kind(models.TextChoices):
        STEPS = "steps", "Step-based"
        PYTHON = "python", "Python script"

    class QueuePolicy(models.TextChoices):
        SKIP = "skip", "Skip while a run is active"
        QUEUE_ONE = "queue_one", "Queue one run behind the active one"
        PARALLEL = "parallel", "Run in parallel (up to the maximum)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="scenarios")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.STEPS)
    script = models.TextField(blank=True, help_text="The Python code of a script scenario.")
    active = models.BooleanField(default=True, help_text="Automatic triggers may start it.")
    run_as = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Runs act with this user's rights (default: last editor).",
    )
    queue_policy = models.CharField(
        max_length=10, choices=QueuePolicy.choices, default=QueuePolicy.SKIP
    )
    max_parallel = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1)], help_text="For the parallel policy."
    )
    variables = models.JSONField(default=dict, blank=True)
    run_timeout_seconds = models.PositiveIntegerField(null=True, blank=True)
    run_counter = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    project_path = "project"

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="scenario_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.project.key} / {self.name}"

    def effective_run_as(self):
        return self.run_as or self.updated_by


class Step(models.Model):
    class Condition(models.TextChoices):
        NO_PRIOR_FAILURE = "no_prior_failure", "If no prior step failed"
        PRIOR_FAILURE = "prior_failure", "If some prior step failed"
        ALWAYS = "always", "Always"
        OUTCOME_IN = "outcome_in", "If the current outcome is one of"
        EXPRESSION = "expression", "If the expression is true"

    class WarningsAs(models.TextChoices):
        WARNING = "warning", "Warning"
        SUCCESS = "success", "Success"
        FAILED = "failed", "Failed"

    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=100, validators=[step_name_validator])
    type = models.CharField(max_length=50)
    params = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    run_condition = models.CharField(
        max_length=20, choices=Condition.choices, default=Condition.NO_PRIOR_FAILURE
    )
    condition_outcomes = models.JSONField(default=list, blank=True)
    condition_expression = models.TextField(blank=True)
    retries = models.PositiveSmallIntegerField(default=0)
    retry_delay_seconds = models.FloatField(default=0, validators=[MinValueValidator(0)])
    retry_backoff = models.FloatField(default=1.0, validators=[MinValueValidator(1.0)])
    timeout_seconds = models.PositiveIntegerField(null=True, blank=True)
    warnings_as = models.CharField(
        max_length=10, choices=WarningsAs.choices, default=WarningsAs.WARNING
    )
    proceed_on_failure = models.BooleanField(default=False)
    reset_failure_state = models.BooleanField(default=False)

    project_path = "scenario__project"

    class Meta:
        ordering = ["scenario", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["scenario", "name"], name="step_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.name} ({self.type})"

    @property
    def variable_name(self) -> str:
        return variable_name(self.name)


def variable_name(step_name: str) -> str:
    """'Build sales-data' → 'Build_sales_data', usable in stepOutcome_<name>."""
    return re.sub(r"[^A-Za-z0-9_]", "_", step_name)
