from __future__ import annotations

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

# Connections a web process may hold: one thread serves its sync views, a few more cover
# WebSocket consumers' database calls. N processes hold at most N times this.
WEB_DB_POOL_SIZE = 4


class Command(BaseCommand):
    help = (
        "Serve Cadenza. Embedded mode: web, Celery worker and beat in this one process. "
        "Distributed mode: the web server only (run `celery worker` and `celery beat` beside it)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--concurrency", type=int, default=4, help="worker threads (embedded)")
        parser.add_argument(
            "--workers",
            type=int,
            default=settings.CADENZA_WEB_WORKERS,
            help="web processes (distributed mode; default CADENZA_WEB_WORKERS or the CPU count)",
        )

    def handle(self, *args, host, port, concurrency, workers, **options):
        if not 0 < port < 65536:
            raise CommandError(f"--port {port} is not a TCP port.")
        if workers < 1:
            raise CommandError(f"--workers {workers}: at least 1.")
        if settings.MODE == "embedded":
            from apps.system.embedded import serve

            serve(host=host, port=port, concurrency=concurrency)
        else:
            import uvicorn
            from uvicorn.supervisors import Multiprocess

            from apps.system.log_format import uvicorn_log_config

            # The web processes read their settings afresh: they pool their database
            # connections (config/settings.py, CADENZA_DB_POOL_SIZE).
            os.environ.setdefault("CADENZA_DB_POOL_SIZE", str(WEB_DB_POOL_SIZE))
            # Django runs sync views on one thread per process (asgiref's thread-sensitive
            # mode): the API's throughput comes from processes, one per core by default.
            # Always under the supervisor, even for one: it restarts a process that died.
            config = uvicorn.Config(
                "config.asgi:application",
                host=host,
                port=port,
                workers=workers,
                lifespan="off",
                log_config=uvicorn_log_config(),
            )
            Multiprocess(config, sockets=[config.bind_socket()]).run()
