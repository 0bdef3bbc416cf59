"""The typed environment readers in config/env.py, and settings failing fast on bad input."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import (
    database_from_url,
    env_bool,
    env_int,
    env_int_range,
    env_list,
    env_secret,
    redis_url,
)

ROOT = Path(__file__).resolve().parents[2]


# --- env_bool, env_int, env_list --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("Yes", True), (" on ", True), ("0", False), ("off", False)]
)
def test_env_bool_reads_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("CADENZA_FLAG", raw)
    assert env_bool("CADENZA_FLAG") is expected


def test_env_bool_default_when_unset(monkeypatch):
    monkeypatch.delenv("CADENZA_FLAG", raising=False)
    assert env_bool("CADENZA_FLAG", True) is True


def test_env_bool_rejects_maybe(monkeypatch):
    monkeypatch.setenv("CADENZA_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match=r"CADENZA_FLAG='maybe' is not a boolean"):
        env_bool("CADENZA_FLAG")


def test_env_int_reads_a_number_within_bounds(monkeypatch):
    monkeypatch.setenv("CADENZA_COUNT", " 12 ")
    assert env_int("CADENZA_COUNT", 5, minimum=1, maximum=12) == 12


def test_env_int_rejects_trailing_garbage(monkeypatch):
    monkeypatch.setenv("CADENZA_COUNT", "12x")
    with pytest.raises(ImproperlyConfigured, match=r"CADENZA_COUNT='12x' is not an integer"):
        env_int("CADENZA_COUNT", 5)


@pytest.mark.parametrize(
    ("raw", "message"),
    [("0", "CADENZA_COUNT=0 is below the minimum 1"), ("61", "CADENZA_COUNT=61 is above")],
)
def test_env_int_rejects_values_out_of_bounds(monkeypatch, raw, message):
    monkeypatch.setenv("CADENZA_COUNT", raw)
    with pytest.raises(ImproperlyConfigured, match=message):
        env_int("CADENZA_COUNT", 5, minimum=1, maximum=60)


def test_env_int_range_reads_first_and_last_both_included(monkeypatch):
    monkeypatch.setenv("CADENZA_IDS", " 2000-2009 ")
    assert env_int_range("CADENZA_IDS", range(1), minimum=1000, maximum=5000) == range(2000, 2010)
    monkeypatch.delenv("CADENZA_IDS")
    assert env_int_range("CADENZA_IDS", range(7, 9), minimum=1, maximum=9) == range(7, 9)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("2000", "CADENZA_IDS='2000' is not a range: use FIRST-LAST"),
        ("a-b", "is not a range"),
        ("3000-2000", "the range must go up, from 1000 to 5000 at most"),
        ("0-2000", "the range must go up"),
        ("2000-9000", "the range must go up"),
    ],
)
def test_env_int_range_rejects_odd_ranges(monkeypatch, raw, message):
    monkeypatch.setenv("CADENZA_IDS", raw)
    with pytest.raises(ImproperlyConfigured, match=message):
        env_int_range("CADENZA_IDS", range(1), minimum=1000, maximum=5000)


def test_env_list_splits_and_strips(monkeypatch):
    monkeypatch.setenv("CADENZA_HOSTS", "a.example, b.example")
    assert env_list("CADENZA_HOSTS", []) == ["a.example", "b.example"]


def test_env_list_rejects_an_empty_item(monkeypatch):
    monkeypatch.setenv("CADENZA_HOSTS", "a,,b")
    with pytest.raises(ImproperlyConfigured, match=r"CADENZA_HOSTS='a,,b' has an empty item"):
        env_list("CADENZA_HOSTS", [])


# --- env_secret -------------------------------------------------------------------------------


def test_env_secret_reads_the_file(monkeypatch, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    monkeypatch.delenv("CADENZA_TOKEN", raising=False)
    monkeypatch.setenv("CADENZA_TOKEN_FILE", str(secret))
    assert env_secret("CADENZA_TOKEN") == "s3cret"


def test_env_secret_refuses_both_value_and_file(monkeypatch, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("s3cret")
    monkeypatch.setenv("CADENZA_TOKEN", "direct")
    monkeypatch.setenv("CADENZA_TOKEN_FILE", str(secret))
    with pytest.raises(ImproperlyConfigured, match="Set CADENZA_TOKEN or CADENZA_TOKEN_FILE"):
        env_secret("CADENZA_TOKEN")


def test_env_secret_refuses_a_missing_file(monkeypatch, tmp_path):
    monkeypatch.delenv("CADENZA_TOKEN", raising=False)
    monkeypatch.setenv("CADENZA_TOKEN_FILE", str(tmp_path / "absent"))
    with pytest.raises(ImproperlyConfigured, match="CADENZA_TOKEN_FILE=.* is not a readable"):
        env_secret("CADENZA_TOKEN")


def test_env_secret_refuses_an_empty_file(monkeypatch, tmp_path):
    secret = tmp_path / "token"
    secret.write_text(" \n")
    monkeypatch.delenv("CADENZA_TOKEN", raising=False)
    monkeypatch.setenv("CADENZA_TOKEN_FILE", str(secret))
    with pytest.raises(ImproperlyConfigured, match="CADENZA_TOKEN_FILE=.* is empty"):
        env_secret("CADENZA_TOKEN")


# --- database_from_url, redis_url -------------------------------------------------------------


def test_database_from_url_parses_postgres():
    database = database_from_url("postgresql://app:p%40ss%3Aword@db.internal:6543/cadenza_prod")
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["USER"], database["PASSWORD"]) == ("app", "p@ss:word")
    assert (database["HOST"], database["PORT"], database["NAME"]) == (
        "db.internal",
        "6543",
        "cadenza_prod",
    )


def test_database_from_url_keeps_query_options():
    database = database_from_url("postgres://app@db/cadenza?sslmode=require")
    assert database["OPTIONS"] == {"sslmode": "require"}
    assert database["PORT"] == ""


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://app@db/cadenza", "DATABASE_URL scheme 'mysql' is not supported"),
        ("postgres://app@db:54x2/cadenza", "DATABASE_URL has an invalid port"),
        ("postgres://app@db:99999/cadenza", "DATABASE_URL has an invalid port"),
        ("postgres://app@db:5432/", "DATABASE_URL has no database name"),
    ],
)
def test_database_from_url_refuses_bad_urls(url, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        database_from_url(url)


def test_database_from_url_hides_the_password_in_errors():
    with pytest.raises(ImproperlyConfigured) as caught:
        database_from_url("postgres://app:hunter2@db:5432/")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///var/cadenza.sqlite3", "var/cadenza.sqlite3"),
        ("sqlite:////srv/c.db", "/srv/c.db"),
    ],
)
def test_database_from_url_reads_sqlite_paths(url, path):
    database = database_from_url(url)
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["NAME"] == path
    assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_redis_url_accepts_redis(monkeypatch):
    monkeypatch.setenv("CADENZA_REDIS", "redis://127.0.0.1:6379/1")
    assert redis_url("CADENZA_REDIS") == "redis://127.0.0.1:6379/1"


def test_redis_url_refuses_http(monkeypatch):
    monkeypatch.setenv("CADENZA_REDIS", "http://127.0.0.1:6379/0")
    with pytest.raises(ImproperlyConfigured, match="CADENZA_REDIS=.* is not a redis:// URL"):
        redis_url("CADENZA_REDIS")


# --- settings, imported for real in a fresh interpreter -------------------------------------

SETUP = "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup()"


def _setup_django(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    clean.update(CADENZA_VAR_DIR=str(tmp_path / "var"), **env)
    return subprocess.run(
        [sys.executable, "-c", SETUP],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


DISTRIBUTED = {
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "DATABASE_URL": "postgres://cadenza@127.0.0.1:5432/cadenza",
}


def test_settings_load_with_a_sane_environment(tmp_path):
    # The control for the two tests below: they fail for the reason they name, not another.
    result = _setup_django(tmp_path, DEBUG="false", SECRET_KEY="k" * 40, **DISTRIBUTED)
    assert result.returncode == 0, result.stderr


def test_settings_refuse_the_retired_sandbox_user_setting(tmp_path):
    result = _setup_django(tmp_path, CADENZA_SANDBOX_USER="nobody")
    assert result.returncode != 0
    assert "CADENZA_SANDBOX_USER is no longer read" in result.stderr
    assert "CADENZA_SANDBOX_UIDS" in result.stderr


def test_settings_refuse_debug_maybe(tmp_path):
    result = _setup_django(tmp_path, DEBUG="maybe")
    assert result.returncode != 0
    assert "ImproperlyConfigured: DEBUG='maybe' is not a boolean" in result.stderr


def test_distributed_mode_needs_a_secret_key(tmp_path):
    result = _setup_django(tmp_path, **DISTRIBUTED)
    assert result.returncode != 0
    assert (
        "ImproperlyConfigured: Distributed mode needs SECRET_KEY or SECRET_KEY_FILE."
        in result.stderr
    )


def test_settings_make_the_database_and_project_files_private(tmp_path):
    """Kept only for the account that runs Cadenza: user code runs as other accounts. Also
    what an older version left readable to all (the umask's 0644 and 0755)."""
    var = tmp_path / "var"
    (var / "data").mkdir(parents=True, mode=0o755)
    for name in ("cadenza.sqlite3", "cadenza.sqlite3-wal"):
        (var / name).touch(mode=0o644)
    result = _setup_django(tmp_path)
    assert result.returncode == 0, result.stderr
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in var.iterdir()}
    assert modes == {
        "cadenza.sqlite3": 0o600, "cadenza.sqlite3-wal": 0o600, "secret_key": 0o600,
        "data": 0o700, "models": 0o700, "exports": 0o700, "static": 0o755,
    }  # fmt: skip
