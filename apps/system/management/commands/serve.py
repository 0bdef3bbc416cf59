from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Serve Cadenza. Embedded mode: web, Celery worker and beat in this one process. "
        "Distributed mode: the web server only (run `celery worker` and `celery beat` beside it)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--concurrency", type=int, default=4, help="worker threads (embedded)")

    def handle(self, *args, host, port, concurrency, **options):
        if not 0 < port < 65536:
            raise CommandError(f"--port {port} is not a TCP port.")
        if settings.MODE == "embedded":
            from apps.system.embedded import serve

            serve(host=host, port=port, concurrency=concurrency)
        else:
            import uvicorn

            from apps.system.log_format import uvicorn_log_config

            uvicorn.run(
                "config.asgi:application",
                host=host,
                port=port,
                lifespan="off",
                log_config=uvicorn_log_config(),
            )
