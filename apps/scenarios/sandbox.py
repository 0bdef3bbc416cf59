"""The code sandbox (DESIGN §7): user code runs in a child process, never in the worker.

The child gets a clean environment (no settings, secrets or credentials), a temporary
working directory, resource limits, a wall-clock timeout and is killed, with everything it
started, on abort. When the worker runs as root the child runs as a uid of its own, leased
from ``CADENZA_SANDBOX_UIDS`` (``_Lease``), so it can read neither the worker's
``/proc/<pid>/environ`` nor files such as ``var/secret_key``, nor anything of another child.

Python children talk to the worker through ``cadenza.scenario`` over two pipes (JSON lines);
``handle_call(method, params)`` answers them.
"""

from __future__ import annotations

import ctypes
import fcntl
import grp
import json
import os
import pwd
import resource
import secrets
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
from contextlib import ExitStack, contextmanager
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


class _Lease:
    """A uid (and the gid of the same number) of ``CADENZA_SANDBOX_UIDS`` for one child.

    No two children, of any worker process or project, hold the same one at once: sharing
    one account, a child could read another's working folder (a recipe's input data),
    signal it, or open its pipes to the worker through /proc and call as its run-as user.
    A lease is a lock (``flock``) on a file of ``LEASES``, which the kernel drops if the
    worker dies. Ending, a lease clears what the child left (``_clear``) and marks the file
    "clean"; a lease finding no mark (its worker died) clears first. The uids belong to the
    machine, so their locks do too: two installations (or test sessions) with the same
    range once leased the same uid, and one's clearing killed the other's child.
    """

    def __enter__(self) -> int:
        folder = LEASES
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for uid in settings.CADENZA_SANDBOX_UIDS:
            if _names_an_account(uid):
                continue
            fd = os.open(folder / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                if os.pread(fd, len(CLEAN), 0) != CLEAN:
                    _clear(uid)
                os.ftruncate(fd, 0)
            except BaseException:
                os.close(fd)
                raise
            self.uid, self.fd = uid, fd
            return uid
        raise RuntimeError(
            f"Every uid of CADENZA_SANDBOX_UIDS ({len(settings.CADENZA_SANDBOX_UIDS)}) runs "
            "a child already: widen the range."
        )

    def __exit__(self, *exc) -> None:
        try:
            _clear(self.uid)
            os.pwrite(self.fd, CLEAN, 0)
        finally:
            os.close(self.fd)


def _names_an_account(uid: int) -> bool:
    """A user or group of this number would lend the child its files."""
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(uid)
            return True
        except KeyError:
            pass
    return False


CLEAN = b"clean"
LEASES = Path("/run/cadenza-sandbox-uids")  # machine-wide, emptied at boot (a clear first)
# Folders where any account may create files: what a child left there goes with it.
SHARED_TEMP = ("/tmp", "/var/tmp", "/dev/shm")


def _clear(uid: int) -> None:
    """Kill every process of ``uid`` and remove its files from the shared temporary folders,
    so that nothing of one child meets the next to hold the uid."""
    _kill_every_process_of(uid)
    _remove_files_of(uid)


def _kill_every_process_of(uid: int) -> None:
    # kill(-1) sent as the uid reaches exactly its processes (all but the sender); again, for
    # what a fork bomb was forking.
    subprocess.run(
        ["/bin/sh", "-c", "kill -s KILL -- -1; kill -s KILL -- -1; kill -s KILL -- -1"],
        user=uid,
        group=uid,
        extra_groups=[],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )


def _remove_files_of(uid: int) -> None:
    for folder in {tempfile.gettempdir(), *SHARED_TEMP}:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)  # by descriptors: no symlink leads it astray
                else:
                    os.unlink(entry.path)
            except OSError:
                pass


@contextmanager
def _quarters():
    """``(uid, workdir)`` of one child: the uid leased for it when the worker is root (else
    None: the worker's own), and a private working folder. At the end the folder is removed,
    then the lease kills every process of the uid, even one that left the child's session,
    and removes what it left elsewhere."""
    with ExitStack() as stack:
        uid = stack.enter_context(_Lease()) if os.geteuid() == 0 else None
        workdir = Path(tempfile.mkdtemp(prefix="cadenza-sandbox-"))
        try:
            if uid is not None:
                os.chown(workdir, uid, uid)
            yield uid, workdir
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def _handover_folder():
    """The worker's folder for files it hands a child: others may pass through it (0711), not
    list it nor create, rename or remove anything in it; each file is the child's alone."""
    folder = Path(tempfile.mkdtemp(prefix="cadenza-handover-"))
    try:
        folder.chmod(0o711)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
        self.account: int | None = None  # while a child runs as a leased uid: that uid
        self.handover: Path | None = None  # while a child runs: where the worker leaves files

    def share(self, name: str) -> Path:
        """A new file for the worker to write and the child to read: in a folder of the
        worker's, never the child's working folder. There the child could have put a symlink
        at the name, and the worker (root) would have written through it, then handed the
        file it points to over to the child (tests/security/test_sandbox_files.py)."""
        return self.handover / f"{secrets.token_hex(8)}-{name}"  # the same name twice: two files

    def give(self, path: Path) -> None:
        """Let the child read ``path`` (from ``share``), once the worker has written it."""
        if self.account is not None:
            os.chown(path, self.account, self.account, follow_symlinks=False)

    def open_childs_file(self, path: str) -> int:
        """A read-only descriptor of a regular file the child wrote in its working folder.
        The name is only followed to a file of the child's own: a symlink at the end is
        refused, and one on the way (the child may swap its folders at any moment) can
        only lead to a file that the child's account owns."""
        source = Path(path)
        if not source.is_absolute():
            source = self.workdir / source
        if self.workdir.resolve() not in source.resolve().parents:
            raise ValueError("the data file must be in the recipe's working folder")
        try:
            descriptor = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as error:
            raise ValueError(f"cannot open the data file: {error.strerror}") from None
        info = os.fstat(descriptor)
        owner = os.geteuid() if self.account is None else self.account
        if not stat.S_ISREG(info.st_mode) or info.st_uid != owner:
            os.close(descriptor)
            raise ValueError("the data file must be a file the recipe wrote")
        return descriptor

    def run_python(self, code: str) -> SandboxResult:
        with _quarters() as (account, workdir), _handover_folder() as handover:
            python, paths = _interpreter(account is not None)
            self.account, self.workdir, self.handover = account, workdir, handover
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
        with _quarters() as (account, workdir):
            return self._spawn(["/bin/sh", "-c", command], workdir, account, env, rpc=False)

    # -- internals ---------------------------------------------------------------------------

    def _spawn(self, argv, workdir: Path, account, extra_env: dict, *, rpc: bool) -> SandboxResult:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "LANG": "C.UTF-8",
        }
        if account is not None:
            for path in workdir.rglob("*"):
                os.chown(path, account, account)
            # A uid without an account: getpass.getuser() and the like read these first.
            env["USER"] = env["LOGNAME"] = f"sandbox-{account}"
        env.update(extra_env)
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
            user=account,
            group=account,
            extra_groups=[] if account is not None else None,
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
        threads[0].join(timeout=0.2)
        if account is not None and threads[0].is_alive():  # a process outside its session
            _kill_every_process_of(account)  # holds its output open
        for thread in threads:  # every writer is gone: they end at EOF, once scheduled
            thread.join(timeout=10)  # (a loaded machine can take seconds: lines not lost)
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
