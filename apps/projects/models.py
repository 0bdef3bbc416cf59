from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q


class Role(models.IntegerChoices):
    """Project roles; each includes the ones below it, so they compare as numbers."""

    READER = 10, "Reader"
    OPERATOR = 20, "Operator"
    EDITOR = 30, "Editor"
    ADMIN = 40, "Admin"


project_key_validator = RegexValidator(
    r"^[A-Z][A-Z0-9_]{1,31}$",
    "Use 2–32 upper-case letters, digits or underscores, starting with a letter (e.g. SALES).",
)


class Project(models.Model):
    key = models.CharField(max_length=32, unique=True, validators=[project_key_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    variables = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # The permission module reads these two: how to reach the project, and what writing needs.
    project_path = ""
    write_action = "admin"

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class Membership(models.Model):
    """Gives one user or one group a role on a project."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="project_memberships",
    )
    group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="project_memberships"
    )
    role = models.PositiveSmallIntegerField(choices=Role.choices, default=Role.READER)

    project_path = "project"
    write_action = "admin"

    class Meta:
        ordering = ["project", "-role"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False) & Q(group__isnull=True))
                | (Q(user__isnull=True) & Q(group__isnull=False)),
                name="membership_user_xor_group",
                violation_error_message="A membership names either a user or a group.",
            ),
            models.UniqueConstraint(
                fields=["project", "user"],
                condition=Q(user__isnull=False),
                name="membership_unique_user",
                violation_error_message="This user is already a member of the project.",
            ),
            models.UniqueConstraint(
                fields=["project", "group"],
                condition=Q(group__isnull=False),
                name="membership_unique_group",
                violation_error_message="This group is already a member of the project.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member} → {self.project} ({self.get_role_display()})"

    @property
    def member(self):
        return self.user or self.group
