from __future__ import annotations

from celery import shared_task

from apps.triggers.services import triggers_tick


@shared_task(name="triggers.tick", ignore_result=True, expires=5)
def tick() -> dict:
    return triggers_tick()
