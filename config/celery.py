from __future__ import annotations

import logging
import os

from celery import Celery, signals
from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.state import active_requests

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

log = logging.getLogger(__name__)

app = Celery("cadenza")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.task_prerun.connect(weak=False)
def reuse_healthy_connections(sender=None, **_) -> None:
    """What Django does per request: drop this thread's connection if it broke or aged
    (CONN_MAX_AGE, CONN_HEALTH_CHECKS), keep it otherwise (CELERY_DB_REUSE_MAX).

    A run's first statement is its claim, which reconnects by itself if the connection
    broke (``apps.runs.runner``): it goes without the health check's ``SELECT 1``, one
    database round trip less between the dispatch and the first step."""
    from django.db import close_old_connections, connections

    close_old_connections()
    if sender is not None and sender.name == "runs.execute":
        for connection in connections.all(initialized_only=True):
            connection.health_check_done = True


class Consumer(CeleryConsumer):
    """Celery's consumer, made to survive a broker restart during a task with late
    acknowledgement (``CELERY_WORKER_CONSUMER``; tests/faults/test_redis_restart.py).

    With Celery 5.7 and Redis, both the reconnection and the task's later ack go through
    the lost connection's channel after its transport was detached, and raise
    AttributeError; Celery takes that for unrecoverable and shuts the worker down. The
    message of a running task went with the connection: it can be neither acknowledged
    nor restored over it. Redis restores it after the visibility timeout (the run's claim
    then does nothing), and the run sweep re-dispatches queued runs from the database.
    """

    def on_connection_error_after_connected(self, exc):
        for request in tuple(active_requests):
            if request.task.acks_late and not request.acknowledged:
                request.acknowledged = True  # never ack through the dead channel
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError:
            log.warning("broker lost: the old connection did not close cleanly", exc_info=True)
