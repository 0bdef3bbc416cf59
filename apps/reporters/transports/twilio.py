from __future__ import annotations

from rest_framework import serializers

from apps.reporters.transports.base import Message, Transport, http


class Twilio(Transport):
    """SMS through Twilio's Messages API, one request per recipient number."""

    kind = "twilio"
    label = "Twilio SMS"
    needs_recipients = True

    class Config(serializers.Serializer):
        account_sid = serializers.RegexField(r"^AC[0-9a-fA-F]{32}$")
        from_number = serializers.RegexField(
            r"^\+[1-9]\d{6,14}$", help_text="E.164, e.g. +15551230000"
        )
        api_base = serializers.URLField(default="https://api.twilio.com")

    class Secrets(serializers.Serializer):
        auth_token = serializers.CharField()

    def send(self, message: Message) -> int:
        sid = self.config["account_sid"]
        url = f"{self.config['api_base'].rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json"
        text = f"{message.subject}\n{message.body}"[:1600]  # Twilio's limit per message
        status = 0
        for number in message.recipients:
            response = http(
                "POST",
                url,
                auth=(sid, self.secrets["auth_token"]),
                data={"To": number, "From": self.config["from_number"], "Body": text},
            )
            status = response.status_code
        return status
