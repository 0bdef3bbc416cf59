from __future__ import annotations

from celery import shared_task

from apps.reporters.services import deliveries_sweep, delivery_send


@shared_task(name="reporters.deliver", acks_late=True, ignore_result=True)
def deliver(delivery_id: int) -> None:
    delivery_send(delivery_id)


@shared_task(name="reporters.sweep", ignore_result=True)
def sweep() -> int:
    return deliveries_sweep()
