"""CADENZA_LOG_FORMAT: JSON lines with the run context, and no secret in any format."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.runs.models import Run, StepRun
from apps.runs.services import run_start
from apps.system.log_format import (
    JsonFormatter,
    TextFormatter,
    bind_run,
    log_context,
    task_context_bind,
    task_context_unbind,
)
from tests.processes import wait_until

ROOT = Path(__file__).resolve().parents[2]
TOKEN_LIKE = "Zq7cV1xw9PdbKk3LmN0t"


def _record(message: str, *args, **extra) -> logging.LogRecord:
    record = logging.getLogger("cadenza.test").makeRecord(
        "cadenza.test", logging.WARNING, __file__, 1, message, args, None, extra=extra
    )
    return record


def test_json_lines_carry_level_logger_message_context_and_extras():
    with log_context(run_id=42, scenario="Nightly"):
        line = JsonFormatter().format(_record("built %d rows", 10, dataset="orders"))
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "cadenza.test"
    assert entry["message"] == "built 10 rows"
    assert entry["run_id"] == 42 and entry["scenario"] == "Nightly"
    assert entry["dataset"] == "orders"
    assert entry["ts"].endswith("+00:00")
    assert "run_id" not in json.loads(JsonFormatter().format(_record("outside")))


def test_tracebacks_are_one_json_field():
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exc_info"]


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter("%(message)s")])
def test_secrets_are_redacted_in_both_formats(formatter, settings):
    settings.CADENZA_METRICS_TOKEN = "metrics-token-value-123"
    message = (
        f"redis://:hunter2pass@cache:6379/0 postgres://cadenza:pgpass99@db/cadenza "
        f"Authorization: Bearer {TOKEN_LIKE} ?api_key=abc123&x=1 password=letmein "
        f"key={settings.SECRET_KEY} token metrics-token-value-123"
    )
    line = formatter.format(_record("%s", message))
    for secret in ("hunter2pass", "pgpass99", TOKEN_LIKE, "abc123", "letmein"):
        assert secret not in line
    assert settings.SECRET_KEY not in line and "metrics-token-value-123" not in line
    assert "redis://:***@cache:6379/0" in line and "x=1" in line


@pytest.mark.django_db
def test_a_celery_run_task_logs_with_its_run_and_scenario(make_scenario, no_dispatch):
    scenario = make_scenario(name="Nightly")
    run = run_start(scenario=scenario, user=scenario.run_as).run

    class Task:
        name = "runs.execute"

    task_context_bind(task_id="t-1", task=Task(), args=[run.pk], kwargs={})
    try:
        assert json.loads(JsonFormatter().format(_record("claiming")))["run_id"] == run.pk
        bind_run(Run.objects.get(pk=run.pk))
        entry = json.loads(JsonFormatter().format(_record("inside")))
    finally:
        task_context_unbind()
    assert entry["task"] == "runs.execute" and entry["task_id"] == "t-1"
    assert entry["run_id"] == run.pk
    assert entry["scenario"] == "Nightly" and entry["scenario_id"] == scenario.pk
    assert entry["project"] == "SALES"
    assert "run_id" not in json.loads(JsonFormatter().format(_record("after")))


def _manage(env_extra: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env.update(CADENZA_VAR_DIR=str(tmp_path / "var"), **env_extra)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


LOG_A_URL = (
    "import logging; logging.getLogger('cadenza.ops').warning('hi %s', 'redis://:pw1234@r/0')"
)


@pytest.mark.timeout(90)
def test_the_log_format_setting_switches_every_line(tmp_path):
    result = _manage({"CADENZA_LOG_FORMAT": "json"}, tmp_path, "shell", "-c", LOG_A_URL)
    assert result.returncode == 0, result.stderr
    entry = json.loads(result.stderr.strip().splitlines()[-1])
    assert entry["logger"] == "cadenza.ops" and entry["message"] == "hi redis://:***@r/0"

    text = _manage({}, tmp_path, "shell", "-c", LOG_A_URL)
    assert text.stderr.strip().endswith("WARNING cadenza.ops: hi redis://:***@r/0")

    wrong = _manage({"CADENZA_LOG_FORMAT": "xml"}, tmp_path, "check")
    assert wrong.returncode != 0
    assert "CADENZA_LOG_FORMAT='xml' is not one of text, json." in wrong.stderr


@pytest.mark.worker
@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_a_json_worker_logs_json_with_the_run(celery_worker_process, make_scenario, tmp_path):
    """`celery worker` with CADENZA_LOG_FORMAT=json: Celery keeps Django's LOGGING, and the
    line Celery logs when the run's task ends names the run and its scenario."""
    worker = celery_worker_process(CADENZA_LOG_FORMAT="json")
    scenario = make_scenario(
        name="Json logs",
        steps=[{"name": "mark", "type": "set_variables", "params": {"variables": {"a": 1}}}],
    )
    run = run_start(scenario=scenario, user=scenario.run_as).run

    def task_line():
        for line in worker.log.read_text().splitlines():
            if line.startswith("{") and "succeeded in" in line and "runs.execute[" in line:
                return json.loads(line)
        return None

    try:
        entry = wait_until(task_line, timeout=20, what="the runs.execute success line")
    except AssertionError:
        state = Run.objects.filter(pk=run.pk).values("status", "outcome_message").first()
        steps = list(StepRun.objects.values("status", "error"))
        raise AssertionError(f"{state} {steps}\n{worker}") from None
    assert entry["run_id"] == run.pk and entry["scenario"] == "Json logs"
    assert entry["logger"] == "celery.app.trace"
    logged = [line for line in worker.log.read_text().splitlines() if line.startswith("{")]
    assert all(json.loads(line)["level"] for line in logged)  # every logged line is JSON
    assert any(json.loads(line)["logger"] == "celery.worker.consumer.connection" for line in logged)
