from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import requests
from rest_framework import serializers

from apps.system import outbound

OUTCOME_COLOURS = {
    "success": "#2e7d32",
    "warning": "#ed6c02",
    "failed": "#c62828",
    "aborted": "#616161",
    "running": "#1565c0",
    "queued": "#1565c0",
}


class TransportError(Exception):
    """Sending failed. ``permanent``: retrying cannot help (bad address, refused auth…)."""

    def __init__(self, message: str, *, permanent: bool = False, code: int | None = None):
        super().__init__(message)
        self.permanent, self.code = permanent, code


@dataclass
class Message:
    subject: str
    body: str
    key: str  # idempotency key: the same for every attempt of one delivery
    recipients: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)  # run facts: project, scenario, outcome, …

    @property
    def outcome(self) -> str:
        return str(self.facts.get("outcome", ""))


class Transport:
    """One kind of messaging channel: build the payload, send it, raise TransportError."""

    kind: ClassVar[str]
    label: ClassVar[str]
    needs_recipients: ClassVar[bool] = False

    class Config(serializers.Serializer):
        pass

    class Secrets(serializers.Serializer):
        pass

    def __init__(self, config: dict, secrets: dict):
        self.config, self.secrets = config, secrets

    def send(self, message: Message) -> int | None:
        raise NotImplementedError


def http(method: str, url: str, **kwargs) -> requests.Response:
    """Outbound HTTP with errors sorted into temporary and permanent. Messages never carry
    the URL: for Slack and Teams the URL itself is the secret."""
    try:
        response = outbound.request(method, url, **kwargs)
    except outbound.OutboundRefused as error:
        raise TransportError(str(error), permanent=True) from None
    except requests.Timeout:
        raise TransportError("The peer did not answer in time.") from None
    except requests.RequestException as error:
        raise TransportError(f"Connection failed ({type(error).__name__}).") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise TransportError(
            f"The peer answered {response.status_code}.", code=response.status_code
        )
    if response.status_code >= 400:
        raise TransportError(
            f"The peer refused the message: {response.status_code}.",
            permanent=True,
            code=response.status_code,
        )
    return response
