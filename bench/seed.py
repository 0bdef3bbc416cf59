"""`python -m bench.seed`: an admin, a project, the benchmark scenarios and an API token, in
the database the environment names. Prints them as JSON for the benchmark that runs it."""

from __future__ import annotations

import argparse
import json
import os
import secrets

import django

# A step that prints LINES lines at RATE lines a second, after a pause for viewers to connect.
CHATTY = """
import time
time.sleep({pause})
start = time.monotonic()
for i in range({lines}):
    delay = start + i / {rate} - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    print(f"line {{i}}", flush=True)
"""


def seed(*, lines: int, rate: int, pause: float) -> dict:
    from django.contrib.auth import get_user_model

    from apps.accounts.services import token_create
    from apps.projects.services import project_create
    from apps.scenarios.models import Scenario, Step

    password = secrets.token_urlsafe(16)
    user = get_user_model().objects.create_superuser("bench", password=password)
    project = project_create(user=user, key="BENCH", name="Benchmarks")
    trivial = Scenario.objects.create(project=project, name="Trivial", run_as=user)
    Step.objects.create(
        scenario=trivial, name="set", type="set_variables", params={"variables": {"x": 1}}
    )
    chatty = Scenario.objects.create(project=project, name="Chatty", run_as=user)
    code = CHATTY.format(lines=lines, rate=rate, pause=pause)
    Step.objects.create(scenario=chatty, name="print", type="python", params={"code": code})
    _, token = token_create(user=user, name="bench")
    return {
        "username": user.username,
        "password": password,
        "token": token,
        "project": project.key,
        "scenarios": {"trivial": trivial.pk, "chatty": chatty.pk},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=10_000, help="lines the chatty step prints")
    parser.add_argument("--rate", type=int, default=1000, help="lines per second")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds before the first")
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    print(json.dumps(seed(lines=options.lines, rate=options.rate, pause=options.pause)))


if __name__ == "__main__":
    main()
