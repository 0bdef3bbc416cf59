"""A real Celery worker process on the test PostgreSQL and Redis (distributed mode)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from django.db import connection

from apps.system.models import Heartbeat
from apps.system.tasks import heartbeat, ping
from config.celery import app

ROOT = Path(__file__).resolve().parents[2]
BOUND = 30  # seconds for any one wait below

pytestmark = [
    pytest.mark.worker,
    pytest.mark.timeout(90),
    pytest.mark.django_db(transaction=True),
]


def _test_database_url() -> str:
    """DATABASE_URL of the database pytest-django created, so the worker writes where we read."""
    db = connection.settings_dict
    auth = quote(db["USER"], safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    port = f":{db['PORT']}" if db["PORT"] else ""
    query = f"?{urlencode(db['OPTIONS'])}" if db["OPTIONS"] else ""
    return f"postgres://{auth}@{db['HOST']}{port}/{quote(db['NAME'], safe='')}{query}"


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-40:])


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """`celery worker` as the Procfile runs it, in its own process, for this module's tests."""
    with django_db_blocker.unblock():
        database_url = _test_database_url()
    assert database_url.rsplit("/", 1)[-1].startswith("test_"), database_url
    name = f"test-{uuid.uuid4().hex[:8]}@localhost"
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "threads"]
    command += ["-c", "2", "--without-mingle", "--without-gossip", "-n", name, "-l", "INFO"]
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(process, name, log)
        yield {"process": process, "name": name, "log": log}
    finally:
        process.terminate()
        try:
            process.wait(timeout=BOUND)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_for(process: subprocess.Popen, name: str, log: Path) -> None:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the worker exited with {process.returncode}:\n{_tail(log)}")
        if app.control.ping(destination=[name], timeout=0.5):
            return
    pytest.fail(f"the worker did not answer a ping within {BOUND} s:\n{_tail(log)}")


def test_ping_runs_in_the_worker_process(worker):
    answer = ping.delay().get(timeout=20)
    assert answer["pid"] == worker["process"].pid
    assert answer["pid"] != os.getpid()


def _heartbeat_through(worker) -> Heartbeat:
    heartbeat.delay()
    deadline = time.monotonic() + BOUND
    while not Heartbeat.objects.filter(name="beat").exists():
        if time.monotonic() > deadline:
            pytest.fail(f"no heartbeat row after {BOUND} s:\n{_tail(worker['log'])}")
        time.sleep(0.05)
    return Heartbeat.objects.get(name="beat")


def test_heartbeat_from_the_worker_reaches_the_test_database(worker):
    assert not Heartbeat.objects.exists()
    assert _heartbeat_through(worker).host


def test_health_reports_the_worker_and_database(worker, client):
    _heartbeat_through(worker)  # beat is not running here: send its tick by hand
    response = client.get("/health/")
    report = response.json()
    assert report["mode"] == "distributed"
    assert report["database"] == {"ok": True, "vendor": "postgresql"}
    assert report["worker"]["ok"] is True, report["worker"]
    assert report["worker"]["pid"] == worker["process"].pid
    assert response.status_code == 200, report
