"""A real Celery worker process on the test PostgreSQL and Redis (distributed mode)."""

from __future__ import annotations

import os
import time

import pytest

from apps.system.models import Heartbeat
from apps.system.tasks import heartbeat, ping
from tests.processes import WorkerProcess

BOUND = 30  # seconds for any one wait below

pytestmark = [
    pytest.mark.worker,
    pytest.mark.timeout(90),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """One worker for this module's tests (tests that kill theirs use celery_worker_process)."""
    process = WorkerProcess(tmp_path_factory.mktemp("worker") / "worker.log")
    with django_db_blocker.unblock():
        try:
            yield process.start()
        finally:
            process.stop()


def test_ping_runs_in_the_worker_process(worker):
    answer = ping.delay().get(timeout=20)
    assert answer["pid"] == worker.pid
    assert answer["pid"] != os.getpid()


def _heartbeat_through(worker) -> Heartbeat:
    heartbeat.delay()
    deadline = time.monotonic() + BOUND
    while not Heartbeat.objects.filter(name="beat").exists():
        if time.monotonic() > deadline:
            pytest.fail(f"no heartbeat row after {BOUND} s:\n{worker}")
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
    assert report["worker"]["pid"] == worker.pid
    assert response.status_code == 200, report
