"""`python -m bench.throughput_driver`: the Django side of the `throughput` benchmark.

Two phases against the same two Celery workers, each a closed loop that keeps ``--backlog``
items outstanding (sent but not finished) so that the workers never wait for work and the
broker never holds an unbounded queue:

1. floor: ``system.ping`` (a no-op task) sent with ``ignore_result``; finished = sent minus
   what is still in the Redis queue or reserved (``LLEN celery`` + ``HLEN unacked``).
2. runs: ``run_start`` (the service every trigger, API call and click goes through) on a
   pool of one-step ``set_variables`` scenarios with the default ``skip`` policy, taken in
   turn so that a run never finds its scenario busy; finished = runs in a final status.

A monitor samples the finished count every 0.25 s; the figure is the slope over the measured
window (after a warm-up). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import threading
import time

import django
from django.db.models import Count

from bench.stack import cpu_by_command, cpu_seconds

POLL = 0.25


class Phase:
    """Keep ``backlog`` items outstanding with ``producers`` threads calling ``send``."""

    def __init__(self, send, finished, *, backlog: int, producers: int, probe):
        self.send, self.finished, self.probe = send, finished, probe
        self.backlog, self.producers = backlog, producers
        self.sent, self.lock, self.stop = 0, threading.Lock(), threading.Event()
        self.samples: list[tuple[float, int, int]] = []  # (monotonic, sent, finished)
        self.done = 0
        self.full = 0  # times a producer found the backlog full: the workers were the limit

    def produce(self) -> None:
        from django.db import connection

        try:
            while not self.stop.is_set():
                with self.lock:
                    room = self.sent - self.done < self.backlog
                    if room:
                        self.sent += 1
                if not room:
                    self.full += 1
                    time.sleep(0.005)
                    continue
                self.send()
        finally:
            connection.close()

    def go(self, warm_up: float, measure: float) -> dict:
        threads = [threading.Thread(target=self.produce, daemon=True)
                   for _ in range(self.producers)]  # fmt: skip
        for thread in threads:
            thread.start()
        start = time.monotonic()
        end = start + warm_up + measure
        cpu = None
        while time.monotonic() < end:
            self.done = self.finished()
            self.samples.append((time.monotonic() - start, self.sent, self.done))
            if cpu is None and time.monotonic() - start >= warm_up:
                cpu, where = self.probe(), self.where()
            time.sleep(POLL)
        cpu, where = self.probe() - cpu, self.where(since=where)
        self.stop.set()
        for thread in threads:
            thread.join(timeout=30)
        return {**self.rates(warm_up), "worker_cpu_seconds": cpu, "cpu_seconds_by": where}

    def where(self, since: dict | None = None) -> dict[str, float]:
        """CPU by command over the window, this driver apart (it is a ``python`` too)."""
        now = {**cpu_by_command(), "driver": cpu_seconds(os.getpid())}
        if since is None:
            return now
        spent = {name: now[name] - since.get(name, 0.0) for name in now}
        return {name: round(value, 2) for name, value in spent.items() if value >= 0.05}

    def rates(self, warm_up: float) -> dict:
        window = [sample for sample in self.samples if sample[0] >= warm_up]
        (t0, sent0, done0), (t1, sent1, done1) = window[0], window[-1]
        return {
            "seconds": t1 - t0,
            "sent_per_s": (sent1 - sent0) / (t1 - t0),
            "finished_per_s": (done1 - done0) / (t1 - t0),
            "window": (t0, t1),
            "backlog_full_polls": self.full,
            "samples": self.samples,
        }


def floor_phase(options) -> dict:
    from apps.system.tasks import ping
    from config.celery import app

    with app.connection_for_write() as connection:
        client = connection.default_channel.client  # the broker's Redis

        def outstanding() -> int:
            # system.ping goes to the system queue (CELERY_TASK_ROUTES); count both.
            queued = client.llen("celery") + client.llen("cadenza.system")
            return queued + client.hlen("unacked")

        phase = Phase(
            lambda: ping.apply_async(ignore_result=True),
            lambda: phase.sent - outstanding(),
            backlog=options.backlog,
            producers=1,
            probe=options.probe,
        )
        return phase.go(options.warm_up, options.measure)


def runs_phase(options) -> dict:
    from apps.runs.models import FINAL_STATUSES, Run
    from apps.runs.services import run_start
    from apps.scenarios.models import Scenario

    scenarios = list(Scenario.objects.filter(name__startswith="Trivial "))
    turn, lock, skipped = itertools.cycle(scenarios), threading.Lock(), []

    def send() -> None:
        with lock:
            scenario = next(turn)
        if run_start(scenario=scenario, trigger_kind="manual").run is None:
            skipped.append(scenario.pk)  # still busy: a lost start, counted

    before = Run.objects.count()
    phase = Phase(
        send,
        lambda: Run.objects.filter(status__in=FINAL_STATUSES).count(),
        backlog=options.backlog,
        producers=options.producers,
        probe=options.probe,
    )
    started = time.time()
    result = phase.go(options.warm_up, options.measure)
    result["skipped"] = len(skipped)
    result["runs"] = Run.objects.count() - before
    lo, hi = (started + edge for edge in result["window"])
    result["latency_ms"] = run_latencies(lo, hi)
    result["outcomes"] = dict(Run.objects.values_list("status").annotate(n=Count("id")))
    return result


def run_latencies(lo: float, hi: float) -> list[float]:
    """queued_at (inside run_start) → finished_at, for the runs started in the window."""
    from datetime import UTC, datetime

    from apps.runs.models import Run

    window = (datetime.fromtimestamp(lo, UTC), datetime.fromtimestamp(hi, UTC))
    rows = Run.objects.filter(queued_at__range=window, finished_at__isnull=False)
    return [
        (finished - queued).total_seconds() * 1000
        for queued, finished in rows.values_list("queued_at", "finished_at")
    ]


def seed(count: int) -> None:
    from django.contrib.auth import get_user_model

    from apps.projects.services import project_create
    from apps.scenarios.models import Scenario, Step

    user = get_user_model().objects.create_superuser("bench")
    project = project_create(user=user, key="BENCH", name="Benchmarks")
    scenarios = Scenario.objects.bulk_create(
        Scenario(project=project, name=f"Trivial {n}", run_as=user) for n in range(count)
    )
    Step.objects.bulk_create(
        Step(scenario=scenario, name="set", type="set_variables",
             params={"variables": {"x": 1}})
        for scenario in scenarios
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenarios", type=int, default=200)
    parser.add_argument("--backlog", type=int, default=32)
    parser.add_argument("--producers", type=int, default=3)
    parser.add_argument("--warm-up", type=float, default=5)
    parser.add_argument("--measure", type=float, default=25)
    parser.add_argument("--worker-pids", default="", help="comma-separated, for their CPU time")
    options = parser.parse_args()
    pids = [int(pid) for pid in options.worker_pids.split(",") if pid]
    options.probe = lambda: cpu_seconds(*pids)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    seed(options.scenarios)
    result = {"floor": floor_phase(options), "runs": runs_phase(options)}
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
