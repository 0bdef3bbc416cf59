from __future__ import annotations

from celery import shared_task

from apps.runs.runner import run_execute
from apps.runs.services import runs_sweep


@shared_task(name="runs.execute", acks_late=True, ignore_result=True)
def execute(run_id: int) -> None:
    """Idempotent: the claim lets exactly one delivery of a run's message execute it."""
    run_execute(run_id)


@shared_task(name="runs.sweep", ignore_result=True)
def sweep() -> dict:
    return runs_sweep()
