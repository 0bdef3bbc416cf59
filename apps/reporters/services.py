"""Reporters and the outbox. Sending bookkeeping lives here, once: transports only build a
payload and send it (as Healthchecks does)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from apps.reporters.context import expression_names, facts, render, run_context
from apps.reporters.models import Delivery, MessagingChannel, Reporter
from apps.reporters.transports import Message, TransportError, get_transport
from apps.runs.models import Run
from apps.scenarios.expressions import evaluate
from apps.system.encryption import SecretsUnreadable

log = logging.getLogger(__name__)


def _listening(event: str) -> dict:
    return {"enabled": True, "when__in": [event, Reporter.When.BOTH]}


def reporters_listening(event: str) -> Exists:
    """Whether the outer run's scenario has a reporter for ``event``, as an annotation: the
    runner learns it in a query it makes anyway, and skips ``reporters_fire`` when not."""
    return Exists(Reporter.objects.filter(scenario_id=OuterRef("scenario_id"), **_listening(event)))


def scenarios_with_reporters(event: str) -> QuerySet:
    """The ids of the scenarios with a reporter for ``event``, as a subquery (the claim's)."""
    return Reporter.objects.filter(**_listening(event)).order_by().values("scenario_id")


def reporters_fire(run: Run, event: str, *, send_now: bool = False) -> list[Delivery]:
    """Create the deliveries of ``event`` (start/end) for the run's reporters, then queue
    them — or make the first attempt right here (``send_now``; retries are queued)."""
    reporters = Reporter.objects.filter(
        scenario_id=run.scenario_id, **_listening(event)
    ).select_related("channel")
    if not reporters:
        return []
    context = run_context(run, event)
    deliveries = []
    for reporter in reporters:
        delivery = _delivery_for(reporter, run, event, context, queue=not send_now)
        if delivery is not None:
            deliveries.append(delivery)
    if send_now:
        deliveries = [delivery_send(d.pk) or d for d in deliveries]
    return deliveries


def _delivery_for(
    reporter: Reporter, run: Run, event: str, context: dict, *, queue: bool
) -> Delivery | None:
    base = {
        "reporter": reporter,
        "channel": reporter.channel,
        "run": run,
        "event": event,
        "recipients": reporter.recipient_list(),
        "facts": facts(context),
    }
    try:
        if reporter.condition.strip() and not evaluate(
            reporter.condition, expression_names(context)
        ):
            return None
        subject, body = render(reporter.subject, context), render(reporter.body, context)
    except Exception as error:  # a broken reporter is recorded, not raised
        return Delivery.objects.create(
            **base,
            status=Delivery.Status.FAILED,
            permanent_error=True,
            error=f"Reporter error: {error}",
        )
    delivery = Delivery.objects.create(
        **base, subject=subject, body=body, next_attempt_at=timezone.now()
    )
    if queue:
        transaction.on_commit(lambda: delivery_enqueue(delivery.pk))
    return delivery


def delivery_enqueue(delivery_id: int, countdown: float = 0) -> None:
    from apps.reporters.tasks import deliver

    try:
        deliver.apply_async((delivery_id,), countdown=countdown)
    except Exception:  # broker down: the sweep sends it later
        log.warning("could not queue delivery %s", delivery_id, exc_info=True)


def delivery_send(delivery_id: int) -> Delivery | None:
    """One attempt. Claimed with a conditional update, so two workers never send it twice."""
    now = timezone.now()
    claimed = Delivery.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + timedelta(seconds=1)),
        pk=delivery_id,
        status=Delivery.Status.PENDING,
    ).update(status=Delivery.Status.SENDING, attempts=F("attempts") + 1)
    if claimed != 1:
        return None
    delivery = Delivery.objects.select_related("channel").get(pk=delivery_id)
    try:
        code = channel_send(delivery.channel, _message(delivery))
    except TransportError as error:
        _record_failure(delivery, error)
    else:
        delivery.status, delivery.sent_at, delivery.response_code = "sent", timezone.now(), code
        delivery.error = ""
        delivery.save(update_fields=["status", "sent_at", "response_code", "error"])
    return delivery


def _message(delivery: Delivery) -> Message:
    return Message(
        subject=delivery.subject,
        body=delivery.body,
        key=str(delivery.key),
        recipients=delivery.recipients,
        facts=delivery.facts,
    )


def channel_send(channel: MessagingChannel, message: Message) -> int | None:
    transport = get_transport(channel.kind)
    try:
        secrets = channel.secrets
    except SecretsUnreadable as error:
        raise TransportError(str(error), permanent=True) from None
    if transport.needs_recipients and not message.recipients:
        raise TransportError(f"A {transport.label} message needs recipients.", permanent=True)
    return transport(channel.config, secrets).send(message)


def _record_failure(delivery: Delivery, error: TransportError) -> None:
    delivery.error, delivery.response_code = str(error), error.code
    delivery.permanent_error = error.permanent
    if error.permanent or delivery.attempts >= settings.CADENZA_DELIVERY_ATTEMPTS:
        delivery.status = Delivery.Status.FAILED
    else:
        delay = settings.CADENZA_DELIVERY_BACKOFF * 2 ** (delivery.attempts - 1)
        delivery.status = Delivery.Status.PENDING
        delivery.next_attempt_at = timezone.now() + timedelta(seconds=delay)
        transaction.on_commit(lambda: delivery_enqueue(delivery.pk, countdown=delay))
    delivery.save(
        update_fields=["status", "error", "response_code", "permanent_error", "next_attempt_at"]
    )
    log.info("delivery %s attempt %s failed: %s", delivery.pk, delivery.attempts, error)


def deliveries_sweep() -> int:
    """Queue again deliveries whose message was lost (a restart, a flushed broker)."""
    late = timezone.now() - timedelta(seconds=60)
    stuck = Delivery.objects.filter(
        Q(status=Delivery.Status.PENDING, next_attempt_at__lt=late)
        | Q(status=Delivery.Status.SENDING, created_at__lt=late - timedelta(minutes=10))
    )
    ids = list(stuck.values_list("pk", flat=True)[:1000])
    Delivery.objects.filter(pk__in=ids, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.PENDING
    )
    for delivery_id in ids:
        delivery_enqueue(delivery_id)
    return len(ids)


def step_message_send(
    run: Run,
    channel: MessagingChannel,
    *,
    subject: str,
    body: str,
    recipients: list[str],
    variables: dict,
) -> Delivery:
    """A send-message step: render against the run so far, record, make the first attempt."""
    context = {**run_context(run, Delivery.Event.STEP), "variables": variables}
    delivery = Delivery.objects.create(
        channel=channel,
        run=run,
        event=Delivery.Event.STEP,
        recipients=recipients,
        subject=render(subject, context),
        body=render(body, context),
        facts=facts(context),
        next_attempt_at=timezone.now(),
    )
    return delivery_send(delivery.pk) or delivery


def channel_test_send(channel: MessagingChannel, *, recipients: list[str], user) -> Delivery:
    """The "send a test message through this channel" of the admin and the API."""
    delivery = Delivery.objects.create(
        channel=channel,
        event=Delivery.Event.TEST,
        recipients=recipients,
        subject=f"Cadenza test message through {channel.name}",
        body=f"{user} sent this test message to check the {channel.kind} channel.",
        facts={"event": "test", "outcome": "success", "channel": channel.name},
        next_attempt_at=timezone.now(),
    )
    delivery = delivery_send(delivery.pk) or delivery
    if delivery.status == Delivery.Status.PENDING:  # a test wants an answer now, not a retry
        Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.FAILED)
        delivery.status = Delivery.Status.FAILED
    return delivery


def reporter_preview(reporter: Reporter, run: Run) -> dict:
    """The subject and body ``reporter`` would send for ``run`` (nothing is sent)."""
    context = run_context(run, "end" if run.is_final else "start")
    try:
        would_send = not reporter.condition.strip() or bool(
            evaluate(reporter.condition, expression_names(context))
        )
    except Exception as error:
        would_send = f"condition error: {error}"
    return {
        "subject": render(reporter.subject, context),
        "body": render(reporter.body, context),
        "would_send": would_send,
        "recipients": reporter.recipient_list(),
    }
