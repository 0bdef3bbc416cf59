from __future__ import annotations

from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from django.db import models

from apps.projects.models import Project
from apps.system.shared_resources import SharedResource

identifier = RegexValidator(
    r"^[A-Za-z_][A-Za-z0-9_]{0,62}$",
    "Use letters, digits and underscores, starting with a letter (it is used as a table name).",
)


class Connection(SharedResource, models.Model):
    """Where data lives; defined by administrators, usable by chosen groups."""

    class Kind(models.TextChoices):
        FILESYSTEM = "filesystem", "Filesystem folder"
        POSTGRESQL = "postgresql", "PostgreSQL"
        SQLITE = "sqlite", "SQLite"

    name = models.CharField(max_length=100, unique=True, validators=[identifier])
    kind = models.CharField(max_length=12, choices=Kind.choices)
    config = models.JSONField(
        default=dict,
        blank=True,
        help_text="filesystem: root · postgresql: host, port, database, user · sqlite: path",
    )
    secrets_encrypted = models.TextField(blank=True, editable=False)
    allowed_groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="+",
        help_text="Groups whose members may use it; none chosen means everyone.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    @property
    def is_sql(self) -> bool:
        return self.kind != self.Kind.FILESYSTEM


class Dataset(models.Model):
    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        PARQUET = "parquet", "Parquet"
        TABLE = "table", "SQL table"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=63, validators=[identifier])
    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="datasets")
    format = models.CharField(max_length=8, choices=Format.choices, default=Format.CSV)
    path = models.CharField(
        max_length=500, blank=True, help_text="Files: a file or a folder of parts, under the root."
    )
    table = models.CharField(
        max_length=63,
        blank=True,
        validators=[identifier],
        help_text="SQL: the table name (default: the dataset name).",
    )
    schema = models.JSONField(default=list, blank=True, editable=False)
    built_at = models.DateTimeField(null=True, blank=True, editable=False)
    built_by = models.ForeignKey(
        "Recipe", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    row_count = models.BigIntegerField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    project_path = "project"

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="dataset_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.project.key}.{self.name}"

    @property
    def table_name(self) -> str:
        return self.table or self.name


class Recipe(models.Model):
    class Kind(models.TextChoices):
        SQL = "sql", "SQL"
        PYTHON = "python", "Python"
        SYNC = "sync", "Sync (copy)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="recipes")
    name = models.CharField(max_length=100, validators=[identifier])
    kind = models.CharField(max_length=8, choices=Kind.choices)
    code = models.TextField(blank=True, help_text="SQL (a SELECT) or Python.")
    inputs = models.ManyToManyField(Dataset, related_name="consumers", blank=True)
    outputs = models.ManyToManyField(Dataset, related_name="producers")
    updated_at = models.DateTimeField(auto_now=True)

    project_path = "project"

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="recipe_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.project.key}.{self.name} ({self.kind})"
