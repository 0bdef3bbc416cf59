"""throughput: trivial runs per second, sustained, with two Celery worker processes.

Distributed stack: a devstack PostgreSQL and Redis, and two `celery -A config worker --pool
threads -c 4` processes (the distributed mode's worker, twice). bench/throughput_driver.py,
in a Django process of its own, keeps 32 items outstanding for 5 s of warm-up and 25 s
measured, first bare ``system.ping`` no-op tasks (the floor: the same broker and the same
two workers), then runs: ``run_start`` on 200 one-step ``set_variables`` scenarios taken in
turn (default ``skip`` policy, each run on a scenario whose previous run has ended).

Figures: runs created and finished per second over the window, and run_start → finished
(``Run.queued_at`` → ``finished_at``) p50/p95/p99 — with 32 outstanding, that includes the
wait in the queue (≈ 32 / rate), as it would for a burst. Targets: ≥ 50 runs/s finished and
≥ 0.5× the bare Celery rate.
"""

from __future__ import annotations

import json
import os

from bench.stack import HOST, PYTHON, Stack, distributed_env, manage, python, wait_for_log
from bench.stats import Figure, distribution

WORKERS = 2
THREADS = 4  # per worker, as the distributed mode's `celery worker --pool threads -c 4`
BACKLOG = 32
MEASURE = float(os.environ.get("BENCH_THROUGHPUT_SECONDS", 25))
TARGET_RUNS_PER_S = 50
TARGET_RATIO = 0.5


def run() -> list[Figure]:
    with Stack("throughput") as stack:
        postgres, redis = stack.databases()
        env = distributed_env(stack.workdir / "var", postgres, redis)
        manage(env, "migrate", "--noinput", "-v0")
        workers = [worker(stack, env, n) for n in range(WORKERS)]
        for process in workers:
            wait_for_log(process, " ready.")
        pids = ",".join(str(process.pid) for process in workers)
        argv = ["-m", "bench.throughput_driver", "--backlog", str(BACKLOG),
                "--measure", str(MEASURE), "--worker-pids", pids]  # fmt: skip
        result = json.loads(python(env, *argv, timeout=MEASURE * 2 + 120))
        for process in workers:
            process.check_alive()
        return figures(result)


def worker(stack: Stack, env: dict[str, str], number: int):
    argv = [PYTHON, "-m", "celery", "-A", "config", "worker", "--pool", "threads"]
    argv += ["-c", str(THREADS), "--without-mingle", "--without-gossip", "-l", "INFO"]
    argv += ["-n", f"bench-{number}-{os.getpid()}@{HOST}"]
    return stack.spawn(f"worker-{number}", argv, env)


def figures(result: dict) -> list[Figure]:
    floor, runs = result["floor"], result["runs"]
    name = f"bare Celery no-op task (system.ping, no result), same broker, {WORKERS} workers"
    rate = {"value": runs["finished_per_s"]}
    per_item = {
        phase: data["worker_cpu_seconds"] * 1000 / (data["finished_per_s"] * data["seconds"])
        for phase, data in (("floor", floor), ("runs", runs))
        if data["finished_per_s"]
    }
    notes = {
        # Robust to a busy machine, unlike the rates: what one run (one no-op) costs the workers.
        "worker_cpu_ms_per_item": per_item,
        "workers": f"{WORKERS} × celery worker --pool threads -c {THREADS}",
        "backlog": BACKLOG,
        # Where the window's CPU went, per item (run or no-op), in ms: driver = run_start or
        # apply_async; python = the workers and the driver; postgres, redis-server.
        "cpu_ms_per_item_by": {
            phase: {
                name: round(seconds * 1000 / (data["finished_per_s"] * data["seconds"]), 2)
                for name, seconds in data["cpu_seconds_by"].items()
            }
            for phase, data in (("floor", floor), ("runs", runs))
            if data["finished_per_s"]
        },
        "floor": {key: value for key, value in floor.items() if key != "samples"},
        "runs": {key: value for key, value in runs.items() if key not in ("samples", "latency_ms")},
        "samples": {"floor": floor["samples"], "runs": runs["samples"]},
    }
    return [
        Figure(
            bench="throughput",
            metric=f"trivial runs finished, {WORKERS} workers, sustained",
            unit="runs/s",
            value=rate,
            floor_name=name,
            floor={"value": floor["finished_per_s"]},
            n=runs["runs"],
            # Both targets at once: ≥ 50 runs/s and ≥ 0.5× the bare Celery rate.
            target=("value", max(TARGET_RUNS_PER_S, TARGET_RATIO * floor["finished_per_s"])),
            at_least=True,
            notes=notes,
        ),
        Figure(
            bench="throughput",
            metric=f"trivial runs created (run_start), {WORKERS} workers, sustained",
            unit="runs/s",
            value={"value": runs["sent_per_s"]},
            floor_name=name,
            floor={"value": floor["finished_per_s"]},
            n=runs["runs"],
        ),
        Figure(
            bench="throughput",
            metric=f"run_start → finished, {BACKLOG} outstanding",
            unit="ms",
            value=distribution(runs["latency_ms"]),
            floor_name="none (queueing included: ≈ backlog / rate)",
            floor={},
            n=len(runs["latency_ms"]),
            notes={"samples": runs["latency_ms"]},
        ),
    ]
