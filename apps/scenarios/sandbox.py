"""The code sandbox (DESIGN §7): user code runs in a child process, never in the worker.

The child gets a clean environment (no settings, secrets or credentials), a temporary
working directory, resource limits, a wall-clock timeout and is killed, with everything it
started, on abort. When the worker runs as root the child runs as an unprivileged account
(``CADENZA_SANDBOX_USER``, default ``nobody``), so it can read neither the worker's
``/proc/<pid>/environ`` nor files such as ``var/secret_key``.

Python children talk to the worker through ``cadenza.scenario`` over two pipes (JSON lines);
``handle_call(method, params)`` answers them.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import resource
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from django.conf import settings
from django.db import connection

LIB = Path(__file__).resolve().parent / "sandbox_lib"
PR_SET_PDEATHSIG = 1
# Loaded here, not in the child: between fork and exec only trivial calls are safe.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 3600
    cpu_seconds: int = 3600
    memory_bytes: int = 2 * 1024**3
    file_bytes: int = 1024**3
    processes: int = 64

    @classmethod
    def from_settings(cls, wall_seconds: float | None = None) -> Limits:
        wall = wall_seconds or settings.CADENZA_SANDBOX_TIMEOUT
        return cls(
            wall_seconds=wall,
            cpu_seconds=int(wall) + 1,
            memory_bytes=settings.CADENZA_SANDBOX_MEMORY_MB * 1024**2,
            file_bytes=settings.CADENZA_SANDBOX_FILE_MB * 1024**2,
            processes=settings.CADENZA_SANDBOX_PROCESSES,
        )


@dataclass(frozen=True)
class SandboxResult:
    returncode: int | None
    timed_out: bool = False
    cancelled: bool = False
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not (self.timed_out or self.cancelled)

    def describe(self) -> str:
        if self.cancelled:
            return "aborted"
        if self.timed_out:
            return "timed out"
        if self.returncode is not None and self.returncode < 0:
            name = signal.Signals(-self.returncode).name
            return f"killed by {name}" + (" (CPU limit)" if name == "SIGXCPU" else "")
        return f"exit code {self.returncode}"


Handler = Callable[[str, dict], object]
LineSink = Callable[[str], None]


def _sandbox_account() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    return pwd.getpwnam(settings.CADENZA_SANDBOX_USER)


def _world_reachable(path: Path) -> bool:
    """Can any user read ``path``? (Every parent must be world-traversable.)"""
    path = path.resolve()
    for part in [path, *path.parents]:
        mode = part.stat().st_mode
        if not mode & stat.S_IXOTH or (part == path and not mode & stat.S_IROTH):
            return False
    return True


@cache
def _interpreter(unprivileged: bool) -> tuple[str, tuple[str, ...]]:
    """The Python to run and the extra import paths (our site-packages, when reachable)."""
    if settings.CADENZA_SANDBOX_PYTHON:
        python = settings.CADENZA_SANDBOX_PYTHON
    elif unprivileged and not _world_reachable(Path(sys.executable)):
        # e.g. a pyenv Python under /root: use the system Python of the same version.
        python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    else:
        python = sys.executable
    site = Path(sysconfig.get_paths()["purelib"])
    paths = (str(site),) if not unprivileged or _world_reachable(site) else ()
    return python, paths


def _confine_child(limits: Limits, unprivileged: bool) -> Callable[[], None]:
    """The child's preexec: it dies with the worker and runs within ``limits``."""
    parent = os.getpid()

    def apply() -> None:  # runs in the child between fork and exec, after the switch of user
        if _LIBC is not None:
            # The child leads its own session, so a worker that dies without cleaning up
            # (SIGKILL, OOM killer) would leave it running: have the kernel kill it then.
            # It fires when the forking thread ends, which waits for the child anyway, and
            # must come after the switch of user, which clears it.
            _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # the worker died before prctl took effect
                os._exit(1)
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if unprivileged:  # RLIMIT_NPROC counts every process of the uid: only ours alone
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))

    return apply


class Sandbox:
    def __init__(
        self,
        *,
        on_stdout: LineSink,
        on_stderr: LineSink,
        handle_call: Handler | None = None,
        cancel: threading.Event | None = None,
        limits: Limits | None = None,
    ):
        self.on_stdout, self.on_stderr, self.handle_call = on_stdout, on_stderr, handle_call
        self.cancel = cancel or threading.Event()
        self.limits = limits or Limits.from_settings()
        self.workdir: Path | None = None  # while a child runs: its working folder
        self.account = _sandbox_account()

    def share(self, path: Path) -> None:
        """Let the child read a file the worker wrote into its working folder."""
        if self.account:
            os.chown(path, self.account.pw_uid, self.account.pw_gid)

    def run_python(self, code: str) -> SandboxResult:
        account = _sandbox_account()
        python, paths = _interpreter(account is not None)
        with self._workdir(account) as workdir:
            self.workdir = workdir
            shutil.copytree(LIB, workdir / ".cadenza")
            (workdir / "main.py").write_text(code)
            env = {"CADENZA_PATHS": os.pathsep.join([str(workdir / ".cadenza"), *paths])}
            argv = [
                python,
                "-I",
                "-u",
                str(workdir / ".cadenza" / "_cadenza_bootstrap.py"),
                str(workdir / "main.py"),
            ]
            return self._spawn(argv, workdir, account, env, rpc=True)

    def run_shell(self, command: str, env: dict[str, str]) -> SandboxResult:
        account = _sandbox_account()
        with self._workdir(account) as workdir:
            return self._spawn(["/bin/sh", "-c", command], workdir, account, env, rpc=False)

    # -- internals ---------------------------------------------------------------------------

    class _workdir:
        def __init__(self, account):
            self.account = account

        def __enter__(self) -> Path:
            self.path = Path(tempfile.mkdtemp(prefix="cadenza-sandbox-"))
            if self.account:
                os.chown(self.path, self.account.pw_uid, self.account.pw_gid)
            return self.path

        def __exit__(self, *exc):
            shutil.rmtree(self.path, ignore_errors=True)

    def _spawn(self, argv, workdir: Path, account, extra_env: dict, *, rpc: bool) -> SandboxResult:
        if account:
            for path in workdir.rglob("*"):
                os.chown(path, account.pw_uid, account.pw_gid)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "LANG": "C.UTF-8",
            **extra_env,
        }
        pipes = _RpcPipes() if rpc else None
        if pipes:
            env["CADENZA_RPC_FDS"] = pipes.child_fds
        started = time.monotonic()
        process = subprocess.Popen(
            argv,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
            pass_fds=pipes.pass_fds if pipes else (),
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            extra_groups=[] if account else None,
            preexec_fn=_confine_child(self.limits, account is not None),
        )
        threads = [_reader(process.stdout, self.on_stdout), _reader(process.stderr, self.on_stderr)]
        if pipes:
            pipes.close_child_ends()
            threads.append(pipes.serve(self.handle_call))
        timed_out = cancelled = False
        while process.poll() is None:
            if self.cancel.is_set():
                cancelled = True
            elif time.monotonic() - started > self.limits.wall_seconds:
                timed_out = True
            if cancelled or timed_out:
                _kill_group(process)
                break
            try:
                process.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        _kill_group(process)  # whatever the child left behind
        for thread in threads:
            thread.join(timeout=2)
        return SandboxResult(process.returncode, timed_out, cancelled, time.monotonic() - started)


def _kill_group(process: subprocess.Popen) -> None:
    for _ in range(20):  # a fork bomb may still be forking: repeat until the group is gone
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            break
        time.sleep(0.01)
    process.wait()


def _reader(stream, sink: LineSink) -> threading.Thread:
    def pump():
        for line in stream:
            sink(line.rstrip("\n"))

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


class _RpcPipes:
    def __init__(self):
        self.request_r, self.request_w = os.pipe()  # child → worker
        self.answer_r, self.answer_w = os.pipe()  # worker → child
        self.child_fds = f"{self.answer_r},{self.request_w}"
        self.pass_fds = (self.answer_r, self.request_w)

    def close_child_ends(self) -> None:
        os.close(self.answer_r)
        os.close(self.request_w)

    def serve(self, handle_call: Handler | None) -> threading.Thread:
        def loop():
            with (
                os.fdopen(self.request_r, encoding="utf-8") as requests,
                os.fdopen(self.answer_w, "w", encoding="utf-8") as answers,
            ):
                try:
                    for line in requests:
                        answers.write(json.dumps(_answer(handle_call, line), default=str) + "\n")
                        answers.flush()
                except BrokenPipeError:
                    pass  # the child is gone
                finally:
                    connection.close()  # the handler used this thread's own connection

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread


def _answer(handle_call: Handler | None, line: str) -> dict:
    try:
        request = json.loads(line)
        if handle_call is None:
            raise ValueError("this code has no scenario API")
        return {"result": handle_call(request["method"], request.get("params") or {})}
    except Exception as error:  # the child gets the reason; the worker carries on
        return {"error": f"{type(error).__name__}: {error}"}
