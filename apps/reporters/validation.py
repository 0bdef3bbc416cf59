"""Checks of channel and reporter input shared by the admin and the API (errors by field)."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from apps.reporters.context import TemplateSyntaxError, check_template
from apps.reporters.models import MessagingChannel, Reporter
from apps.reporters.selectors import TEST_RECIPIENTS
from apps.reporters.transports import get_transport, validate_channel
from apps.scenarios.expressions import ExpressionError, check_syntax
from apps.system.encryption import SecretsUnreadable

# Kinds whose reporters run a command: writing them needs the coder profile (DESIGN §3).
CODE_KINDS = frozenset({"shell"})


def channel_clean(
    *, kind: str, config, secrets: dict | None, instance: MessagingChannel | None = None
) -> tuple[dict, dict | None]:
    """Validated (config, secrets) of a channel, or ValidationError naming the field.

    ``secrets`` None keeps the stored ones (the config is checked against them) and comes
    back None: nothing to write. The shared ``test_recipients`` config key is kept.
    """
    recipients = _test_recipients(config)
    kept = secrets is None
    if kept:
        secrets = _stored_secrets(instance)
    config = {key: value for key, value in config.items() if key != TEST_RECIPIENTS}
    config, secrets = validate_channel(kind, config, secrets)
    if recipients:
        config[TEST_RECIPIENTS] = recipients
    return config, None if kept else secrets


def _test_recipients(config) -> list[str]:
    if not isinstance(config, dict):
        raise ValidationError({"config": "Must be a JSON object."})
    value = config.get(TEST_RECIPIENTS) or []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError({"config": f"{TEST_RECIPIENTS}: a list of strings."})
    return [item.strip() for item in value if item.strip()]


def _stored_secrets(instance: MessagingChannel | None) -> dict:
    if instance is None or instance.pk is None:
        return {}
    try:
        return instance.secrets
    except SecretsUnreadable as error:
        raise ValidationError({"secrets": f"{error} Enter them again."}) from None


def reporter_errors(
    *, channel: MessagingChannel | None, condition: str, recipients: list[str], templates: dict
) -> dict[str, str]:
    """Errors of a reporter's condition, templates (``{field: source}``) and recipients."""
    errors = {}
    if condition and condition.strip():
        try:
            check_syntax(condition)
        except ExpressionError as error:
            errors["condition"] = str(error)
    for field, source in templates.items():
        try:
            check_template(source)
        except TemplateSyntaxError as error:
            errors[field] = f"Template error: {error}"
    if channel is not None:
        transport = get_transport(channel.kind)
        if transport.needs_recipients and not recipients:
            errors["recipients"] = f"A {transport.label} channel needs recipients."
    return errors


def writes_code(before: Reporter | None, channel: MessagingChannel | None) -> bool:
    """Does this write touch a reporter that runs a command (before or after it)?"""
    old = before.channel.kind if before is not None and before.channel_id else None
    kinds = {channel.kind if channel is not None else None, old}
    return bool(kinds & CODE_KINDS)
