from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models


class ProfileKind(models.TextChoices):
    READER = "reader", "Reader"
    DESIGNER = "designer", "Designer"
    CODER = "coder", "Coder"


class Profile(models.Model):
    """What a user may do across projects: readers only watch; coders may write code."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="cadenza_profile"
    )
    kind = models.CharField(
        "profile", max_length=16, choices=ProfileKind.choices, default=ProfileKind.DESIGNER
    )

    def __str__(self) -> str:
        return f"{self.user} ({self.kind})"


class ApiToken(models.Model):
    """A personal API token. Only a SHA-256 of the key is stored; the key is shown once."""

    PREFIX_LENGTH = 8

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=PREFIX_LENGTH, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @staticmethod
    def new_key() -> str:
        return "cdz_" + secrets.token_urlsafe(32)


class InstalledLicense(models.Model):
    """A license document as installed; the newest row is the active one."""

    document = models.TextField(help_text="The signed license document (JSON).")
    edition = models.CharField(max_length=20, editable=False)
    licensee = models.CharField(max_length=200, editable=False)
    expires_at = models.DateField(null=True, blank=True, editable=False)
    installed_at = models.DateTimeField(auto_now_add=True)
    installed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )

    class Meta:
        ordering = ["-installed_at", "-id"]
        verbose_name = "license"

    def __str__(self) -> str:
        return f"{self.edition} — {self.licensee}"
