"""Publishing to the Channels layer: log batches to the run's group, run states to the
project's group. Publishing is best effort (the layer is at-most-once); the database has
already stored what is published, and consumers fill gaps from it."""

from __future__ import annotations

import asyncio
import logging
import os
import threading

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


def run_group(run_id: int) -> str:
    return f"run.{run_id}"


def project_group(project_id: int) -> str:
    return f"project.{project_id}"


class Publisher:
    """Sends to the channel layer from one event-loop thread per process, in order.

    ``async_to_sync(group_send)`` per message ran each send on a fresh event loop, so the
    Redis layer opened a new connection every time (~3 ms). Here the loop, and with it the
    layer's connections, live as long as the process; callers only enqueue and go on.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._failing = False

    def send(self, group: str, message: dict) -> None:
        loop = self._running_loop()
        loop.call_soon_threadsafe(self._queue.put_nowait, (group, message))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything enqueued so far has been handed to the layer."""
        if self._pid != os.getpid() or self._loop is None:
            return True
        done = asyncio.run_coroutine_threadsafe(self._queue.join(), self._loop)
        try:
            done.result(timeout)
        except TimeoutError:
            return False
        return True

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked child (Celery prefork)
                self._loop = asyncio.new_event_loop()
                self._queue = asyncio.Queue()
                self._loop.create_task(self._drain(), name="cadenza-publisher")
                threading.Thread(
                    target=self._loop.run_forever, name="cadenza-publisher", daemon=True
                ).start()
                self._pid = os.getpid()
            return self._loop

    async def _drain(self) -> None:
        while True:
            group, message = await self._queue.get()
            try:
                layer = get_channel_layer()
                if layer is not None:
                    await layer.group_send(group, message)
                self._failing = False
            except Exception:  # a broken layer must never break a run; say so once per outage
                if not self._failing:
                    log.warning("could not publish to %s", group, exc_info=True)
                self._failing = True
            finally:
                self._queue.task_done()


publisher = Publisher()


def _send(group: str, message: dict) -> None:
    publisher.send(group, message)


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
