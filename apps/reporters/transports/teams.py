from __future__ import annotations

from rest_framework import serializers

from apps.reporters.transports.base import Message, Transport, http

STYLE = {"success": "good", "warning": "warning", "failed": "attention"}


class Teams(Transport):
    """A Microsoft Teams workflow (or incoming) webhook, posting an Adaptive Card."""

    kind = "teams"
    label = "Microsoft Teams"

    class Secrets(serializers.Serializer):
        webhook_url = serializers.URLField()

    def card(self, message: Message) -> dict:
        facts = [
            {"title": title, "value": str(message.facts.get(key, ""))}
            for title, key in (
                ("Project", "project"),
                ("Scenario", "scenario"),
                ("Outcome", "outcome"),
                ("Trigger", "trigger"),
            )
        ]
        return {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                {
                    "type": "TextBlock",
                    "text": message.subject,
                    "weight": "Bolder",
                    "size": "Medium",
                    "wrap": True,
                    "color": STYLE.get(message.outcome, "default"),
                },
                {"type": "FactSet", "facts": facts},
                {"type": "TextBlock", "text": message.body, "wrap": True},
            ],
            "actions": [
                {"type": "Action.OpenUrl", "title": "Open the run", "url": message.facts["run_url"]}
            ]
            if message.facts.get("run_url")
            else [],
        }

    def send(self, message: Message) -> int:
        payload = {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": self.card(message),
                }
            ],
        }
        return http("POST", self.secrets["webhook_url"], json=payload).status_code
