"""Playwright on the system's Chromium (Debian package); `playwright install` is never run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness import in_ci

# Playwright's sync API runs an event loop in the test thread; Django's ORM would refuse
# to be called from it, though nothing here is async.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (scripts/install-system-deps installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }
