"""Real processes for the slow tiers: a Celery worker on the test database, a look at the
sandbox children it leaves (or must not leave) behind, and the bounded poll that waits on them."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote, urlencode

from django.db import connection

from config.celery import app

ROOT = Path(__file__).resolve().parents[1]
BOUND = 30  # seconds for a worker to start or stop
PR_SET_CHILD_SUBREAPER = 36


def worker_database_url() -> str:
    """DATABASE_URL of the database pytest-django created, so the worker writes where we read."""
    db = connection.settings_dict
    auth = quote(db["USER"], safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    port = f":{db['PORT']}" if db["PORT"] else ""
    query = f"?{urlencode(db['OPTIONS'])}" if db["OPTIONS"] else ""
    url = f"postgres://{auth}@{db['HOST']}{port}/{quote(db['NAME'], safe='')}{query}"
    assert db["NAME"].startswith("test_"), url
    return url


class CeleryProcess:
    """A `celery` command of the Procfile in a process of its own, logging to ``log``."""

    log: Path
    process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _spawn(self, command: list[str]) -> None:
        env = {**os.environ, "DATABASE_URL": worker_database_url(), **self.env}
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        """SIGKILL: no chance to clean up or save anything, as when a machine dies."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=BOUND)

    def stop(self) -> None:
        """SIGTERM: the process's own orderly shutdown."""
        if not self.alive():
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=BOUND)
        except subprocess.TimeoutExpired:
            self.kill()

    def __str__(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-40:])


class WorkerProcess(CeleryProcess):
    """`celery worker` as the Procfile runs it (thread pool), in a process of its own."""

    def __init__(self, log: Path, env: dict[str, str] | None = None, concurrency: int = 2):
        self.log, self.env, self.concurrency = log, env or {}, concurrency
        self.name = f"test-{uuid.uuid4().hex[:8]}@localhost"
        self.process: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "threads"]
        command += ["-c", str(self.concurrency), "--without-mingle", "--without-gossip"]
        command += ["-n", self.name, "-l", "INFO"]
        self._spawn(command)
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the worker exited with {self.process.returncode}:\n{self}")
            if app.control.ping(destination=[self.name], timeout=0.5):
                return self
        self.kill()
        raise AssertionError(f"the worker did not answer a ping within {BOUND} s:\n{self}")


# -- processes left behind ------------------------------------------------------------------------


def process_state(pid: int) -> str | None:
    """'R', 'S', 'Z'… from /proc, or None once the process is gone (reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def session_members(sid: int) -> dict[int, str]:
    """pid → state of every process in session ``sid`` (a sandbox child leads its own)."""
    members = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[3]) == sid:  # state ppid pgrp session …
            members[int(entry.name)] = fields[0]
    return members


@contextmanager
def adopting_orphans():
    """Make this test process the reaper of orphans among its descendants.

    Orphans otherwise go to PID 1, which in some containers reaps late or never; meanwhile
    their zombies count against the sandbox account's process limit. Adopted, a killed
    sandbox child or a fork bomb's offspring can be inspected and reaped with
    ``reap_session``, so a test can assert that nothing at all is left.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def reap_session(sid: int) -> dict[int, str]:
    """Reap the dead of session ``sid`` adopted by this process; return who else is left."""
    for pid, state in session_members(sid).items():
        if state == "Z":
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass  # not ours to reap
    return session_members(sid)


def wait_until(condition, *, timeout: float, what: str, every: float = 0.05):
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(every)


def end_session(sid: int, *, timeout: float = 5) -> None:
    """SIGKILL whatever is alive in session ``sid``; reap what this process adopted of it.

    Members are found by their session, never by a process group id that may be reused.
    """

    def ended() -> bool:
        alive = [pid for pid, state in reap_session(sid).items() if state != "Z"]
        for pid in alive:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return not alive

    wait_until(ended, timeout=timeout, what=f"session {sid} ended")


class BeatProcess(CeleryProcess):
    """`celery beat` as the Procfile runs it (the database scheduler), in a process of its own.

    ``start`` returns once this process has sent its first task, so a test knows it ticks.
    """

    def __init__(self, log: Path, schedule: Path, env: dict[str, str] | None = None):
        self.log, self.schedule, self.env = log, schedule, env or {}
        self.process: subprocess.Popen | None = None

    def start(self) -> BeatProcess:
        command = [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "INFO"]
        command += ["-s", str(self.schedule)]
        offset = self.log.stat().st_size if self.log.exists() else 0
        self._spawn(command)

        def ticking() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"beat exited with {self.process.returncode}:\n{self}")
            with self.log.open(errors="replace") as text:
                text.seek(offset)
                return "Sending due task" in text.read()

        try:
            wait_until(ticking, timeout=BOUND, what="beat sent its first task", every=0.1)
        except AssertionError:
            self.kill()
            raise
        return self
