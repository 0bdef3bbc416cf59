"""`manage.py check --deploy` is clean with the production settings the environment asks for."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)


def _production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """What a distributed deployment behind HTTPS sets, and nothing of this test session."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env.update(
        CADENZA_VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=os.environ["DATABASE_URL"],
        REDIS_URL=os.environ["REDIS_URL"],
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="cadenza.example.com",
        DEBUG="false",
        CADENZA_HTTPS="1",
        CADENZA_HSTS_PRELOAD="1",
    )
    env.update(extra)
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_check_deploy_passes_with_production_settings(tmp_path):
    result = _manage(_production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_without_preload_the_only_warning_is_preload(tmp_path):
    """Preload is the domain owner's decision (browsers hard-code it); Django keeps saying so."""
    env = _production_env(tmp_path, CADENZA_HSTS_PRELOAD="0")
    result = _manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 1
    assert "security.W021" in result.stderr
    assert result.stderr.count("(security.") == 1, result.stderr


SHOW = """
import json
from django.conf import settings as s
print(json.dumps({name: getattr(s, name, None) for name in (
    "DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_PROXY_SSL_HEADER")}))
"""


def _settings(env: dict[str, str]) -> dict:
    result = _manage(env, "shell", "-c", SHOW)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_https_settings_follow_the_environment(tmp_path):
    production = _settings(
        _production_env(tmp_path, CADENZA_HSTS_SECONDS="600", CADENZA_PROXY_SSL_HEADER="1")
    )
    assert production == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
    }
    # Without CADENZA_HTTPS (make run on a laptop, plain HTTP): none of it, no proxy trust.
    plain = _settings(_production_env(tmp_path, CADENZA_HTTPS="0"))
    assert plain["SESSION_COOKIE_SECURE"] is False and plain["SECURE_SSL_REDIRECT"] is False
    assert plain["SECURE_HSTS_SECONDS"] == 0 and plain["SECURE_PROXY_SSL_HEADER"] is None


def test_health_and_metrics_are_not_redirected_to_https(client, settings, db):
    """Load balancers and Prometheus often probe over plain HTTP inside the network."""
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/api/schema/").status_code == 301
    assert client.get("/metrics").status_code == 200
    assert client.get("/healthz?timeout=0.1").status_code in (200, 503)
