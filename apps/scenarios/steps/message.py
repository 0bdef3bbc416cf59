from __future__ import annotations

from rest_framework import serializers

from apps.scenarios.steps.base import StepError, StepResult, StepType


class SendMessage(StepType):
    """Send a message through a messaging channel mid-run, with the reporters' templates."""

    key = "send_message"
    label = "Send a message"

    class Params(serializers.Serializer):
        channel = serializers.CharField(help_text="The messaging channel's name.")
        recipients = serializers.ListField(child=serializers.CharField(), default=list)
        subject = serializers.CharField(default="{{ scenario.name }}: {{ outcome }}")
        body = serializers.CharField(
            default="{{ project.key }} / {{ scenario.name }} run #{{ run.number }}: {{ outcome }}"
        )

    def run(self, ctx, params):
        from apps.reporters.models import MessagingChannel
        from apps.reporters.services import step_message_send

        channel = MessagingChannel.objects.filter(name=params["channel"]).first()
        if channel is None or not channel.usable_by(ctx.user):
            raise StepError(
                f"No messaging channel {params['channel']!r} usable by the run-as user."
            )
        delivery = step_message_send(
            ctx.run,
            channel,
            subject=params["subject"],
            body=params["body"],
            recipients=params["recipients"],
            variables=ctx.variables,
        )
        output = {"delivery": delivery.pk, "status": delivery.status}
        if delivery.status == "failed":
            return StepResult("failed", output, f"Message not sent: {delivery.error}")
        ctx.log(
            f"Message sent through {channel.name}"
            if delivery.status == "sent"
            else f"Message queued for retry: {delivery.error}"
        )
        return StepResult("success" if delivery.status == "sent" else "warning", output)
