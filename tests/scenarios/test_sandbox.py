"""The code sandbox, used directly (DESIGN §7): what user code can see, what stops it, and the
pipe it talks to the worker through. The test process stands in for the worker."""

from __future__ import annotations

import json
import os
import resource
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from apps.scenarios import sandbox
from apps.scenarios.sandbox import Limits, Sandbox, SandboxResult
from tests.processes import process_state, reap_session, wait_until

pytestmark = pytest.mark.timeout(60)
as_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="the sandbox runs code as an unprivileged account only when the worker is root",
)
CALM = Limits(wall_seconds=30, cpu_seconds=30)
CLEAN_ENV = {"PATH", "HOME", "TMPDIR", "LANG", "LC_CTYPE", "CADENZA_PATHS", "CADENZA_RPC_FDS",
             "USER", "LOGNAME"}  # fmt: skip


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
    uid = int(ran.stdout[0].split()[1])
    assert uid in settings.CADENZA_SANDBOX_UIDS
    assert ran.stdout == [
        f"uid {uid} ppid {os.getpid()}",  # the parent is this process, standing for the worker
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


# -- disk, descriptors, and what else a child could reach ----------------------------------------


def test_a_file_beyond_the_size_limit_is_stopped_and_the_worker_is_unharmed(tmp_path):
    before = resource.getrlimit(resource.RLIMIT_FSIZE)
    limits = Limits(wall_seconds=30, cpu_seconds=30, file_bytes=1024**2)
    code = (
        "import os\n"
        "try:\n"
        "    with open('big', 'wb') as f:\n"
        "        for _ in range(64):  # 4 MiB\n"
        "            f.write(b'x' * 65536)\n"
        "except OSError as error:  # Python ignores SIGXFSZ: the write fails instead\n"
        "    print('stopped:', error.strerror)\n"
        "print('size', os.path.getsize('big'))\n"
    )
    ran = run(code, limits=limits)
    assert ran.result.ok, ran.output
    assert ran.stdout == ["stopped: File too large", f"size {1024**2}"]
    # Any other program is killed by SIGXFSZ (exit status 128 + 25 in the shell).
    out: list[str] = []
    err: list[str] = []
    shell = Sandbox(on_stdout=out.append, on_stderr=err.append, limits=limits)
    result = shell.run_shell("head -c 4194304 /dev/zero > big; echo $? $(wc -c < big)", {})
    assert result.ok and out == [f"{128 + signal.SIGXFSZ} {1024**2}"], out + err
    assert err == ["File size limit exceeded"]
    assert resource.getrlimit(resource.RLIMIT_FSIZE) == before
    (tmp_path / "big").write_bytes(b"x" * 4 * 1024**2)  # more than the child was allowed
    assert (tmp_path / "big").stat().st_size == 4 * 1024**2


def test_user_code_inherits_no_descriptor_of_the_worker_but_its_pipes(db):
    from django.db import connection

    connection.ensure_connection()  # the worker holds a socket to PostgreSQL
    code = (
        "import os\n"
        "print(os.environ['CADENZA_RPC_FDS'])\n"
        "for fd in sorted(os.listdir('/proc/self/fd'), key=int):\n"
        "    try:\n"
        "        print(fd, os.readlink(f'/proc/self/fd/{fd}').split(':')[0])\n"
        "    except OSError:\n"
        "        pass  # the listing's own descriptor, closed by now\n"
    )
    ran = run(code)
    assert ran.result.ok, ran.output
    rpc, kinds = ran.stdout[0].split(","), dict(line.split() for line in ran.stdout[1:])
    assert sorted(kinds, key=int) == ["0", "1", "2", *sorted(rpc, key=int)]  # and nothing else
    assert [kinds[fd] for fd in ("0", "1", "2", *rpc)] == ["/dev/null", *["pipe"] * 4]


@as_root
def test_two_children_never_share_a_uid_nor_reach_each_other():
    """Sharing one account, a child could read another's working folder (a recipe's input
    data), signal it, or open its pipes to the worker through /proc."""
    lines: list[str] = []
    cancel = threading.Event()
    code = (
        "import os, time\n"
        "open('in-hrsecret.parquet', 'w').write('salaries')\n"
        "print(os.getuid(), os.getpid(), os.getcwd(), os.environ['CADENZA_RPC_FDS'], flush=True)\n"
        "time.sleep(30)\n"
    )
    first = Sandbox(on_stdout=lines.append, on_stderr=lines.append, cancel=cancel, limits=CALM)
    thread = threading.Thread(target=first.run_python, args=(code,))
    thread.start()
    try:
        wait_until(lambda: lines, timeout=10, what="the first child started")
        uid, pid, workdir, rpc = lines[0].split()
        paths = [f"{workdir}/in-hrsecret.parquet", f"/proc/{pid}/environ",
                 *(f"/proc/{pid}/fd/{fd}" for fd in rpc.split(","))]  # fmt: skip
        ran = run(
            "import os, signal\n"
            "print(os.getuid())\n"
            f"for path in {paths!r}:\n"
            "    try:\n"
            "        open(path, 'rb').close()\n"
            "        print('opened', path)\n"
            "    except OSError as error:\n"
            "        print(type(error).__name__, path)\n"
            "try:\n"
            f"    os.kill({pid}, signal.SIGKILL)\n"
            "    print('killed')\n"
            "except OSError as error:\n"
            "    print(type(error).__name__, 'kill')\n"
        )
        assert ran.result.ok, ran.output
        assert int(uid) in settings.CADENZA_SANDBOX_UIDS
        assert int(ran.stdout[0]) in settings.CADENZA_SANDBOX_UIDS
        assert ran.stdout[0] != uid
        assert ran.stdout[1:] == [*(f"PermissionError {path}" for path in paths),
                                  "PermissionError kill"]  # fmt: skip
    finally:
        cancel.set()
        thread.join(timeout=10)
    assert process_state(int(pid)) is None


@as_root
def test_nothing_a_child_started_or_left_outlives_the_run(sandbox_sessions):
    """Not a process that left the child's session (which killing the group misses), nor
    files outside its working folder: the next child to get the uid would find them."""
    left = [f"{folder}/cadenza-left-{secrets.token_hex(4)}" for folder in ("/tmp", "/dev/shm")]
    code = (
        "import os, time\n"
        f"for path in {left!r}:\n"
        "    os.makedirs(path + '/inside')\n"
        "    open(path + '/inside/data', 'w').write('kept for later')\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    print('escaped', os.getpid(), flush=True)\n"
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
        "time.sleep(0.5)  # let it print\n"
    )
    try:
        ran = run(code)
        escaped = int(ran.stdout[0].split()[1])
        sandbox_sessions.append(escaped)  # it leads its own session: killed if still there
        assert ran.result.ok, ran.output
        assert ran.result.duration < 3  # it held the child's output open: not for long
        wait_until(
            lambda: reap_session(escaped) == {},
            timeout=5,
            what="the process that left the child's session ended with the run",
        )
        assert [path for path in left if os.path.exists(path)] == []
    finally:
        for path in left:
            shutil.rmtree(path, ignore_errors=True)


@as_root
def test_user_code_cannot_read_the_embedded_database_nor_the_projects_files():
    """Embedded mode keeps its SQLite database and the default connection's datasets in
    var/: made by the app in a folder as readable as any installation's (0755)."""
    base = Path(tempfile.mkdtemp(prefix="cadenza-embedded-"))
    try:
        base.chmod(0o755)
        var = base / "var"
        environ = {key: os.environ[key] for key in ("PATH", "LANG") if key in os.environ}
        script = (
            "import django, os\n"
            "os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'\n"
            "django.setup()\n"
            "from django.db import connection\n"
            "connection.cursor().execute(\"CREATE TABLE t AS SELECT 'the database' AS x\")\n"
            "data = django.conf.settings.VAR_DIR / 'data' / 'hr'\n"
            "data.mkdir(parents=True)\n"  # as a build of the default connection does
            "(data / 'salaries.csv').write_text('the salaries')\n"
        )
        subprocess.run([sys.executable, "-c", script], cwd=settings.BASE_DIR, check=True,
                       env={**environ, "CADENZA_VAR_DIR": str(var)}, timeout=60)  # fmt: skip
        files = [var / "cadenza.sqlite3", var / "secret_key", var / "data" / "hr" / "salaries.csv"]
        ran = run(
            f"for path in {[str(path) for path in files]!r}:\n"
            "    try:\n"
            "        print('read', path, open(path, 'rb').read()[:100])\n"
            "    except OSError as error:\n"
            "        print(type(error).__name__, path)\n"
        )
        assert ran.result.ok, ran.output
        assert ran.stdout == [f"PermissionError {path}" for path in files]
        assert stat.S_IMODE((var / "cadenza.sqlite3").stat().st_mode) == 0o600
        assert stat.S_IMODE((var / "data").stat().st_mode) == 0o700
    finally:
        shutil.rmtree(base, ignore_errors=True)


@as_root
def test_two_installations_on_one_machine_never_lease_the_same_uid(settings, tmp_path):
    """The uids are the machine's: another VAR_DIR (installation, test session) with the
    same range must not hold one at the same time (its clearing would kill our child)."""
    with sandbox._Lease() as first:
        settings.VAR_DIR = tmp_path
        with sandbox._Lease() as second:
            assert second != first


@as_root
def test_what_the_child_of_a_dead_worker_left_goes_before_the_next_child(sandbox_sessions):
    """A worker killed outright ends no lease cleanly: the next holder of the uid clears."""
    uid = settings.CADENZA_SANDBOX_UIDS[0]  # the next child's: this process holds no lease
    sandbox.LEASES.mkdir(mode=0o700, parents=True, exist_ok=True)
    (sandbox.LEASES / str(uid)).write_bytes(b"")  # no "clean" mark
    left = subprocess.Popen(["sleep", "60"], user=uid, group=uid, extra_groups=[],
                            start_new_session=True)  # fmt: skip
    sandbox_sessions.append(left.pid)
    ran = run(
        "import os\n"
        "others = [pid for pid in os.listdir('/proc') if pid.isdigit()\n"
        "          and os.stat(f'/proc/{pid}').st_uid == os.getuid() and int(pid) != os.getpid()\n"
        "          and open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[0] != 'Z']\n"
        "print(os.getuid(), 'shares its uid with', len(others))\n"
    )
    assert ran.stdout == [f"{uid} shares its uid with 0"]
    assert left.wait(timeout=5) == -signal.SIGKILL


def test_user_code_cannot_use_the_loopback_database_or_broker_without_their_password():
    """User code shares the worker's network: the servers beside it must ask for the
    credentials it cannot read (devstack's PostgreSQL and Redis do; a deployment's must too,
    docs/security.md). The child speaks their protocols on bare sockets."""
    database = settings.DATABASES["default"]
    redis = urlsplit(os.environ["REDIS_URL"])
    code = (
        "import socket, struct\n"
        "params = b'user\\0' + b'cadenza\\0database\\0cadenza\\0\\0'\n"
        "packet = struct.pack('!ii', 8 + len(params), 196608) + params\n"
        f"pg = socket.create_connection(({database['HOST']!r}, {int(database['PORT'])}))\n"
        "pg.sendall(packet)\n"
        "kind, (length, code) = pg.recv(1), struct.unpack('!ii', pg.recv(8))\n"
        "print('postgres', kind.decode(), code)\n"
        f"broker = socket.create_connection(({redis.hostname!r}, {redis.port}))\n"
        "broker.sendall(b'PING\\r\\n')\n"
        "print('redis', broker.recv(64).decode().split()[0])\n"
    )
    ran = run(code)
    assert ran.result.ok, ran.output
    # AuthenticationSASL (10), not AuthenticationOk (0): the server wants a password.
    assert ran.stdout == ["postgres R 10", "redis -NOAUTH"]
