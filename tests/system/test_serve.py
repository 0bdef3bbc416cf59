"""`manage.py serve` in distributed mode: one web process per core behind one port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.browser.asgi import AsgiServer
from tests.processes import ROOT, wait_until

pytestmark = [pytest.mark.timeout(90), pytest.mark.django_db(transaction=True)]


def _children(pid: int) -> list[int]:
    children = []
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat") as file:
                    fields = file.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(stat))
    return children


def _sockets(pid: int, port: int, state: str) -> set[str]:
    """The inodes of the TCP sockets ``pid`` holds on local ``port`` in ``state`` (01
    established, 0A listening)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    with open(f"/proc/{pid}/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[3] == state:
                found.add(fields[9])
    return found & inodes


def test_connections_are_spread_over_the_web_processes(tmp_path, monkeypatch):
    """A burst of keep-alive connections (a proxy's pool, a load test) reaches every web
    process: each has a listening socket of its own on the port (SO_REUSEPORT). With one
    shared socket the first process to wake accepted them all and served them on one core."""
    monkeypatch.setenv("CADENZA_WEB_WORKERS", "2")
    server = AsgiServer(tmp_path / "web.log").start()
    try:
        workers = wait_until(
            lambda: len(_web_processes(server.process.pid)) == 2,
            timeout=30,
            what="two web processes",
        ) and _web_processes(server.process.pid)
        clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(24)]
        for client in clients:
            client.sendall(b"GET /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        for client in clients:
            assert client.recv(12).startswith(b"HTTP/1.1 200"), "every connection is served"
        listening = {pid: _sockets(pid, server.port, "0A") for pid in workers}
        assert all(len(inodes) == 1 for inodes in listening.values()), listening
        assert len(set.union(*listening.values())) == 2, "one listening socket each, not one shared"
        held = {pid: len(_sockets(pid, server.port, "01")) for pid in workers}
        assert sum(held.values()) == len(clients), held
        assert min(held.values()) >= 3, f"connections by process: {held}"
        for client in clients:
            client.close()
    finally:
        server.stop()


def _web_processes(supervisor: int) -> list[int]:
    found = []
    for pid in _children(supervisor):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                if b"spawn_main" in file.read():  # not multiprocessing's resource tracker
                    found.append(pid)
        except OSError:
            continue
    return found


def test_serve_says_so_when_the_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "CADENZA_WEB_WORKERS": "2"}
        done = subprocess.run(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert f"Cannot listen on 127.0.0.1:{port}" in done.stderr, done.stderr[-2000:]
