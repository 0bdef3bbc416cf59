from __future__ import annotations

from django.db import models

from apps.flow.models import Dataset
from apps.projects.models import Project


class Chart(models.Model):
    class Kind(models.TextChoices):
        BAR = "bar", "Bars"
        LINE = "line", "Line"
        PIE = "pie", "Pie"

    class Aggregate(models.TextChoices):
        COUNT = "count", "Count of rows"
        SUM = "sum", "Sum"
        AVG = "avg", "Average"
        MIN = "min", "Minimum"
        MAX = "max", "Maximum"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="charts")
    name = models.CharField(max_length=100)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="charts")
    kind = models.CharField(max_length=5, choices=Kind.choices, default=Kind.BAR)
    group_by = models.CharField(max_length=100)
    aggregate = models.CharField(max_length=5, choices=Aggregate.choices, default="count")
    value = models.CharField(max_length=100, blank=True, help_text="Not needed for count.")
    cached = models.JSONField(
        default=dict, blank=True, editable=False, help_text="{labels, values} as last computed."
    )
    cached_at = models.DateTimeField(null=True, blank=True, editable=False)

    project_path = "project"

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="chart_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


class Dashboard(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="dashboards")
    name = models.CharField(max_length=100)
    charts = models.ManyToManyField(Chart, blank=True, related_name="dashboards")

    project_path = "project"

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="dashboard_unique_name")
        ]

    def __str__(self) -> str:
        return self.name
