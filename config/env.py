"""Typed readers for environment settings.

Each helper returns a value of one type or raises ImproperlyConfigured naming the variable
and what was wrong, so a typo in a deployment fails at start-up instead of at 3 a.m.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str | None = None) -> str | None:
    value = _raw(name)
    return default if value in (None, "") else value


def env_bool(name: str, default: bool = False) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true/false, 1/0, yes/no).")


def env_int(
    name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    value = _raw(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum {minimum}.")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} is above the maximum {maximum}.")
    return number


def env_int_range(name: str, default: range, *, minimum: int, maximum: int) -> range:
    """A range written FIRST-LAST, both included, within [minimum, maximum]."""
    value = _raw(name)
    if value in (None, ""):
        return default
    first, _, last = value.partition("-")
    if not (first.strip().isdigit() and last.strip().isdigit()):
        raise ImproperlyConfigured(f"{name}={value!r} is not a range: use FIRST-LAST.")
    numbers = range(int(first), int(last) + 1)
    if not numbers or numbers[0] < minimum or numbers[-1] > maximum:
        raise ImproperlyConfigured(
            f"{name}={value!r}: the range must go up, from {minimum} to {maximum} at most."
        )
    return numbers


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",")]
    if any(not item for item in items):
        raise ImproperlyConfigured(f"{name}={value!r} has an empty item (a stray comma?).")
    return items


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = _raw(name)
    if value in (None, ""):
        return default
    if value.lower() not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of {', '.join(choices)}.")
    return value.lower()


_RATE_PERIODS = {"second", "minute", "hour", "day", "s", "sec", "m", "min", "h", "d"}


def env_rate(name: str, default: str | None) -> str | None:
    """A DRF throttle rate such as "100/minute"; "off" (or "none") disables the limit."""
    value = _raw(name)
    if value in (None, ""):
        return default
    if value.lower() in ("off", "none"):
        return None
    count, _, period = value.partition("/")
    if not count.isdigit() or int(count) < 1 or period.lower() not in _RATE_PERIODS:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a rate: use e.g. 100/minute (second, minute, hour, day) "
            "or off."
        )
    return f"{int(count)}/{period.lower()}"


def env_secret(name: str, default: str | None = None) -> str | None:
    """Read NAME, or the file named by NAME_FILE (Docker/systemd secrets); never both."""
    direct, file_name = _raw(name), _raw(f"{name}_FILE")
    if direct and file_name:
        raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both.")
    if file_name:
        path = Path(file_name)
        if not path.is_file():
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} is not a readable file.")
        content = path.read_text().strip()
        if not content:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} is empty.")
        return content
    return direct or default


def database_from_url(url: str, *, name: str = "DATABASE_URL") -> dict:
    """Turn postgres://user:pass@host:port/db or sqlite:///path into a DATABASES entry."""
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    if parts.scheme in ("postgres", "postgresql"):
        database = unquote(parts.path.lstrip("/"))
        if not database:
            raise ImproperlyConfigured(f"{name} has no database name: {_redact(url)}")
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"{name} has an invalid port: {_redact(url)}") from None
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": database,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    if parts.scheme == "sqlite":
        # As dj-database-url: sqlite:///relative/path, sqlite:////absolute/path.
        path = unquote(parts.path)[1:]
        if not path:
            raise ImproperlyConfigured(f"{name} has no SQLite file path: {url}")
        return sqlite_database(Path(path))
    raise ImproperlyConfigured(
        f"{name} scheme {parts.scheme!r} is not supported (use postgres:// or sqlite:///)."
    )


def sqlite_database(path: Path) -> dict:
    # WAL + IMMEDIATE transactions: without them concurrent writers fail with
    # "database is locked" (measured in shared/notes/embedded-mode.md).
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }


def redis_url(name: str = "REDIS_URL") -> str | None:
    value = env_str(name)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
        raise ImproperlyConfigured(f"{name}={_redact(value)!r} is not a redis:// URL.")
    return value


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
