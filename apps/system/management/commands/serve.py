from __future__ import annotations

import os
import socket

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

# Connections a web process may hold: one per HTTP thread (config/asgi.py), two more for
# the WebSocket consumers' database calls. N processes hold at most N times this.
WEB_DB_POOL_SIZE = settings.CADENZA_WEB_THREADS + 2


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

            from apps.system.log_format import uvicorn_log_config

            # The web processes read their settings afresh: they pool their database
            # connections (config/settings.py, CADENZA_DB_POOL_SIZE).
            os.environ.setdefault("CADENZA_DB_POOL_SIZE", str(WEB_DB_POOL_SIZE))
            # The GIL makes a process's HTTP threads share one core: the API's throughput
            # comes from processes, one per core by default. Always under the supervisor,
            # even for one: it restarts a process that died.
            config = uvicorn.Config(
                "config.asgi:application",
                host=host,
                port=port,
                workers=workers,
                lifespan="off",
                log_config=uvicorn_log_config(),
            )
            try:
                supervisor = _supervisor(config)
            except OSError as error:
                raise CommandError(f"Cannot listen on {host}:{port}: {error}") from None
            supervisor.run()


def _supervisor(config):
    from uvicorn.supervisors import Multiprocess

    class Supervisor(Multiprocess):
        """uvicorn's supervisor, with a listening socket per web process on the same port
        (SO_REUSEPORT): the kernel spreads new connections evenly over the processes. With
        one shared socket, the process that woke first accepted a whole burst of keep-alive
        connections and served them alone, on one core (bench/api.py).

        uvicorn starts every process as ``Process(self.config, self.sockets)``: here each
        read of ``sockets`` binds a new socket, and the supervisor closes its copies once the
        processes hold them (a copy left open after its process died would take connections
        that nobody accepts).
        """

        def __init__(self, config):
            self._handed: list[socket.socket] = []
            self._address = (config.host, config.port)
            self._bind().close()  # fail here, with a clear error, if the port is taken
            super().__init__(config, sockets=[])

        @property
        def sockets(self) -> list[socket.socket]:
            self._release()  # the last process started holds its copy by now
            self._handed.append(self._bind())
            return self._handed[-1:]

        @sockets.setter
        def sockets(self, value) -> None:
            pass  # Multiprocess.__init__ sets it: every process gets a socket of its own

        def _bind(self) -> socket.socket:
            family = socket.AF_INET6 if ":" in self._address[0] else socket.AF_INET
            sock = socket.socket(family=family)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(self._address)
            self._address = (self._address[0], sock.getsockname()[1])  # port 0: the one given
            return sock

        def _release(self) -> None:
            for sock in self._handed:
                sock.close()
            self._handed.clear()

        def keep_subprocess_alive(self) -> None:
            self._release()
            super().keep_subprocess_alive()

    return Supervisor(config)
