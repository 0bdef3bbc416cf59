"""Log formats (CADENZA_LOG_FORMAT=text|json), the run context of log records, and secret
redaction.

Both formatters redact: credentials in URLs (redis://:pw@…), bearer and token headers,
password-like query parameters, and the values of the secrets in settings. Redaction is the
last line of defence, not a licence to log secrets.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

_context: ContextVar[dict[str, Any] | None] = ContextVar("cadenza_log_context", default=None)

_PATTERNS = (
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.I), r"\1***@"),
    (re.compile(r"\b(bearer|token)(\s+)[A-Za-z0-9._~+/=-]{12,}", re.I), r"\1\2***"),
    (
        re.compile(r"\b(password|passwd|secret|api_?key|token|access_token)=[^&\s'\"]+", re.I),
        r"\1=***",
    ),
)
# Settings whose values must never appear in a log line.
_SECRET_SETTINGS = (
    "SECRET_KEY",
    "CADENZA_SECRETS_KEY",
    "CADENZA_METRICS_TOKEN",
    "CADENZA_ADMIN_PASSWORD",
)
# Attributes every LogRecord has; anything else on a record came from `extra=`.
# (uvicorn adds color_message: the message again, with terminal colour codes.)
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields (run_id, scenario, …) to every record logged inside the block."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def context_fields() -> dict[str, Any]:
    return dict(_context.get() or {})


def _secret_values() -> list[str]:
    from django.conf import settings

    if not settings.configured:
        return []
    values = [getattr(settings, name, None) for name in _SECRET_SETTINGS]
    values += [db.get("PASSWORD") for db in getattr(settings, "DATABASES", {}).values()]
    # Short values would redact ordinary words; real secrets are long.
    return sorted({v for v in values if isinstance(v, str) and len(v) >= 8}, key=len, reverse=True)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for secret in _secret_values():
        text = text.replace(secret, "***")
    return text


class TextFormatter(logging.Formatter):
    """The plain format, redacted, with the run context appended when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = context_fields()
        if context:
            line += " " + " ".join(f"{key}={value}" for key, value in context.items())
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, the run context, `extra=`
    fields and the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        entry.update(context_fields())
        entry.update(_extras(record))
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        return json.dumps(_redacted(entry), default=str, ensure_ascii=False)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_")
    }


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def task_context_bind(sender=None, task_id=None, task=None, args=None, kwargs=None, **_):
    """Celery task_prerun: the task, and for a run, its id (the runner adds ``bind_run``)."""
    fields: dict[str, Any] = {"task": getattr(task, "name", None), "task_id": task_id}
    if fields["task"] == "runs.execute":
        fields["run_id"] = (kwargs or {}).get("run_id", (args or [None])[0])
    _context.set(fields)


def task_context_unbind(**_) -> None:
    _context.set(None)


def bind_run(run) -> None:
    """The runner, once it holds its run: the scenario and project join the fields of the
    task executing it, up to Celery's own "succeeded" line (read with the run, so that
    logging costs no query of its own). Outside that task (an eager call) nothing changes."""
    fields = _context.get()
    if fields is not None and fields.get("run_id") == run.pk:
        fields.update(
            scenario_id=run.scenario_id, scenario=run.scenario.name, project=run.project.key
        )


def celery_use_django_logging(**_) -> None:
    """Celery setup_logging receiver: keep Django's LOGGING (JSON) instead of Celery's."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


def uvicorn_log_config() -> dict | None:
    """uvicorn's own text config, or none in JSON mode: its loggers then propagate to the
    root handler of settings.LOGGING, so every line of the process is JSON."""
    from django.conf import settings
    from uvicorn.config import LOGGING_CONFIG

    return None if settings.CADENZA_LOG_FORMAT == "json" else LOGGING_CONFIG


def logging_config(*, log_format: str, level: str) -> dict:
    """The LOGGING setting. uvicorn's loggers propagate to the root (serve passes no
    log_config of its own in JSON mode), so every line of a process has one format."""
    formatter = "json" if log_format == "json" else "text"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "text": {
                "()": "apps.system.log_format.TextFormatter",
                "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
            },
            "json": {"()": "apps.system.log_format.JsonFormatter"},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": formatter}},
        "root": {"handlers": ["console"], "level": level},
    }
