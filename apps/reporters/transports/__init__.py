"""The transport registry: kind → class, one small module per kind."""

from __future__ import annotations

from functools import cache

from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string

from apps.reporters.transports.base import Message, Transport, TransportError

TRANSPORTS = {
    "mail": "apps.reporters.transports.mail.Mail",
    "slack": "apps.reporters.transports.slack.Slack",
    "teams": "apps.reporters.transports.teams.Teams",
    "webhook": "apps.reporters.transports.webhook.Webhook",
    "twilio": "apps.reporters.transports.twilio.Twilio",
    "shell": "apps.reporters.transports.shell.Shell",
    "dataset": "apps.reporters.transports.dataset.AppendToDataset",
}

__all__ = [
    "TRANSPORTS",
    "Message",
    "Transport",
    "TransportError",
    "get_transport",
    "validate_channel",
]


@cache
def get_transport(kind: str) -> type[Transport]:
    if kind not in TRANSPORTS:
        raise KeyError(kind)
    return import_string(TRANSPORTS[kind])


def kind_choices() -> list[tuple[str, str]]:
    return [(kind, get_transport(kind).label) for kind in TRANSPORTS]


def validate_channel(kind: str, config, secrets) -> tuple[dict, dict]:
    """Validated (config, secrets), or ValidationError naming the field at fault."""
    if kind not in TRANSPORTS:
        raise ValidationError({"kind": f"Unknown kind {kind!r}; one of {sorted(TRANSPORTS)}."})
    transport = get_transport(kind)
    validated = []
    for field, schema, data in (
        ("config", transport.Config, config),
        ("secrets", transport.Secrets, secrets),
    ):
        if not isinstance(data, dict):
            raise ValidationError({field: "Must be a JSON object."})
        serializer = schema(data=data)
        if not serializer.is_valid():
            raise ValidationError(
                {
                    field: [
                        f"{name}: {' '.join(str(m) for m in messages)}"
                        for name, messages in serializer.errors.items()
                    ]
                }
            )
        validated.append(dict(serializer.validated_data))
    return validated[0], validated[1]
