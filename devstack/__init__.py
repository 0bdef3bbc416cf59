"""Throw-away local PostgreSQL and Redis servers on loopback, for tests, benchmarks and
`make run-distributed`. Data lives in a folder of our own; nothing system-wide is touched.

Both ask for a password over TCP: user code runs on the same machine (as other uids, in the
sandbox), and loopback servers without one would let it in. The password is kept in the
folder, readable by this account only, and never appears on a command line (which any
account can read in /proc).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class ServiceError(RuntimeError):
    pass


def _password(root: Path, owner: str | None = None) -> str:
    """The server's password, made once and kept in ``root/password`` (mode 0600)."""
    path = root / "password"
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(24))
    if owner:
        shutil.chown(path, owner)
    return path.read_text().strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServiceError(f"process exited with {process.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise ServiceError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


def _postgres_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version_key)
    if not candidates:
        raise ServiceError(
            f"{name} not found: install PostgreSQL (make test does it with apt-get)."
        )
    return candidates[-1]


def _version_key(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except ValueError:
        return 0


def _as_postgres_user() -> list[str]:
    """initdb and postgres refuse to run as root; run them as the postgres account then."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServiceError("running as root, but no postgres account to run it") from None
    return ["runuser", "-u", "postgres", "--"]


@dataclass
class Postgres:
    root: Path
    port: int = 0
    user: str = "cadenza"
    database: str = "cadenza"

    @property
    def password(self) -> str:
        return _password(self.root, "postgres" if _as_postgres_user() else None)

    @property
    def url(self) -> str:
        return f"postgres://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def start(self, timeout: float = 60) -> Postgres:
        self.port = self.port or free_port()
        data, sudo = self.root / "pgdata", _as_postgres_user()
        self.root.mkdir(parents=True, exist_ok=True)
        if sudo:
            shutil.chown(self.root, "postgres")
        self.password  # made before initdb reads it  # noqa: B018
        if not (data / "PG_VERSION").exists():
            # A cluster made before passwords keeps its trust rules; the URL's password is
            # then simply not asked for.
            self._run(
                [
                    *sudo,
                    _postgres_bin("initdb"),
                    "-D",
                    str(data),
                    "-U",
                    self.user,
                    "--auth=scram-sha-256",  # TCP and the Unix socket alike
                    f"--pwfile={self.root / 'password'}",
                    "--encoding=UTF8",
                    "--no-sync",
                ]
            )
        self._run(
            [
                *sudo,
                _postgres_bin("pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.root / "log"),
                "-w",
                "-t",
                str(int(timeout)),
                "start",
                "-o",
                f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            ]
        )
        self._create_database()
        return self

    def _create_database(self) -> None:
        createdb = _postgres_bin("createdb")
        result = subprocess.run(
            [createdb, "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.database],
            capture_output=True,
            text=True,
            env={**os.environ, "PGPASSWORD": self.password},
        )
        if result.returncode and "already exists" not in result.stderr:
            raise ServiceError(f"createdb failed: {result.stderr.strip()}")

    def stop(self) -> None:
        if (self.root / "pgdata" / "postmaster.pid").exists():
            subprocess.run(
                [
                    *_as_postgres_user(),
                    _postgres_bin("pg_ctl"),
                    "-D",
                    str(self.root / "pgdata"),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                capture_output=True,
                timeout=60,
            )

    @staticmethod
    def _run(command: list[str]) -> None:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode:
            program = next(Path(part).name for part in command if part.startswith("/"))
            output = result.stderr.strip() or result.stdout.strip()
            raise ServiceError(f"{program} failed: {output}")


@dataclass
class Redis:
    root: Path
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://:{_password(self.root)}@127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20) -> Redis:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise ServiceError(
                "redis-server not found: install it (make test does it with apt-get)."
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        config = self.root / "redis.conf"  # the password: not on the command line
        descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(f"requirepass {_password(self.root)}\n")
        self.process = subprocess.Popen(
            [
                binary,
                str(config),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
                "--logfile",
                str(self.root / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout, self.process)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
