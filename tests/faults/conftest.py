"""Fault injection (issue #8): servers this tier may stop and restart, beat processes it may
kill, and a folder for the "go" file that lets a ticker step finish."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connections
from kombu import pools

from config.celery import app
from devstack import Postgres, Redis
from tests import harness
from tests.processes import BeatProcess
from tests.runs.conftest import coder_owner  # noqa: F401
from tests.triggers.conftest import make_trigger  # noqa: F401


def unavailable(reason: str):
    """A server this tier needs is not ours to restart: a failure in CI, a visible skip else."""
    if harness.in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def dedicated_redis(tmp_path):
    """A redis-server of this test alone (the session's shared one is never touched).
    ``.stop()`` then ``.start()`` restarts it on the same port, with no data kept."""
    redis = Redis(tmp_path / "redis").start()
    try:
        yield redis
    finally:
        redis.stop()


@contextmanager
def celery_broker(url: str):
    """Point this process's Celery app (dispatch, ``control.ping``) at another broker.

    The connection pools are closed and forgotten as after a fork, so the next publish
    connects to ``url``; the previous broker is restored on the way out.
    """

    def drop_pools() -> None:
        pools.reset()  # closes every pool of this process and empties kombu's registry
        app._pool = None
        app.amqp._producer_pool = None

    saved = app.conf.broker_url
    drop_pools()
    app.conf.broker_url = url
    try:
        yield
    finally:
        drop_pools()
        app.conf.broker_url = saved


@pytest.fixture
def on_dedicated_redis(transactional_db, dedicated_redis, settings):
    """This process's broker and channel layer use the dedicated server, as does a worker
    started with ``REDIS_URL=on_dedicated_redis.url``."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [dedicated_redis.url]},
        }
    }
    with celery_broker(dedicated_redis.url):
        yield dedicated_redis


@pytest.fixture
def session_postgres(transactional_db):
    """The PostgreSQL cluster the harness started for this pytest session: its own folder
    and port, so restarting it disturbs no one else. ``stop`` is an immediate shutdown, as
    a crash: no checkpoint, every connection cut; ``restart_postgres`` brings it back.

    A dedicated cluster starts and migrates in ~7 s, but every query of this process
    (run_start, runs_sweep, the assertions) would then have to reach a second database,
    and Django cannot swap DATABASES at run time.
    """
    url = os.environ.get("DATABASE_URL", "")
    found = [s for s in harness._started if isinstance(s, Postgres) and s.url == url]
    if not found:
        unavailable("DATABASE_URL points at a server this session did not start")
    yield found[0]
    if not (found[0].root / "pgdata" / "postmaster.pid").exists():
        restart_postgres(found[0])  # a failed test must not leave the session without it


def restart_postgres(postgres: Postgres) -> None:
    postgres.start()
    connections.close_all()  # this process's connections died with the server


@pytest.fixture
def go_file():
    """Where the test creates the file that lets a ticker step finish; readable by the
    sandbox account that runs user code when the tests run as root."""
    folder = Path(tempfile.mkdtemp(prefix="cadenza-go-"))
    folder.chmod(0o755)
    try:
        yield folder / "go"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def beat_process(transactional_db, tmp_path):
    """``beat_process(name)`` starts a `celery beat` (again, after a kill: same log file);
    every one still alive is stopped at teardown."""
    started: list[BeatProcess] = []

    def start(name: str) -> BeatProcess:
        beat = BeatProcess(tmp_path / f"beat-{name}.log", tmp_path / f"beat-{name}")
        started.append(beat)
        return beat.start()

    yield start
    for beat in started:
        beat.stop()
