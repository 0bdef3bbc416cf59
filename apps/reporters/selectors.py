"""Reads of channels and reporters shared by the admin and the API."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from apps.reporters.models import MessagingChannel, Reporter
from apps.runs.models import Run
from apps.system.encryption import SecretsUnreadable

TEST_RECIPIENTS = "test_recipients"  # a config key every kind accepts: who gets test messages


def channels_usable_by(user) -> QuerySet[MessagingChannel]:
    """The channels ``user`` may use (the queryset form of ``MessagingChannel.usable_by``)."""
    channels = MessagingChannel.objects.all()
    if not (user and user.is_authenticated and user.is_active):
        return channels.none()
    if user.is_superuser:
        return channels
    open_to_all = Q(allowed_groups__isnull=True)
    return channels.filter(open_to_all | Q(allowed_groups__in=user.groups.all())).distinct()


def channel_choices(user, current: MessagingChannel | None) -> QuerySet[MessagingChannel]:
    """The channels ``user`` may pick for a reporter: the usable ones, and the reporter's
    current one, so that someone outside its groups can still save the reporter unchanged."""
    allowed = Q(pk__in=channels_usable_by(user).values("pk"))
    if current is not None:
        allowed |= Q(pk=current.pk)
    return MessagingChannel.objects.filter(allowed)


def secret_keys(channel: MessagingChannel) -> list[str]:
    """The names of the secrets that hold a value — never the values."""
    try:
        return sorted(key for key, value in channel.secrets.items() if value not in ("", None))
    except SecretsUnreadable:
        return []


def test_recipients(channel: MessagingChannel) -> list[str]:
    return list(channel.config.get(TEST_RECIPIENTS) or [])


def reporter_last_run(reporter: Reporter) -> Run | None:
    return Run.objects.filter(scenario_id=reporter.scenario_id).order_by("-id").first()
