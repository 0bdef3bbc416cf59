"""The code sandbox, used directly (DESIGN §7): what user code can see, what stops it, and the
pipe it talks to the worker through. The test process stands in for the worker."""

from __future__ import annotations

import json
import os
import pwd
import resource
import secrets
import signal
import threading
from dataclasses import dataclass

import pytest
from django.conf import settings

from apps.scenarios.sandbox import Limits, Sandbox, SandboxResult
from tests.processes import process_state, reap_session, wait_until

pytestmark = pytest.mark.timeout(60)
as_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="the sandbox runs code as an unprivileged account only when the worker is root",
)
CALM = Limits(wall_seconds=30, cpu_seconds=30)
CLEAN_ENV = {"PATH", "HOME", "TMPDIR", "LANG", "LC_CTYPE", "CADENZA_PATHS", "CADENZA_RPC_FDS"}


@dataclass
class Ran:
    result: SandboxResult
    stdout: list[str]
    stderr: list[str]

    @property
    def output(self) -> str:
        return "\n".join(self.stdout + self.stderr)


def run(code: str, *, limits: Limits = CALM, handle_call=None, cancel=None) -> Ran:
    stdout: list[str] = []
    stderr: list[str] = []
    sandbox = Sandbox(
        on_stdout=stdout.append,
        on_stderr=stderr.append,
        handle_call=handle_call,
        cancel=cancel,
        limits=limits,
    )
    return Ran(sandbox.run_python(code), stdout, stderr)


def printed_pid(ran: Ran) -> int:
    return int(next(line for line in ran.stdout if line.startswith("pid ")).split()[1])


@pytest.fixture
def worker_secrets(monkeypatch) -> dict[str, str]:
    """The secrets in this (the worker's) environment, plus a canary of our own."""
    monkeypatch.setenv("CADENZA_TEST_CANARY", secrets.token_urlsafe(24))
    names = ["SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CADENZA_TEST_CANARY"]
    found = {name: os.environ[name] for name in names if os.environ.get(name)}
    assert {"SECRET_KEY", "DATABASE_URL", "CADENZA_TEST_CANARY"} <= set(found)
    return found


@pytest.fixture
def secret_key_file():
    """var/secret_key as embedded mode keeps it (owner-only), created if this session has none."""
    path = settings.VAR_DIR / "secret_key"
    created = not path.exists()
    if created:
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    yield path
    if created:
        path.unlink()


def test_user_code_sees_a_clean_environment(worker_secrets):
    ran = run("import json, os\nprint(json.dumps(dict(os.environ)))")
    assert ran.result.ok, ran.output
    environ = json.loads(ran.stdout[0])
    assert set(environ) <= CLEAN_ENV, set(environ) - CLEAN_ENV
    for name, value in worker_secrets.items():
        assert name not in environ
        assert value not in ran.output


@as_root
def test_user_code_cannot_read_the_worker_environment_or_secret_key(
    worker_secrets, secret_key_file
):
    code = (
        "import os\n"
        "print('uid', os.getuid(), 'ppid', os.getppid())\n"
        f"for path in [f'/proc/{{os.getppid()}}/environ', {str(secret_key_file)!r}]:\n"
        "    try:\n"
        "        print('read', path, open(path, 'rb').read().decode(errors='replace'))\n"
        "    except OSError as error:\n"
        "        print('denied', path, type(error).__name__)\n"
    )
    ran = run(code)
    assert ran.result.ok, ran.output
    nobody = pwd.getpwnam(settings.CADENZA_SANDBOX_USER).pw_uid
    assert ran.stdout == [
        f"uid {nobody} ppid {os.getpid()}",  # the parent is this process, standing for the worker
        f"denied /proc/{os.getpid()}/environ PermissionError",
        f"denied {secret_key_file} PermissionError",
    ]
    for value in [*worker_secrets.values(), secret_key_file.read_text()]:
        assert value not in ran.output


def test_a_memory_hog_is_stopped_and_the_worker_is_unharmed():
    before = resource.getrlimit(resource.RLIMIT_AS)
    limits = Limits(wall_seconds=30, cpu_seconds=30, memory_bytes=512 * 1024**2)
    ran = run("data = bytearray(8 * 1024**3)\nprint('allocated')", limits=limits)
    assert ran.result.returncode not in (0, None)
    assert "MemoryError" in ran.output
    assert "allocated" not in ran.stdout
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    assert len(bytearray(1024**3)) == 1024**3  # more than the child was allowed


@as_root  # RLIMIT_NPROC applies to the sandbox account only: as any other user it is not set
def test_a_fork_bomb_is_stopped_and_leaves_nothing_behind(sandbox_sessions):
    code = (
        "import os, time\n"
        "print('pid', os.getpid(), flush=True)\n"
        "stop = time.monotonic() + 20  # should the sandbox fail to kill it, it ends anyway\n"
        "told = False\n"
        "while time.monotonic() < stop:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        if not told:\n"
        "            print('process limit reached', flush=True)\n"
        "            told = True\n"
    )
    limits = Limits(wall_seconds=2, cpu_seconds=10, processes=16)
    ran = run(code, limits=limits)
    pid = printed_pid(ran)
    sandbox_sessions.append(pid)
    assert ran.result.timed_out
    assert ran.result.duration < 10
    assert "process limit reached" in ran.stdout
    wait_until(
        lambda: all(state == "Z" for state in reap_session(pid).values()),
        timeout=5,
        what="every process of the fork bomb's session ended",
    )
    assert reap_session(pid) == {}  # nothing left, not even a zombie


def test_the_cpu_limit_kills_a_busy_loop():
    ran = run("while True:\n    pass", limits=Limits(wall_seconds=30, cpu_seconds=1))
    assert ran.result.returncode in (-signal.SIGXCPU, -signal.SIGKILL)
    assert not ran.result.timed_out
    assert ran.result.duration < 10
    assert ran.result.describe().startswith("killed by SIG")


def test_cancel_kills_the_child_at_once():
    cancel = threading.Event()
    lines: list[str] = []

    def on_stdout(line: str) -> None:
        lines.append(line)
        cancel.set()  # the child is running: stop it

    sandbox = Sandbox(on_stdout=on_stdout, on_stderr=lines.append, cancel=cancel, limits=CALM)
    code = "import os, time\nprint('pid', os.getpid(), flush=True)\ntime.sleep(60)"
    result = sandbox.run_python(code)
    assert result.cancelled and result.describe() == "aborted"
    assert result.duration < 5
    assert process_state(int(lines[0].split()[1])) is None


def test_calls_from_user_code_reach_handle_call_and_answers_come_back():
    calls = []

    def handle_call(method: str, params: dict):
        calls.append((method, params))
        return {"threshold": 3} if method == "get_variables" else None

    code = (
        "from cadenza import scenario\n"
        "v = scenario.get_variables()\n"
        "print('twice the threshold is', v['threshold'] * 2)\n"
        "scenario.set_variables(rows=30)\n"
    )
    ran = run(code, handle_call=handle_call)
    assert ran.result.ok, ran.output
    assert ran.stdout == ["twice the threshold is 6"]
    assert calls == [("get_variables", {}), ("set_variables", {"variables": {"rows": 30}})]


def test_an_error_in_handle_call_reaches_user_code_as_cadenza_error():
    def handle_call(method: str, params: dict):
        raise PermissionError(f"alice may not run {params['scenario']}")

    code = (
        "from cadenza import scenario\n"
        "try:\n"
        "    scenario.run_scenario('Nightly')\n"
        "except scenario.CadenzaError as error:\n"
        "    print('refused:', error)\n"
        "print('carrying on')\n"
    )
    ran = run(code, handle_call=handle_call)
    assert ran.result.ok, ran.output
    assert ran.stdout == ["refused: PermissionError: alice may not run Nightly", "carrying on"]
