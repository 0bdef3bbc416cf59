"""The one-process mode as `make run` runs it: SQLite, memory broker, web + worker + beat."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devstack import free_port

ROOT = Path(__file__).resolve().parents[2]
BOUND = 40  # seconds for any one wait below

pytestmark = [pytest.mark.worker, pytest.mark.timeout(90)]


def _embedded_env(var_dir: Path) -> dict[str, str]:
    """No DATABASE_URL/REDIS_URL/SECRET_KEY: what a new user has on a fresh machine."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env.update(CADENZA_VAR_DIR=str(var_dir), CADENZA_HEARTBEAT_SECONDS="1", LOG_LEVEL="INFO")
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BOUND,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stderr}"
    return result.stdout


def _poll(check, what: str, log: Path):
    """Call check() until it returns (True, value), for at most BOUND seconds."""
    deadline, last = time.monotonic() + BOUND, None
    while time.monotonic() < deadline:
        try:
            done, last = check()
        except requests.RequestException as error:
            done, last = False, error
        if done:
            return last
        time.sleep(0.2)
    pytest.fail(f"{what} within {BOUND} s (last: {last!r})\n--- serve log ---\n{_tail(log)}")


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-40:])


@pytest.fixture(scope="module")
def installation(tmp_path_factory):
    """A fresh installation, set up with the commands `make run` runs before serving."""
    var_dir = tmp_path_factory.mktemp("embedded") / "var"
    env = _embedded_env(var_dir)
    _manage(env, "migrate", "--noinput", "-v0")
    _manage(env, "collectstatic", "--noinput", "-v0")
    return {"env": env, "var_dir": var_dir, "ensure_admin": _manage(env, "ensure_admin")}


@pytest.fixture
def embedded(installation, tmp_path):
    """`manage.py serve` on a free port, killed at the end whatever happened."""
    port, log = free_port(), tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=ROOT,
            env=installation["env"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield {"process": process, "url": f"http://127.0.0.1:{port}", "log": log}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_ensure_admin_prints_the_login_once(installation):
    assert "Created the admin account: admin" in installation["ensure_admin"]
    assert re.search(r"password \(shown once.*\): \S{12,}", installation["ensure_admin"])
    assert (installation["var_dir"] / "secret_key").stat().st_mode & 0o077 == 0
    again = _manage(installation["env"], "ensure_admin")
    assert "An admin account exists already" in again


def test_serve_runs_web_worker_and_beat_in_one_process(embedded):
    url, process, log = embedded["url"], embedded["process"], embedded["log"]

    def healthy():
        assert process.poll() is None, f"serve exited with {process.returncode}:\n{_tail(log)}"
        response = requests.get(f"{url}/health/", timeout=5)
        return response.status_code == 200, response.text

    report = json.loads(_poll(healthy, "/health/ did not answer 200", log))
    assert report["mode"] == "embedded"
    assert report["database"] == {"ok": True, "vendor": "sqlite"}
    assert report["worker"]["ok"] is True
    # The ping task, sent from a web request, ran in the serving process itself.
    assert report["worker"]["pid"] == process.pid
    assert report["beat"]["ok"] is True

    login = requests.get(f"{url}/admin/login/", timeout=5)
    assert login.status_code == 200
    assert 'name="csrfmiddlewaretoken"' in login.text
    schema = requests.get(f"{url}/api/schema/", timeout=5)
    assert schema.status_code == 200
    assert "openapi" in schema.text
    css = requests.get(f"{url}/static/admin/css/base.css", timeout=5)
    assert css.status_code == 200
    assert "text/css" in css.headers["Content-Type"]

    process.send_signal(signal.SIGTERM)
    try:
        returncode = process.wait(timeout=BOUND)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve still running {BOUND} s after SIGTERM:\n{_tail(log)}")
    assert returncode == 0, _tail(log)


def test_the_printed_admin_password_logs_in(installation, embedded):
    url, log = embedded["url"], embedded["log"]
    printed = installation["ensure_admin"]
    password = re.search(r"change it after login\): (\S+)", printed).group(1)
    session = requests.Session()
    form = _poll(
        lambda: (True, session.get(f"{url}/admin/login/", timeout=5).text), "no login", log
    )
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    response = session.post(
        f"{url}/admin/login/?next=/admin/",
        data={"csrfmiddlewaretoken": token, "username": "admin", "password": password},
        headers={"Referer": f"{url}/admin/login/"},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.url == f"{url}/admin/"
    assert "Site administration" in response.text


SEED_TRIGGER = """
from django.contrib.auth import get_user_model
from django.utils import timezone
from apps.projects.services import project_create
from apps.scenarios.models import Scenario, Step
from apps.triggers.models import Trigger
from apps.triggers.services import trigger_save
admin = get_user_model().objects.get(username="admin")
project = project_create(user=admin, key="TICK", name="Tick")
scenario = Scenario.objects.create(project=project, name="Every hour", run_as=admin)
Step.objects.create(scenario=scenario, name="mark", type="set_variables",
                    params={"variables": {"ticked": True}, "evaluate": False})
trigger = trigger_save(Trigger(scenario=scenario, name="hourly", kind="time",
                               params={"schedule": "hourly", "minute": 0}), user=admin)
Trigger.objects.filter(pk=trigger.pk).update(next_fire_at=timezone.now())
"""
RUN_STATUS = """
from apps.runs.models import Run
print(",".join(Run.objects.filter(scenario__name="Every hour").values_list("status", flat=True)))
"""
TOKEN = """
from django.contrib.auth import get_user_model
from apps.accounts.services import token_create
print(token_create(user=get_user_model().objects.get(username="admin"), name="check")[1])
"""


def test_a_due_time_trigger_runs_in_the_one_process(installation, embedded):
    """The embedded trigger tick (a thread of `serve`) fires a due slot; the worker runs it."""
    _poll(
        lambda: (requests.get(f"{embedded['url']}/health/", timeout=5).ok, None),
        "serve answering /health/",
        embedded["log"],
    )
    _manage(installation["env"], "shell", "-c", SEED_TRIGGER)

    def ran():
        output = _manage(installation["env"], "shell", "-c", RUN_STATUS).strip()
        statuses = output.splitlines()[-1] if output else ""  # after shell's own notice
        return statuses == "success", statuses

    assert _poll(ran, "a run of the due trigger ending in success", embedded["log"]) == "success"

    # The run list reads its page in SQL of its own (apps/runs/history.py): on SQLite too.
    token = _manage(installation["env"], "shell", "-c", TOKEN).strip().splitlines()[-1]
    response = requests.get(
        f"{embedded['url']}/api/v1/projects/TICK/runs/",
        params={"status": "success"},
        headers={"Authorization": f"Token {token}"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    (run,) = response.json()["results"]
    assert (run["scenario_name"], run["status"]) == ("Every hour", "success")
    assert run["run_as"] == "admin"
    assert run["trigger_kind"] == "time" and isinstance(run["trigger_params"], dict)
    assert run["queued_at"].endswith("Z") and run["duration_seconds"] >= 0
