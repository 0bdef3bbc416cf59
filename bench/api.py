"""api: the run list API over 1,000,000 runs, 50 concurrent clients for 30 s.

A devstack PostgreSQL with 1M runs (bench/api_seed.py: one INSERT … SELECT generate_series),
`manage.py serve` (uvicorn, distributed settings) as the web server, and 50 client threads in
this process on 127.0.0.1, each with its own keep-alive connection and the token of a plain
*reader* member of the project. Each client loops without pause: the first page of
``/api/v1/projects/BENCH/runs/`` with one of four filter mixes (none, ``status=failed``,
``scenario=<id>``, both), then the next page through the response's ``next`` link (keyset or
page number alike). After a 5 s warm-up, 30 s are measured: latency p50/p95/p99 and
requests per second. Target: p95 ≤ 300 ms.

Floor: the bare ORM query of the same pages (same filter, ``-id`` ordering, LIMIT 50, no
permission filter, no serialization, no HTTP), executed one after the other in a Django
process on the same database. The EXPLAIN ANALYZE of every query the real view runs is kept
in the result's notes.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from bench.stack import BenchError, Stack, cpu_seconds, distributed_env, manage, python, serve
from bench.stats import Figure, distribution

ROWS = int(os.environ.get("BENCH_API_ROWS", 1_000_000))
CLIENTS = int(os.environ.get("BENCH_API_CLIENTS", 50))
WARM_UP = 5.0
MEASURE = float(os.environ.get("BENCH_API_SECONDS", 30))
TARGET_P95_MS = 300
REQUEST_TIMEOUT = 30


def run() -> list[Figure]:
    with Stack("api") as stack:
        postgres, redis = stack.databases()
        env = distributed_env(stack.workdir / "var", postgres, redis)
        manage(env, "migrate", "--noinput", "-v0")
        seeded = json.loads(python(env, "-m", "bench.api_seed", "seed", "--rows", str(ROWS)))
        print(f"   seeded {ROWS:,} runs in {seeded['seed_seconds']} s", flush=True)
        mixes = filter_mixes(seeded["scenarios"])
        args = ["--project", seeded["project"], "--mixes", json.dumps(mixes)]
        plans = json.loads(python(env, "-m", "bench.api_seed", "explain", *args,
                                  "--token", seeded["token"]))  # fmt: skip
        server, url = serve(stack, env)
        load = Load(url, seeded["project"], seeded["token"], mixes)
        postmaster = int((postgres.root / "pgdata" / "postmaster.pid").read_text().split()[0])
        load.go(CLIENTS, WARM_UP, MEASURE, probe=lambda: (
            {pid: cpu_seconds(pid) for pid in process_tree(server.pid)},  # each web process
            cpu_seconds(*process_tree(postmaster)),  # PostgreSQL's backends
        ))  # fmt: skip
        server.check_alive()
        floor = json.loads(python(env, "-m", "bench.api_seed", "floor", *args, "--repeat", "50"))
        return figures(load, floor["samples"], seeded, plans)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants: `serve --workers N` answers from N child processes."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited while we looked
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += parents.get(tree[-1], [])
    return tree


def filter_mixes(scenarios: list[int]) -> list[dict]:
    return [{}, {"status": "failed"}, {"scenario": scenarios[3]},
            {"status": "failed", "scenario": scenarios[3]}]  # fmt: skip


@dataclass
class Load:
    """A closed loop of ``clients`` threads, each waiting for its answer before asking again."""

    url: str
    project: str
    token: str
    mixes: list[dict]
    # (sent, ms, kind, client number)
    samples: list[tuple[float, float, str, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    window: tuple[float, float] = (0.0, 0.0)
    server_cpu: dict[int, float] = field(default_factory=dict)  # seconds in the window, by pid
    postgres_cpu: float = 0.0  # seconds PostgreSQL's processes used in the window
    client_cpu: float = 0.0  # seconds this process (the 50 clients) used in the window

    def go(self, clients: int, warm_up: float, measure: float, probe) -> None:
        start = time.monotonic()
        self.window = (start + warm_up, start + warm_up + measure)
        threads = [threading.Thread(target=self.client, args=(n,), daemon=True)
                   for n in range(clients)]  # fmt: skip
        for thread in threads:
            thread.start()
        time.sleep(max(0.0, self.window[0] - time.monotonic()))
        (server, postgres), client_cpu = probe(), time.process_time()
        time.sleep(max(0.0, self.window[1] - time.monotonic()))
        server_after, postgres_after = probe()
        self.server_cpu = {pid: cpu - server.get(pid, 0.0) for pid, cpu in server_after.items()}
        self.postgres_cpu = postgres_after - postgres
        self.client_cpu = time.process_time() - client_cpu
        for thread in threads:
            thread.join(timeout=warm_up + measure + 2 * REQUEST_TIMEOUT)
        if any(thread.is_alive() for thread in threads):
            raise BenchError("some API clients did not stop")
        if self.errors:
            raise BenchError(f"{len(self.errors)} failed requests, e.g. {self.errors[:3]}")

    def client(self, number: int) -> None:
        # http.client, not requests: the load generator shares the two cores with the server,
        # and requests cost ~1 ms of CPU more per call (bench/results/api.json: client_cpu).
        parts = urlsplit(self.url)
        http = HTTPConnection(parts.hostname, parts.port, timeout=REQUEST_TIMEOUT)
        first = f"/api/v1/projects/{self.project}/runs/"
        turn = number
        try:
            while time.monotonic() < self.window[1] and len(self.errors) < 10:
                filters = self.mixes[turn % len(self.mixes)]
                turn += 1
                body = self.get(http, f"{first}?{urlencode(filters)}", "first page", number)
                if body and body.get("next"):
                    following = urlsplit(body["next"])
                    self.get(http, f"{following.path}?{following.query}", "next page", number)
        finally:
            http.close()

    def get(self, http: HTTPConnection, path: str, kind: str, number: int) -> dict | None:
        sent = time.monotonic()
        try:
            http.request("GET", path, headers={"Authorization": f"Token {self.token}"})
            response = http.getresponse()
            text = response.read()
        except (OSError, HTTPException) as error:
            self.errors.append(repr(error))
            http.close()  # reconnects on the next request
            return None
        body = json.loads(text) if response.status == 200 else {}
        took = (time.monotonic() - sent) * 1000
        if len(body.get("results", ())) != 50:
            self.errors.append(f"{response.status} {path}: {text[:200]!r}")
            return None
        if self.window[0] <= sent and sent + took / 1000 <= self.window[1]:
            self.samples.append((sent, took, kind, number))
        return body


def figures(load: Load, floor: list[float], seeded: dict, plans: dict) -> list[Figure]:
    latencies = [took for _, took, _, _ in load.samples]
    seconds = load.window[1] - load.window[0]
    rate = len(latencies) / seconds
    floor_rate = 1000 / (sum(floor) / len(floor))
    name = "bare ORM query of the same page (filter, -id, LIMIT 50), in-process, sequential"
    notes = {
        "rows": seeded["rows"],
        "seed_seconds": seeded["seed_seconds"],
        "clients": CLIENTS,
        "seconds": seconds,
        "requests": len(latencies),
        # Robust to a busy machine, unlike the latencies: what one request costs the server.
        "server_cpu_ms_per_request": sum(load.server_cpu.values()) * 1000 / max(len(latencies), 1),
        # Keep-alive connections stay with the process that accepted them: an uneven split
        # shows here (the supervisor first, then the web processes).
        "server_cpu_share": [
            round(cpu / max(sum(load.server_cpu.values()), 1e-9), 3)
            for cpu in load.server_cpu.values()
        ],  # fmt: skip
        # The load generator and PostgreSQL share the machine's cores with the server.
        "postgres_cpu_ms_per_request": load.postgres_cpu * 1000 / max(len(latencies), 1),
        "client_cpu_ms_per_request": load.client_cpu * 1000 / max(len(latencies), 1),
        "by_kind": {
            kind: distribution([took for _, took, k, _ in load.samples if k == kind])
            for kind in ("first page", "next page")
        },
        # Each client's median, slowest first: a spread here is connections served unevenly.
        "client_p50_ms": sorted(
            (
                distribution([took for _, took, _, n in load.samples if n == client])["p50"]
                for client in {n for *_, n in load.samples}
            ),
            reverse=True,
        ),
        "mixes": load.mixes,
        "explain": plans,
    }
    return [
        Figure(
            bench="api",
            metric=f"run list, {CLIENTS} clients, 1M runs, latency",
            unit="ms",
            value=distribution(latencies),
            floor_name=name,
            floor=distribution(floor),
            n=len(latencies),
            target=("p95", TARGET_P95_MS),
            notes={**notes, "floor_samples": floor},
        ),
        Figure(
            bench="api",
            metric=f"run list, {CLIENTS} clients, 1M runs, throughput",
            unit="req/s",
            value={"value": rate},
            floor_name=f"{name}: 1 / mean",
            floor={"value": floor_rate},
            n=len(latencies),
        ),
    ]
