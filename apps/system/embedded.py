"""The one-process mode: ASGI server, Celery worker and beat in one Python process.

Layout from shared/notes/embedded-mode.md: the worker owns the main thread (and with it
SIGINT/SIGTERM, for a warm shutdown), uvicorn serves from a daemon thread, beat runs as an
embedded thread service. The in-memory broker is shared by every thread of the process.
"""

from __future__ import annotations

import logging
import threading

import uvicorn
from celery.beat import EmbeddedService
from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler

from apps.runs.services import runs_recover_after_restart
from apps.system.log_format import uvicorn_log_config
from config.celery import app

log = logging.getLogger(__name__)


def serve(*, host: str, port: int, concurrency: int = 4) -> None:
    server = uvicorn.Server(
        uvicorn.Config(
            "config.asgi:application",
            host=host,
            port=port,
            lifespan="off",
            log_level="info",
            access_log=False,
            log_config=uvicorn_log_config(),
        )
    )
    # uvicorn must not install signal handlers from a non-main thread.
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    web = threading.Thread(target=server.run, name="asgi", daemon=True)
    beat = EmbeddedService(app, thread=True, scheduler_cls=DatabaseScheduler)
    worker = app.Worker(
        pool_cls="threads",
        concurrency=concurrency,
        without_mingle=True,
        without_gossip=True,
        without_heartbeat=True,
        loglevel=settings.LOGGING["root"]["level"],
        hostname=f"embedded@{host}:{port}",
        quiet=settings.CADENZA_LOG_FORMAT == "json",  # the banner is not a JSON line
    )
    # Nothing can still be running in a process that just started, and the memory broker
    # forgot every queued message: the database says what to fail and what to send again.
    recovered = runs_recover_after_restart()
    if any(recovered.values()):
        log.info("recovered after restart: %s", recovered)
    ticker = _TriggerTicker() if settings.CADENZA_TRIGGER_TICK_IN_PROCESS else None
    web.start()
    beat.start()
    if ticker:
        ticker.start()
    log.info("Cadenza (embedded) serving on http://%s:%s", host, port)
    try:
        worker.start()  # blocks until SIGINT/SIGTERM, then finishes tasks in flight
    finally:
        if ticker:
            ticker.stop()
        beat.stop()
        server.should_exit = True
        web.join(timeout=10)


class _TriggerTicker(threading.Thread):
    """The trigger tick of the one-process mode: the same service beat would send, once a
    second, on a connection kept open (reconnecting to SQLite every second is what cost)."""

    def __init__(self):
        super().__init__(name="trigger-tick", daemon=True)
        self._stop_event = threading.Event()

    def run(self) -> None:
        from django.db import connection

        from apps.triggers.services import triggers_tick

        try:
            while not self._stop_event.wait(1.0):
                try:
                    triggers_tick()
                except Exception:  # the clock must keep ticking
                    log.exception("trigger tick failed")
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
