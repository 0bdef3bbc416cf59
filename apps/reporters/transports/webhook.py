from __future__ import annotations

import hashlib
import hmac
import json

from rest_framework import serializers

from apps.reporters.transports.base import Message, Transport, http


class Webhook(Transport):
    """JSON to any URL, signed: X-Cadenza-Signature: sha256=<HMAC-SHA256 of the body>."""

    kind = "webhook"
    label = "Webhook"

    class Config(serializers.Serializer):
        method = serializers.ChoiceField(["POST", "PUT"], default="POST")
        headers = serializers.DictField(child=serializers.CharField(), default=dict)

    class Secrets(serializers.Serializer):
        url = serializers.URLField(help_text="Secret: it may carry a token.")
        hmac_secret = serializers.CharField(required=False, allow_blank=True, default="")

    def send(self, message: Message) -> int:
        body = json.dumps(
            {
                "idempotency_key": message.key,
                "subject": message.subject,
                "body": message.body,
                **message.facts,
            },
            sort_keys=True,
            default=str,
        ).encode()
        headers = {
            **self.config.get("headers", {}),
            "Content-Type": "application/json",
            "Idempotency-Key": message.key,
            "User-Agent": "Cadenza",
        }
        if self.secrets.get("hmac_secret"):
            digest = hmac.new(self.secrets["hmac_secret"].encode(), body, hashlib.sha256)
            headers["X-Cadenza-Signature"] = f"sha256={digest.hexdigest()}"
        response = http(
            self.config.get("method", "POST"), self.secrets["url"], data=body, headers=headers
        )
        return response.status_code
