from __future__ import annotations

from django.db import models

from apps.flow.models import Dataset, identifier
from apps.projects.models import Project


class SavedModel(models.Model):
    class Task(models.TextChoices):
        CLASSIFICATION = "classification", "Classification"
        REGRESSION = "regression", "Regression"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=63, validators=[identifier])
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="models")
    target = models.CharField(max_length=100)
    task = models.CharField(max_length=14, choices=Task.choices)
    algorithm = models.CharField(max_length=30, default="random_forest")
    params = models.JSONField(default=dict, blank=True)
    active_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    project_path = "project"

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="model_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.project.key}.{self.name}"


class ModelVersion(models.Model):
    model = models.ForeignKey(SavedModel, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    trained_at = models.DateTimeField(auto_now_add=True)
    algorithm = models.CharField(max_length=30)
    params = models.JSONField(default=dict)
    features = models.JSONField(default=list)
    metrics = models.JSONField(default=dict)
    train_rows = models.PositiveIntegerField(default=0)
    test_rows = models.PositiveIntegerField(default=0)
    artifact = models.CharField(max_length=500)
    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    project_path = "model__project"

    class Meta:
        ordering = ["model", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="model_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.model} v{self.number}"


class ModelCheck(models.Model):
    """A check on a metric of the model's active version (e.g. auc ≥ 0.75)."""

    model = models.ForeignKey(SavedModel, on_delete=models.CASCADE, related_name="checks")
    name = models.CharField(max_length=100)
    metric = models.CharField(max_length=20, help_text="accuracy, auc, f1, r2 or mae")
    soft_min = models.FloatField(null=True, blank=True)
    soft_max = models.FloatField(null=True, blank=True)
    hard_min = models.FloatField(null=True, blank=True)
    hard_max = models.FloatField(null=True, blank=True)

    project_path = "model__project"

    class Meta:
        ordering = ["model", "name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="model_check_unique")]

    def __str__(self) -> str:
        return f"{self.model.name}.{self.name}"
