"""The servers a benchmark runs: throw-away PostgreSQL and Redis, Cadenza processes, each in
a session of its own so that stopping it stops everything it started. Loopback only.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import requests

from devstack import Postgres, Redis, free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
HOST = "127.0.0.1"
START_BOUND = 60  # seconds for any server to come up
STOP_BOUND = 15  # seconds between SIGTERM and SIGKILL


class BenchError(RuntimeError):
    pass


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")


class Stack:
    """A work folder and the processes started in it; all stopped on exit, error or not."""

    def __init__(self, name: str):
        self.name = name
        self.workdir = Path(tempfile.mkdtemp(prefix=f"cadenza-bench-{name}-"))
        self.workdir.chmod(0o755)  # the postgres account must reach its data folder
        self._processes: list[Process] = []
        self._services: list[Postgres | Redis] = []

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, kind, error, trace) -> None:
        self.stop_all()
        if kind is None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:  # keep the logs of what failed
            print(f"[{self.name}] logs kept in {self.workdir}", file=sys.stderr)

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Process:
        log = self.workdir / f"{name}.log"
        with log.open("w") as out:
            popen = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        process = Process(name, popen, log)
        self._processes.append(process)
        return process

    def stop(self, process: Process) -> None:
        """SIGTERM to the process's whole group, SIGKILL to what is left after a while.

        The group is signalled only while its leader is unreaped (a zombie at worst), so
        its id cannot have been reused by an unrelated process.
        """
        if process.popen.returncode is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            _exited(process.pid, STOP_BOUND)
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        process.popen.wait(timeout=STOP_BOUND)

    def stop_all(self) -> None:
        """Stop everything, newest first; one failure does not spare the others."""
        failures = []
        stops = [partial(self.stop, process) for process in reversed(self._processes)]
        stops += [service.stop for service in reversed(self._services)]
        for stop in stops:
            try:
                stop()
            except Exception as error:
                failures.append(error)
        self._processes, self._services = [], []
        if failures:
            raise BenchError(f"could not stop everything: {failures}")

    def databases(self) -> tuple[Postgres, Redis]:
        postgres = Postgres(self.workdir / "postgres")
        self._services.append(postgres)
        postgres.start()
        redis = Redis(self.workdir / "redis")
        self._services.append(redis)
        redis.start()
        return postgres, redis


def cpu_seconds(*pids: int) -> float:
    """CPU time (user + system, all threads) the processes have used so far: a figure that
    other work on the machine does not inflate as much as it inflates wall time."""
    ticks = 0
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(stat[11]) + int(stat[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_by_command() -> dict[str, float]:
    """CPU seconds used so far by every process on the machine, summed by command name
    (``postgres``, ``redis-server``, ``python``…): subtract two readings to see where a
    window's CPU went."""
    totals: dict[str, float] = {}
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, rest = stat_path.read_text().split(" (", 1)[1].rsplit(")", 1)
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
        fields = rest.split()
        ticks = int(fields[11]) + int(fields[12])
        totals[name] = totals.get(name, 0.0) + ticks / os.sysconf("SC_CLK_TCK")
    return totals


def _exited(pid: int, timeout: float) -> bool:
    """Wait for ``pid`` to exit without reaping it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:  # already reaped
            return True
        time.sleep(0.05)
    return False


# -- environments and commands -----------------------------------------------------------------


def embedded_env(var_dir: Path) -> dict[str, str]:
    """What `make run` has on a fresh machine: no DATABASE_URL, REDIS_URL or SECRET_KEY."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env.update(CADENZA_VAR_DIR=str(var_dir), LOG_LEVEL="INFO", PYTHONUNBUFFERED="1")
    return env


def distributed_env(var_dir: Path, postgres: Postgres, redis: Redis) -> dict[str, str]:
    return {
        **embedded_env(var_dir),
        "DATABASE_URL": postgres.url,
        "REDIS_URL": redis.url,
        "SECRET_KEY": secrets.token_urlsafe(50),
        # 50 load-generating clients share one token: the per-user API limit would measure
        # the throttle, not the API.
        "CADENZA_API_USER_RATE": "off",
    }


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    return python(env, "manage.py", *args, timeout=timeout)


def python(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Run a Python command to completion; its stdout, or BenchError with its stderr."""
    result = subprocess.run(
        [PYTHON, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode:
        raise BenchError(f"python {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def serve(stack: Stack, env: dict[str, str], name: str = "serve") -> tuple[Process, str]:
    """`manage.py serve` (embedded: web + worker + beat; distributed: uvicorn) on a free port."""
    port = free_port()
    argv = [PYTHON, "manage.py", "serve", "--host", HOST, "--port", str(port)]
    process = stack.spawn(name, argv, env)
    wait_listening(process, port)
    if env.get("REDIS_URL"):  # distributed: every web process listens on a socket of its own
        workers = int(env.get("CADENZA_WEB_WORKERS") or os.cpu_count() or 1)
        deadline = time.monotonic() + START_BOUND
        while listeners(port) < workers:
            if time.monotonic() > deadline:
                raise BenchError(f"{name}: {listeners(port)} of {workers} web processes listen")
            time.sleep(0.1)
    return process, f"http://{HOST}:{port}"


def listeners(port: int) -> int:
    """Sockets listening on 127.0.0.1:``port``: a load test that opens its keep-alive
    connections before every web process listens would pin them all to the first."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return sum(1 for row in rows if int(row[1].split(":")[1], 16) == port and row[3] == "0A")


def uvicorn(stack: Stack, env: dict[str, str], app: str, name: str) -> tuple[Process, str]:
    """An ASGI app under uvicorn as `manage.py serve` runs it in distributed mode."""
    port = free_port()
    argv = [PYTHON, "-m", "uvicorn", app, "--host", HOST, "--port", str(port)]
    process = stack.spawn(name, [*argv, "--lifespan", "off", "--no-access-log"], env)
    wait_listening(process, port)
    return process, f"http://{HOST}:{port}"


def celery_worker(stack: Stack, env: dict[str, str], concurrency: int = 4) -> Process:
    """`celery -A config worker --pool threads`, as the distributed mode runs it."""
    argv = [PYTHON, "-m", "celery", "-A", "config", "worker", "--pool", "threads"]
    argv += ["-c", str(concurrency), "--without-mingle", "--without-gossip", "-l", "INFO"]
    worker = stack.spawn("worker", [*argv, "-n", f"bench-{os.getpid()}@{HOST}"], env)
    wait_for_log(worker, " ready.")
    return worker


def wait_listening(process: Process, port: int) -> None:
    try:
        wait_for_port(port, START_BOUND, process.popen)
    except Exception as error:
        raise BenchError(f"{process.name}: {error}\n{process.tail()}") from None


def wait_for_log(process: Process, text: str) -> None:
    deadline = time.monotonic() + START_BOUND
    while text not in process.log.read_text(errors="replace"):
        process.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"{process.name}: no {text!r} after {START_BOUND} s\n{process.tail()}")
        time.sleep(0.1)


def wait_healthy(url: str, process: Process, parts: tuple[str, ...] = ("worker",)) -> dict:
    """Poll /health/ until the named parts are ok (it answers 503 until all of them are)."""
    deadline, last = time.monotonic() + START_BOUND, None
    while time.monotonic() < deadline:
        process.check_alive()
        try:
            last = requests.get(f"{url}/health/", timeout=15).json()
            if all(last[part]["ok"] for part in parts):
                return last
        except (requests.RequestException, ValueError) as error:
            last = error
        time.sleep(0.2)
    raise BenchError(f"{url}/health/: {parts} not ok (last: {last})\n{process.tail()}")
