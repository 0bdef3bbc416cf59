from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from apps.reporters.transports.base import Message, Transport, TransportError


class Shell(Transport):
    """A command run in the sandbox; the facts arrive as environment variables only."""

    kind = "shell"
    label = "Shell command"

    class Config(serializers.Serializer):
        command = serializers.CharField()
        timeout = serializers.IntegerField(default=60, min_value=1, max_value=3600)

    def send(self, message: Message) -> None:
        from apps.scenarios.sandbox import Limits, Sandbox

        if not settings.CADENZA_ALLOW_SHELL:
            raise TransportError(
                "Shell commands are turned off (CADENZA_ALLOW_SHELL).", permanent=True
            )
        env = {
            f"CADENZA_{key.upper()}": str(value)
            for key, value in message.facts.items()
            if isinstance(value, str | int | float | bool) or value is None
        }
        env |= {
            "CADENZA_SUBJECT": message.subject,
            "CADENZA_BODY": message.body,
            "CADENZA_DELIVERY": message.key,
        }
        output: list[str] = []
        sandbox = Sandbox(
            on_stdout=output.append,
            on_stderr=output.append,
            limits=Limits.from_settings(self.config.get("timeout", 60)),
        )
        result = sandbox.run_shell(self.config["command"], env)
        if not result.ok:
            tail = " | ".join(output[-3:])
            raise TransportError(f"The command failed ({result.describe()}): {tail}"[:500])
        return None
