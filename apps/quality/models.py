from __future__ import annotations

from django.db import models

from apps.flow.models import Dataset


class Outcome(models.TextChoices):
    OK = "OK", "OK"
    WARNING = "WARNING", "Warning"
    ERROR = "ERROR", "Error"


class Metric(models.Model):
    class Kind(models.TextChoices):
        ROW_COUNT = "row_count", "Row count"
        COLUMN_COUNT = "column_count", "Column count"
        FILE_SIZE = "file_size", "File size (bytes)"
        MIN = "min", "Column minimum"
        MAX = "max", "Column maximum"
        MEAN = "mean", "Column mean"
        NULLS = "nulls", "Column nulls"
        DISTINCT = "distinct", "Column distinct values"
        SQL = "sql", "Custom SQL (one value)"

    COLUMN_KINDS = ("min", "max", "mean", "nulls", "distinct")

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="metrics")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    column = models.CharField(max_length=100, blank=True)
    sql = models.TextField(
        blank=True,
        help_text="Custom SQL: one value; the dataset is named "
        "by its name (files) or its table (SQL).",
    )

    project_path = "dataset__project"

    class Meta:
        ordering = ["dataset", "name"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="metric_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name}.{self.name}"


class MetricValue(models.Model):
    metric = models.ForeignKey(Metric, on_delete=models.CASCADE, related_name="values")
    value = models.FloatField(null=True)
    computed_at = models.DateTimeField(auto_now_add=True)
    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    project_path = "metric__dataset__project"

    class Meta:
        ordering = ["metric", "-computed_at"]
        indexes = [models.Index(fields=["metric", "-computed_at"], name="metric_history")]

    def __str__(self) -> str:
        return f"{self.metric_id} = {self.value} at {self.computed_at:%Y-%m-%d %H:%M}"


class Check(models.Model):
    """A check on a metric's last value: soft bounds warn, hard bounds fail; or Python."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="checks")
    name = models.CharField(max_length=100)
    metric = models.ForeignKey(Metric, on_delete=models.CASCADE, related_name="checks")
    soft_min = models.FloatField(null=True, blank=True)
    soft_max = models.FloatField(null=True, blank=True)
    hard_min = models.FloatField(null=True, blank=True)
    hard_max = models.FloatField(null=True, blank=True)
    code = models.TextField(blank=True, help_text="Python check (coders): see cadenza.check.")

    project_path = "dataset__project"

    class Meta:
        ordering = ["dataset", "name"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="check_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name}.{self.name}"


class Rule(models.Model):
    class Kind(models.TextChoices):
        NOT_EMPTY = "not_empty", "Not empty"
        NOT_NULL = "not_null", "No nulls in column"
        UNIQUE = "unique", "Unique column values"
        IN_RANGE = "in_range", "Column values in range"
        IN_SET = "in_set", "Column values in a set"
        REGEX = "regex", "Column values match a pattern"
        ROW_COUNT = "row_count", "Row count in range"

    class Severity(models.TextChoices):
        WARNING = "WARNING", "Warning"
        ERROR = "ERROR", "Error"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="rules")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    column = models.CharField(max_length=100, blank=True)
    params = models.JSONField(
        default=dict,
        blank=True,
        help_text="in_range/row_count: min, max · in_set: values · regex: pattern",
    )
    severity = models.CharField(max_length=8, choices=Severity.choices, default="ERROR")

    project_path = "dataset__project"

    class Meta:
        ordering = ["dataset", "name"]
        constraints = [models.UniqueConstraint(fields=["dataset", "name"], name="rule_unique_name")]

    def __str__(self) -> str:
        return f"{self.dataset.name}.{self.name}"


class QualityResult(models.Model):
    """History of check and rule outcomes."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    check_ref = models.ForeignKey(
        Check, null=True, blank=True, on_delete=models.CASCADE, related_name="results"
    )
    rule = models.ForeignKey(
        Rule, null=True, blank=True, on_delete=models.CASCADE, related_name="results"
    )
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    value = models.FloatField(null=True, blank=True)
    message = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)
    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    project_path = "dataset__project"

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.outcome}: {self.message[:60]}"
