"""Pytest plugin (loaded with -p tests.harness): starts PostgreSQL and Redis on loopback for
the session, before Django reads its settings, and stops them at the end.

If DATABASE_URL and REDIS_URL are already set, those servers are used instead. A server
that cannot start ends the session with the reason: tests never fall back to something less.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

from devstack import Postgres, Redis, ServiceError

_started: list = []
_tmp: Path | None = None


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    _start_services()
    return (yield)


def _start_services() -> None:
    global _tmp
    _tmp = Path(tempfile.mkdtemp(prefix="cadenza-test-"))
    _tmp.chmod(0o755)  # the postgres account must reach its data folder
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ["CADENZA_VAR_DIR"] = str(_tmp / "var")
    os.environ.pop("CADENZA_LICENSE_PUBLIC_KEY", None)
    # A second database for SQL steps to query (tests/runs/test_steps.py).
    os.environ["CADENZA_SQL_CONNECTIONS"] = f"warehouse=sqlite:///{_tmp / 'warehouse.sqlite3'}"
    try:
        if not os.environ.get("DATABASE_URL"):
            postgres = Postgres(_tmp / "postgres").start()
            _started.append(postgres)
            os.environ["DATABASE_URL"] = postgres.url
        if not os.environ.get("REDIS_URL"):
            redis = Redis(_tmp / "redis").start()
            _started.append(redis)
            os.environ["REDIS_URL"] = redis.url
    except ServiceError as error:
        _stop_services()
        raise pytest.UsageError(
            f"Cannot start the test servers: {error}. `make test` installs PostgreSQL and "
            "Redis; or point DATABASE_URL and REDIS_URL at servers of your own."
        ) from None


def _stop_services() -> None:
    while _started:
        _started.pop().stop()
    if _tmp is not None:
        shutil.rmtree(_tmp, ignore_errors=True)


def pytest_unconfigure(config):
    _stop_services()
