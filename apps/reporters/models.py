from __future__ import annotations

import uuid

from django.contrib.auth.models import Group
from django.db import models

from apps.scenarios.models import Scenario
from apps.system.shared_resources import SharedResource


class MessagingChannel(SharedResource, models.Model):
    """Transport settings defined by an administrator; secrets are encrypted at rest."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20)
    config = models.JSONField(default=dict, blank=True)
    secrets_encrypted = models.TextField(blank=True, editable=False)
    allowed_groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="+",
        help_text="Groups whose members may use this channel; none chosen means everyone.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Reporter(models.Model):
    class When(models.TextChoices):
        START = "start", "When the run starts"
        END = "end", "When the run ends"
        BOTH = "both", "Both"

    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="reporters")
    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    channel = models.ForeignKey(MessagingChannel, on_delete=models.PROTECT, related_name="+")
    when = models.CharField(max_length=5, choices=When.choices, default=When.END)
    condition = models.TextField(
        blank=True,
        help_text="Send only if true, e.g. outcome == 'failed', outcome != previousOutcome, "
        "consecutiveFailures >= 3. Empty: always.",
    )
    recipients = models.TextField(
        blank=True, help_text="Comma-separated, where the kind needs them."
    )
    subject = models.CharField(
        max_length=500, default="{{ scenario.name }} run #{{ run.number }}: {{ outcome }}"
    )
    body = models.TextField(
        default="{{ project.key }} / {{ scenario.name }} run #{{ run.number }} {{ event }}: "
        "{{ outcome }}\n{% for step in steps %}- {{ step.name }}: {{ step.status }}\n{% endfor %}"
        "{{ run_url }}"
    )

    project_path = "scenario__project"

    class Meta:
        ordering = ["scenario", "name"]
        constraints = [
            models.UniqueConstraint(fields=["scenario", "name"], name="reporter_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} → {self.channel.name}"

    def recipient_list(self) -> list[str]:
        return [item.strip() for item in self.recipients.split(",") if item.strip()]


class Delivery(models.Model):
    """The outbox: one row per message, sent (and retried) by a Celery task."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    class Event(models.TextChoices):
        START = "start", "Run started"
        END = "end", "Run ended"
        STEP = "step", "Send-message step"
        TEST = "test", "Test message"

    key = models.UUIDField(
        default=uuid.uuid4,
        unique=True,
        editable=False,
        help_text="Idempotency key sent to the peer.",
    )
    reporter = models.ForeignKey(
        Reporter, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    channel = models.ForeignKey(MessagingChannel, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=5, choices=Event.choices)
    recipients = models.JSONField(default=list, blank=True)
    subject = models.TextField(blank=True)
    body = models.TextField(blank=True)
    facts = models.JSONField(default=dict, blank=True, help_text="Run facts for the payload.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    permanent_error = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    project_path = "run__project"

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due")]

    def __str__(self) -> str:
        return f"{self.event} via {self.channel.name}: {self.status}"
