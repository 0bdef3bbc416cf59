from __future__ import annotations

import smtplib

from django.core.mail import EmailMessage, get_connection
from rest_framework import serializers

from apps.reporters.transports.base import Message, Transport, TransportError


class Mail(Transport):
    """E-mail through the channel's SMTP server, or Django's configured backend if none."""

    kind = "mail"
    label = "E-mail"
    needs_recipients = True

    class Config(serializers.Serializer):
        from_email = serializers.EmailField()
        host = serializers.CharField(required=False, allow_blank=True, default="")
        port = serializers.IntegerField(default=25, min_value=1, max_value=65535)
        username = serializers.CharField(required=False, allow_blank=True, default="")
        use_tls = serializers.BooleanField(default=False)
        use_ssl = serializers.BooleanField(default=False)

    class Secrets(serializers.Serializer):
        password = serializers.CharField(required=False, allow_blank=True, default="")

    def _connection(self):
        if not self.config.get("host"):
            return get_connection(fail_silently=False)
        return get_connection(
            "django.core.mail.backends.smtp.EmailBackend",
            host=self.config["host"],
            port=self.config.get("port", 25),
            username=self.config.get("username") or None,
            password=self.secrets.get("password") or None,
            use_tls=self.config.get("use_tls"),
            use_ssl=self.config.get("use_ssl"),
            timeout=10,
            fail_silently=False,
        )

    def send(self, message: Message) -> None:
        if not message.recipients:
            raise TransportError("No recipients.", permanent=True)
        email = EmailMessage(
            message.subject,
            message.body,
            self.config["from_email"],
            message.recipients,
            connection=self._connection(),
            headers={"X-Cadenza-Delivery": message.key},
        )
        try:
            email.send()
        except (
            smtplib.SMTPRecipientsRefused,
            smtplib.SMTPSenderRefused,
            smtplib.SMTPAuthenticationError,
        ) as error:
            raise TransportError(
                f"The mail server refused: {type(error).__name__}", permanent=True
            ) from None
        except (TimeoutError, smtplib.SMTPException, OSError) as error:
            raise TransportError(f"Mail not sent: {type(error).__name__}: {error}") from None
        return None
