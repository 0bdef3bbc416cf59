"""The demo project seeded for the `admin` superuser that ensure_admin creates, with its data
under a var folder of the test's own."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from apps.demo.services import demo_seed
from tests.triggers.conftest import edition  # noqa: F401


@pytest.fixture
def admin(db):
    return get_user_model().objects.create_superuser("admin", password="x" * 16)


@pytest.fixture
def var_dir(settings, tmp_path):
    """The default filesystem root (VAR_DIR/data) and model artifacts, per test."""
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    return settings.VAR_DIR


@pytest.fixture
def delivered(monkeypatch):
    """Deliveries stay pending (no worker here) until the test sends them."""
    queued: list[int] = []
    monkeypatch.setattr(
        "apps.reporters.services.delivery_enqueue", lambda pk, **_: queued.append(pk)
    )
    return queued


@pytest.fixture
def seed(admin, var_dir, no_dispatch, delivered):
    return lambda: demo_seed(owner=admin)
