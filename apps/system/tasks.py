from __future__ import annotations

import os
import socket
import threading

from celery import shared_task
from django.utils import timezone

from apps.system.models import Heartbeat


@shared_task(name="system.ping", acks_late=False)
def ping() -> dict:
    """Answer where the task ran, so callers can tell which process picked it up."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "thread": threading.get_ident()}


@shared_task(name="system.heartbeat", acks_late=False, ignore_result=True)
def heartbeat() -> None:
    """Sent by beat on a fixed interval: a fresh row means beat, broker and a worker all work."""
    Heartbeat.objects.update_or_create(
        name="beat", defaults={"at": timezone.now(), "host": socket.gethostname()}
    )
