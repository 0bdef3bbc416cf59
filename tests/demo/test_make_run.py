"""`make run` from scratch: migrate, ensure_admin, seed_demo, serve — and within the bound a
new user sees the demo's runs succeed, through the API, without configuring anything."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devstack import free_port

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "demo-admin-password-for-the-test"
BOUND = 75  # seconds from `serve` starting to the demo's runs having succeeded

pytestmark = [pytest.mark.worker, pytest.mark.timeout(150)]


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stderr}"
    return result.stdout


@pytest.fixture
def installation(tmp_path):
    """What `make run` does before serving, on a fresh var folder (SQLite, no Redis)."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env.update(CADENZA_VAR_DIR=str(tmp_path / "var"), CADENZA_ADMIN_PASSWORD=PASSWORD)
    _manage(env, "migrate", "--noinput", "-v0")
    _manage(env, "ensure_admin")
    seeded = _manage(env, "seed_demo")
    assert "Demo project DEMO: created" in seeded
    return env


@pytest.fixture
def served(installation, tmp_path):
    port, log = free_port(), tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=ROOT,
            env=installation,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield {"url": f"http://127.0.0.1:{port}", "process": process, "log": log}
    finally:
        process.kill()
        process.wait(timeout=10)


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-40:])


def _log_in(url: str) -> requests.Session:
    session = requests.Session()
    form = session.get(f"{url}/admin/login/", timeout=5).text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    session.post(
        f"{url}/admin/login/",
        data={"csrfmiddlewaretoken": token, "username": "admin", "password": PASSWORD},
        headers={"Referer": f"{url}/admin/login/"},
        timeout=5,
    )
    return session


def _succeeded(session: requests.Session, url: str) -> set[str]:
    response = session.get(f"{url}/api/v1/projects/DEMO/runs/?status=success", timeout=5)
    assert response.status_code == 200, response.text
    return {run["scenario_name"] for run in response.json()["results"]}


def test_make_run_shows_successful_demo_runs_within_the_bound(installation, served):
    url, process, log = served["url"], served["process"], served["log"]
    run_log = Path(installation["CADENZA_VAR_DIR"]) / "data" / "demo" / "run_log.csv"
    deadline, session, seen, logged = time.monotonic() + BOUND, None, set(), []
    while time.monotonic() < deadline:
        assert process.poll() is None, f"serve exited:\n{_tail(log)}"
        try:
            session = session or _log_in(url)
            seen = _succeeded(session, url)
        except requests.RequestException:
            pass  # not listening yet
        # The reporter's row lands just after the run ends (a delivery of the outbox).
        logged = run_log.read_text().splitlines()[1:] if run_log.exists() else []
        if {"Build and check", "Retrain model"} <= seen and logged:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"after {BOUND} s: succeeded {seen}, run_log {logged}:\n{_tail(log)}")
    assert ",Build and check," in logged[0] and ",success," in logged[0]
