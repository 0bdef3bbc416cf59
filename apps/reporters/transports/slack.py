from __future__ import annotations

from rest_framework import serializers

from apps.reporters.transports.base import (
    OUTCOME_COLOURS,
    Message,
    Transport,
    TransportError,
    http,
)

# Slack Web API errors that no retry can fix.
PERMANENT = {
    "invalid_auth",
    "not_authed",
    "channel_not_found",
    "account_inactive",
    "token_revoked",
    "not_in_channel",
    "is_archived",
    "invalid_blocks",
}


class Slack(Transport):
    """An incoming webhook, or a bot token posting to a channel (chat.postMessage)."""

    kind = "slack"
    label = "Slack"

    class Config(serializers.Serializer):
        channel = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            help_text="For a bot token, e.g. #data-alerts.",
        )
        api_url = serializers.URLField(default="https://slack.com/api")

    class Secrets(serializers.Serializer):
        webhook_url = serializers.URLField(required=False)
        token = serializers.CharField(required=False)

        def validate(self, data):
            if bool(data.get("webhook_url")) == bool(data.get("token")):
                raise serializers.ValidationError("Give a webhook_url or a bot token (one).")
            return data

    def payload(self, message: Message) -> dict:
        colour = OUTCOME_COLOURS.get(message.outcome, "#616161")
        return {
            "text": message.subject,
            "attachments": [
                {
                    "color": colour,
                    "blocks": [
                        {
                            "type": "section",
                            "text": {"type": "mrkdwn", "text": f"*{message.subject}*"},
                        },
                        {
                            "type": "section",
                            "text": {"type": "mrkdwn", "text": message.body[:2900]},
                        },
                    ],
                }
            ],
        }

    def send(self, message: Message) -> int:
        payload = self.payload(message)
        if self.secrets.get("webhook_url"):
            return http("POST", self.secrets["webhook_url"], json=payload).status_code
        response = http(
            "POST",
            f"{self.config['api_url'].rstrip('/')}/chat.postMessage",
            json={**payload, "channel": self.config.get("channel")},
            headers={"Authorization": f"Bearer {self.secrets['token']}"},
        )
        answer = response.json() if response.content else {}
        if not answer.get("ok"):
            error = answer.get("error", "unknown_error")
            raise TransportError(
                f"Slack refused the message: {error}",
                permanent=error in PERMANENT,
                code=response.status_code,
            )
        return response.status_code
