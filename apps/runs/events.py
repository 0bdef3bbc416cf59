"""Publishing to the Channels layer: log batches to the run's group, run states to the
project's group. Publishing is best effort (the layer is at-most-once); the database has
already stored what is published, and consumers fill gaps from it."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


def run_group(run_id: int) -> str:
    return f"run.{run_id}"


def project_group(project_id: int) -> str:
    return f"project.{project_id}"


def _send(group: str, message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:  # a broken layer must never break a run
        log.warning("could not publish to %s", group, exc_info=True)


def publish_log_lines(run_id: int, lines: list[dict]) -> None:
    _send(run_group(run_id), {"type": "log.lines", "lines": lines})


def run_state(run) -> dict:
    return {
        "id": run.pk,
        "project": run.project_id,
        "scenario": run.scenario_id,
        "number": run.number,
        "status": run.status,
        "trigger_kind": run.trigger_kind,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "outcome_message": run.outcome_message,
    }


def publish_run_state(run) -> None:
    message = {"type": "run.state", "run": run_state(run)}
    _send(run_group(run.pk), message)
    _send(project_group(run.project_id), message)
