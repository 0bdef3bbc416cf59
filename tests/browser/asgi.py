"""The web process as the Procfile runs it (`manage.py serve`: uvicorn on config.asgi, HTTP
and WebSocket) on the test database and the harness's Redis, in a process of its own.

pytest-django's live_server is WSGI only: it cannot serve the WebSockets the pages open.
A real process also lets a test restart the web server mid-run, which closes every socket
from the server side, as a deploy does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.processes import ROOT, worker_database_url

BOUND = 30  # seconds for the server to start or stop


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class AsgiServer:
    def __init__(self, log: Path):
        self.log, self.port = log, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AsgiServer:
        command = [sys.executable, "manage.py", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port)]
        env = {**os.environ, "DATABASE_URL": worker_database_url()}
        assert env.get("REDIS_URL"), "the harness's Redis: the server must be distributed"
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self}")
            if self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"the server did not answer within {BOUND} s:\n{self}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/accounts/login/", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM, as a deploy or a supervisor restarting the web process sends: uvicorn
        closes every open WebSocket (code 1012) and exits."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=BOUND)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=BOUND)

    def __str__(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-40:])
