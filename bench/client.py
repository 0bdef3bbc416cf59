"""What a user or a script does against a running Cadenza: the REST API with a token, a
browser session from the login page, and live-log viewers on the WebSocket."""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime

import requests
from websockets.asyncio.client import connect

FINAL = {"success", "warning", "failed", "aborted"}


def epoch(timestamp: str) -> float:
    """An ISO 8601 timestamp from the server (DRF or LogLine.ts) as seconds since the epoch."""
    return datetime.fromisoformat(timestamp).timestamp()


class Api:
    def __init__(self, base_url: str, token: str, project: str):
        self.base_url, self.project = base_url, project
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {token}"

    def _url(self, path: str) -> str:
        return f"{self.base_url}/api/v1/projects/{self.project}/{path}"

    def start_run(self, scenario_id: int) -> tuple[float, dict]:
        """POST …/run/; returns when the request was sent (epoch seconds) and the run."""
        sent = time.time()
        response = self.http.post(self._url(f"scenarios/{scenario_id}/run/"), json={}, timeout=10)
        if response.status_code != 201:
            raise RuntimeError(f"run refused: {response.status_code} {response.text[:300]}")
        return sent, response.json()

    def run(self, run_id: int) -> dict:
        response = self.http.get(self._url(f"runs/{run_id}/"), timeout=10)
        response.raise_for_status()
        return response.json()

    def wait_final(self, run_id: int, *, timeout: float, first_look: float = 0.0) -> dict:
        """Poll the run until it ended; the first look after ``first_look`` seconds."""
        deadline = time.monotonic() + timeout
        time.sleep(first_look)
        while True:
            run = self.run(run_id)
            if run["status"] in FINAL:
                return run
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} still {run['status']} after {timeout:g} s")
            time.sleep(0.05)


def login(base_url: str, username: str, password: str) -> str:
    """Log in through /accounts/login/ as a browser does; the session cookie's value."""
    browser = requests.Session()
    form = browser.get(f"{base_url}/accounts/login/", timeout=10).text
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    data = {"csrfmiddlewaretoken": csrf, "username": username, "password": password}
    browser.post(f"{base_url}/accounts/login/", data=data, timeout=10).raise_for_status()
    session = browser.cookies.get("sessionid")
    if not session:
        raise RuntimeError("login failed: no session cookie")
    return session


@dataclass
class Viewer:
    """One WebSocket client; records each message with the time it arrived."""

    url: str
    session: str | None = None
    messages: list[tuple[float, dict]] = field(default_factory=list)

    timed_out: bool = False

    async def watch(self, connected: asyncio.Event, done, *, idle: float = 10) -> None:
        """Receive until ``done(message)`` is true, or nothing came for ``idle`` seconds."""
        origin = "/".join(self.url.replace("ws://", "http://").split("/", 3)[:3])
        headers = {"Cookie": f"sessionid={self.session}"} if self.session else {}
        async with connect(
            self.url, origin=origin, additional_headers=headers, max_size=None
        ) as socket:
            connected.set()
            while True:
                try:
                    raw = await asyncio.wait_for(socket.recv(), timeout=idle)
                except TimeoutError:
                    self.timed_out = True  # what never came counts as lost
                    return
                message = (time.time(), json.loads(raw))
                self.messages.append(message)
                if done(message[1]):
                    return

    def lines(self) -> list[tuple[float, dict]]:
        return [(at, line) for at, message in self.messages if message["type"] == "lines"
                for line in message["lines"]]  # fmt: skip
