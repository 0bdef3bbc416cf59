"""beat: time triggers end to end with real processes, beside stock django-celery-beat.

Distributed stack: a devstack PostgreSQL and Redis, one `celery -A config worker -c 2`
(prefork, as the Procfile runs it: two worker processes) and real `celery -A config beat`
processes. 20,000 one-step scenarios (`set_variables`), one time trigger each; a team license
(signed with a key generated here; every process gets the public key) for the dataset-change
trigger. The Django side is bench/beat_driver.py. The timeline waits for real minute slots:

- T0, T0+1 (one beat): **spread** — 10,000 hourly triggers over the 60 minutes (≈167 per
  minute): slot → Run.queued_at. Meanwhile, away from the slots' seconds: **file change** →
  the run's first StepRun started_at, 20 samples (dataset-change trigger, 1 s interval).
- T0+0:30: a second beat starts, so T0+1, B and B+1 run under **two beats**: runs per
  (trigger, slot) are counted. B = T0+2: **burst** — 10,000 more triggers due at B, and at
  B+2 s one trigger is moved to B+1 and another (due at B+1) disabled through `trigger_save`.
  The section ends when every burst run exists and B+1 is 20 s old, or at B + BURST_BOUND.
- Then Cadenza's processes stop and **stock beat** (`-S django_celery_beat...DatabaseScheduler`,
  bench/beat_stock.py) gets the same workload as PeriodicTask rows (same crontabs; a task name
  nobody runs): spread at S0 with one beat, a second one from S0+30 s for S0+1 and S0+2; then
  the 10,000-row burst, bounded by STOCK_BOUND. A thread here pops the Redis queue: slot →
  message published (BRPOP returns at once).
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import threading
import time
from datetime import datetime
from pathlib import Path

import psycopg
import redis

from bench.beat_driver import BURST, SPREAD, STOCK_TASK, next_boundary, sleep_until
from bench.stack import (
    HOST,
    PYTHON,
    BenchError,
    Process,
    Stack,
    cpu_seconds,
    distributed_env,
    manage,
    python,
    wait_for_log,
)
from bench.stats import Figure, distribution

BURST_BOUND = float(os.environ.get("BENCH_BEAT_BURST_BOUND", 120))  # s after the burst slot
STOCK_BOUND = float(os.environ.get("BENCH_BEAT_STOCK_BOUND", 120))
STOCK_TAIL = 25  # s after the last stock spread slot
EDIT_TAIL = 20  # s after the edited slot before the section may end
FILE_SAMPLES = 20
STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"
TICK = re.compile(STAMP + r".*Task triggers\.tick\[([^]]+)\] received")
EXPIRED = re.compile(r"Discarding revoked task: triggers\.tick\[([^]]+)\]")


def run() -> list[Figure]:
    private, public = _license_keys()
    with Stack("beat") as stack:
        postgres, broker = stack.databases()
        env = distributed_env(stack.workdir / "var", postgres, broker)
        env.update(DJANGO_SETTINGS_MODULE="config.settings", CADENZA_LICENSE_PUBLIC_KEY=public)
        env.update(
            {key: value for key, value in os.environ.items() if key.startswith("BENCH_BEAT")}
        )
        manage(env, "migrate", "--noinput", "-v0")
        root = stack.workdir / "data"
        seeded = driver({**env, "BENCH_LICENSE_PRIVATE_KEY": private}, "seed", "--root", root)
        cadenza = cadenza_section(stack, env, postgres.url, broker.url, seeded, root)
        stock = stock_section(stack, env, broker.url)
    return figures(cadenza, stock)


def _license_keys() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key, raw = Ed25519PrivateKey.generate(), serialization.Encoding.Raw
    private = key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    public = key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    return base64.b64encode(private).decode(), base64.b64encode(public).decode()


# -- processes -----------------------------------------------------------------------------------


def driver(env: dict, command: str, *args) -> dict:
    out = python(env, "-m", "bench.beat_driver", command, *map(str, args), timeout=300)
    return json.loads(out.strip().splitlines()[-1])


def spawn_driver(stack: Stack, env: dict, command: str, *args) -> Process:
    argv = [PYTHON, "-m", "bench.beat_driver", command, *map(str, args)]
    return stack.spawn(f"driver-{command}", argv, env)


def driver_result(process: Process, timeout: float = 120) -> dict:
    process.popen.wait(timeout=timeout)
    lines = [line for line in process.log.read_text().splitlines() if line.startswith("{")]
    if process.popen.returncode or not lines:
        raise BenchError(f"{process.name} failed:\n{process.tail()}")
    return json.loads(lines[-1])


def beat(stack: Stack, env: dict, name: str, app: str) -> Process:
    argv = [PYTHON, "-m", "celery", "-A", app, "beat", "-l", "INFO"]
    argv += ["-S", "django_celery_beat.schedulers:DatabaseScheduler"]
    process = stack.spawn(name, [*argv, "-s", str(stack.workdir / name)], env)
    wait_for_log(process, "beat: Starting")
    return process


def worker(stack: Stack, env: dict) -> Process:
    """The Procfile's worker (prefork), with two processes."""
    argv = [PYTHON, "-m", "celery", "-A", "config", "worker", "-l", "INFO", "-c", "2"]
    argv += ["--without-mingle", "--without-gossip", "-n", f"bench-beat-{os.getpid()}@{HOST}"]
    process = stack.spawn("worker", argv, env)
    wait_for_log(process, " ready.")
    return process


def system_worker(stack: Stack, env: dict) -> Process:
    """The Procfile's system worker: only the tick and the sweeps, never behind runs."""
    argv = [PYTHON, "-m", "celery", "-A", "config", "worker", "-l", "INFO", "-c", "2"]
    argv += ["-Q", "cadenza.system", "--pool", "threads", "--without-mingle", "--without-gossip"]
    process = stack.spawn("system-worker", [*argv, "-n", f"bench-system-{os.getpid()}@{HOST}"], env)
    wait_for_log(process, " ready.")
    return process


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


class QueueWatch(threading.Thread):
    """Samples the Celery queue's length every second: what the ticks wait behind."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.client, self.samples, self.done = redis.Redis.from_url(url), [], threading.Event()

    def run(self) -> None:
        while not self.done.wait(1.0):
            self.samples.append((round(time.time(), 1), self.client.llen("celery")))


class StockConsumer(threading.Thread):
    """Pops what stock beat publishes on the Celery queue: (received, kwargs) per message."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.client, self.received, self.done = redis.Redis.from_url(url), [], threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            popped = self.client.brpop(["celery"], timeout=1)
            if popped is None:
                continue
            now, message = time.time(), json.loads(popped[1])
            if message["headers"].get("task") == STOCK_TASK:
                body = json.loads(base64.b64decode(message["body"]))
                self.received.append((now, body[1]))

    def take(self) -> list[tuple[float, dict]]:
        taken, self.received = self.received, []
        return taken


# -- Cadenza -------------------------------------------------------------------------------------


def cadenza_section(
    stack: Stack, env: dict, database: str, broker: str, seeded: dict, root: Path
) -> dict:
    loads = {"start": load()}
    work, beats = worker(stack, env), [beat(stack, env, "beat-1", "config")]
    system = system_worker(stack, env)
    watch = QueueWatch(broker)
    watch.start()
    armed = driver(env, "arm")
    t0, slot = armed["t0"], armed["burst_slot"]
    files = spawn_driver(
        stack, env, "filechange", "--trigger", seeded["watched"], "--root", root,
        "--samples", FILE_SAMPLES, "--until", slot - 10,
    )  # fmt: skip
    sleep_until(t0 + 30)  # two beats for T0+1, B and B+1
    loads["spread"] = load()
    beats.append(beat(stack, env, "beat-2", "config"))
    sleep_until(slot - 15)
    editor = spawn_driver(
        stack, env, "edit", "--at", slot + 2, "--trigger", armed["edit"],
        "--minute", armed["next_minute"], "--disable", armed["disable"],
    )  # fmt: skip
    ended = wait_burst(database, slot)
    loads["burst"] = load()
    beat_cpu = [cpu_seconds(process.pid) for process in beats]
    for process in [*beats, work, system]:
        process.check_alive()
        stack.stop(process)
    watch.done.set()
    collected = driver(env, "collect", "--edit", armed["edit"], "--disable", armed["disable"])
    return {
        **armed,
        "ended": ended,
        "loads": loads,
        "beat_cpu_s": beat_cpu,
        "files": driver_result(files),
        "edit": driver_result(editor),
        "ticks": sorted(tick_times(work.log) + tick_times(system.log)),
        "expired_ticks": sum(
            log.read_text(errors="replace").count("Discarding revoked task: triggers.tick")
            for log in (work.log, system.log)
        ),
        "queue": watch.samples,
        **collected,
    }


def wait_burst(database: str, slot: float) -> float:
    """Until every burst run exists and the edited slot is EDIT_TAIL old, or the bound."""
    query = (
        "SELECT count(*) FROM runs_run r JOIN scenarios_scenario s ON s.id = r.scenario_id "
        "WHERE r.trigger_kind = 'time' AND s.name LIKE 'burst-%%'"
    )
    with psycopg.connect(database, autocommit=True) as connection:
        while time.time() < slot + BURST_BOUND:
            if time.time() > slot + 60 + EDIT_TAIL:
                if connection.execute(query).fetchone()[0] >= BURST:
                    break
            time.sleep(2)
    return time.time()


def tick_times(log: Path) -> list[float]:
    """When the worker received each `triggers.tick` that it ran (log in local time): a
    tick that waited in the queue past its expiry (5 s) is discarded, never run."""
    text = log.read_text(errors="replace")
    expired = set(EXPIRED.findall(text))
    return [
        datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for stamp, task in TICK.findall(text)
        if task not in expired
    ]


# -- stock django-celery-beat ---------------------------------------------------------------


def stock_section(stack: Stack, env: dict, broker: str) -> dict:
    redis.Redis.from_url(broker).delete("celery")  # Cadenza's leftovers: nobody runs them now
    consumer = StockConsumer(broker)
    consumer.start()
    loads = {"spread": load()}
    driver(env, "stock-arm", "--set", "spread")
    first = beat(stack, env, "stock-beat-1", "bench.beat_stock")
    s0 = next_boundary(time.time(), 20)
    sleep_until(s0 + 30)
    second = beat(stack, env, "stock-beat-2", "bench.beat_stock")
    sleep_until(s0 + 120 + STOCK_TAIL)
    cpu = {"spread_one_beat_s": cpu_seconds(first.pid), "spread_window_s": time.time() - s0}
    for process in (second, first):
        process.check_alive()
        stack.stop(process)
    spread = consumer.take()
    burst_slot = next_boundary(time.time(), 30)
    loads["burst"] = load()
    driver(env, "stock-arm", "--set", "burst", "--minute", time.gmtime(burst_slot).tm_min)
    alone = beat(stack, env, "stock-beat-burst", "bench.beat_stock")
    started = time.time()
    while time.time() < burst_slot + STOCK_BOUND and len(consumer.received) < BURST:
        alone.check_alive()
        time.sleep(1)
    cpu["burst_s"], cpu["burst_window_s"] = cpu_seconds(alone.pid), time.time() - started
    rss = Path(f"/proc/{alone.pid}/status").read_text().split("VmRSS:")[1].split()[0]
    stack.stop(alone)
    consumer.done.set()
    consumer.join(timeout=5)  # before Redis stops under its BRPOP
    return {
        "s0": s0,
        "burst_slot": burst_slot,
        "spread": spread,
        "burst": consumer.take(),
        "loads": loads,
        "cpu": cpu,
        "burst_rss_mb": int(rss) / 1024,
    }


def stock_slot(received: float, kwargs: dict, burst_slot: float) -> float:
    """The slot a stock message was for: the burst's, or the last boundary at minute m."""
    if "b" in kwargs:
        return burst_slot
    boundary = received - received % 60
    return boundary - ((time.gmtime(boundary).tm_min - kwargs["m"]) % 60) * 60


def first_lags(messages, burst_slot: float) -> tuple[dict, dict]:
    """Per slot: the first publication's lag of each (task, slot); and how often each pair came."""
    first, count = {}, {}
    for received, kwargs in messages:
        key = (kwargs["t"], stock_slot(received, kwargs, burst_slot))
        first[key] = min(first.get(key, math.inf), received - key[1])
        count[key] = count.get(key, 0) + 1
    by_slot: dict[float, list[float]] = {}
    for (_, slot), lag in first.items():
        by_slot.setdefault(slot, []).append(lag)
    return by_slot, count


# -- figures ---------------------------------------------------------------------------------


def censored(samples: list[float], expected: int) -> dict[str, float]:
    """p50/p95/p99/max over every expected item (nearest rank); one that never came within
    the window counts as infinite, so a percentile that falls on it reads "–"."""
    full = sorted(samples) + [math.inf] * max(0, expected - len(samples))
    if not full:
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan, "max": math.nan}
    rank = {p: full[min(len(full) - 1, math.ceil(p / 100 * len(full)) - 1)] for p in (50, 95, 99)}
    return {**{f"p{p}": value for p, value in rank.items()}, "max": full[-1]}


def figures(cadenza: dict, stock: dict) -> list[Figure]:
    ours, theirs = cadenza_measures(cadenza), stock_measures(stock)
    tick = (TICK_FLOOR, ours["tick_floor"])
    return [
        *spread_figures(ours, theirs, tick),
        *burst_figures(ours, theirs, tick, cadenza),
        *edit_figures(ours, cadenza),
        *duplicate_figures(ours, theirs),
        file_figure(cadenza["files"]),
    ]


TICK_FLOOR = "slot → the next triggers.tick a worker received (worker log), per slot"


def cadenza_measures(cadenza: dict) -> dict:
    t0, slot, edited = cadenza["t0"], cadenza["burst_slot"], cadenza["edited_scenario"]
    ticks = sorted(cadenza["ticks"])
    slots = (t0, t0 + 60, slot, slot + 60)
    floors = {s: next((t - s for t in ticks if t >= s), math.inf) for s in slots}
    per_minute = {int(minute): n for minute, n in cadenza["expected_per_minute"].items()}

    def lags(kind: str, at: float) -> list[float]:
        return [q - s for k, pk, s, q in cadenza["runs"] if k == kind and s == at and pk != edited]

    spread = lags("spread", t0) + lags("spread", t0 + 60)
    expected = sum(per_minute.get(time.gmtime(s).tm_min, 0) for s in (t0, t0 + 60))
    burst = lags("burst", slot)
    return {
        "tick_floor": distribution([floors[t0], floors[t0 + 60]]),
        "spread_p95_per_slot": {str(s): censored(lags("spread", s), 1)["p95"] for s in slots},
        "tick_floor_per_slot": {str(s): lag for s, lag in floors.items()},
        "spread": spread,
        "spread_stats": censored(spread, expected),
        "spread_expected": expected,
        "burst": burst,
        "burst_stats": censored(burst, BURST),
        "edited": [q - s for _, pk, s, q in cadenza["runs"] if pk == edited and s == slot + 60],
        "others": lags("spread", slot + 60),
        "others_expected": per_minute.get(time.gmtime(slot + 60).tm_min, 0),
        "window": cadenza["ended"] - slot,
        "duplicates": cadenza["duplicates"],
        "second": len(lags("spread", t0 + 60)),
    }


def stock_measures(stock: dict) -> dict:
    s0, slot = stock["s0"], stock["burst_slot"]
    spread, counts = first_lags(stock["spread"], slot)
    burst = first_lags(stock["burst"], slot)[0].get(slot, [])
    expected = sum(1 for i in range(SPREAD) if i % 60 == time.gmtime(s0).tm_min)
    two_beats = [n for (_, s), n in counts.items() if s in (s0 + 60, s0 + 120)]
    return {
        "spread": spread.get(s0, []),
        "spread_stats": censored(spread.get(s0, []), expected),
        "spread_expected": expected,
        "per_slot": {str(s): len(lags) for s, lags in spread.items()},
        "burst": burst,
        "burst_stats": censored(burst, BURST),
        "pairs": len(two_beats),
        "duplicates": sum(1 for n in two_beats if n > 1),
        "cpu": stock["cpu"],
        "rss_mb": stock["burst_rss_mb"],
        "loads": stock["loads"],
    }


def spread_figures(ours: dict, theirs: dict, tick: tuple) -> list[Figure]:
    label = f"{SPREAD:,} hourly triggers (≈{round(SPREAD / 60)}/min)"
    return [
        Figure(
            "beat", f"spread: slot → run created, {label}, 2 slots", "s", ours["spread_stats"],
            *tick, len(ours["spread"]), ("p95", 1.0),
            {"never_fired": ours["spread_expected"] - len(ours["spread"]),
             "tick_floor_per_slot": ours["tick_floor_per_slot"],
             "p95_per_slot": ours["spread_p95_per_slot"],
             "stock": theirs["spread_stats"], "samples": ours["spread"]},
        ),
        Figure(
            "beat", f"stock beat, spread: slot → task published, {label}, 1 slot", "s",
            theirs["spread_stats"], *tick, len(theirs["spread"]), None,
            {"never_fired": theirs["spread_expected"] - len(theirs["spread"]),
             "first_publications_per_slot": theirs["per_slot"], "beat_cpu": theirs["cpu"],
             "samples": theirs["spread"]},
        ),
    ]  # fmt: skip


def burst_figures(ours: dict, theirs: dict, tick: tuple, cadenza: dict) -> list[Figure]:
    burst, stats = ours["burst"], ours["burst_stats"]
    expired = cadenza["expired_ticks"]
    return [
        Figure(
            "beat", f"burst: slot → last run created, {BURST:,} triggers due at one slot", "s",
            {"value": stats["max"]}, f"one bulk_create of {BURST:,} TriggerFire rows",
            {"value": cadenza["fire_floor_s"]}, len(burst), ("value", 10.0),
            {"created": len(burst), "window_s": ours["window"],
             "created_within_10_s": sum(lag <= 10 for lag in burst),
             "distribution": stats, "stock": theirs["burst_stats"],
             "ticks_expired_in_queue": expired, "queue_length": cadenza["queue"],
             "missed_recorded": cadenza["missed"], "beat_cpu_s": cadenza["beat_cpu_s"]},
        ),
        Figure(
            "beat", "burst: slot → run created (each of the 10,000)", "s", stats, *tick,
            len(burst), None, {"samples": sorted(burst)},
        ),
        Figure(
            "beat", f"stock beat, burst: slot → task published ({BURST:,} due)", "s",
            theirs["burst_stats"], *tick, len(theirs["burst"]), None,
            {"bound_s": STOCK_BOUND, "never_within_bound": BURST - len(theirs["burst"]),
             "rss_mb": theirs["rss_mb"], "beat_cpu": theirs["cpu"]},
        ),
    ]  # fmt: skip


def edit_figures(ours: dict, cadenza: dict) -> list[Figure]:
    floor = {"value": ours["tick_floor_per_slot"][str(cadenza["burst_slot"] + 60)]}
    return [
        Figure(
            "beat", "edit at burst + 2 s: its new slot (B+1) → the edited trigger's run", "s",
            {"value": min(ours["edited"], default=math.inf)}, TICK_FLOOR + " (that slot)",
            floor, len(ours["edited"]), ("value", 5.0),
            {**cadenza["edit"], "runs_of_the_disabled_trigger": cadenza["disabled_runs"]},
        ),
        Figure(
            "beat", "edit at burst + 2 s: the other triggers of slot B+1", "s",
            censored(ours["others"], ours["others_expected"] - 1),
            "the spread's own lags (slots without burst or edit)", ours["spread_stats"],
            len(ours["others"]),
        ),
    ]  # fmt: skip


def duplicate_figures(ours: dict, theirs: dict) -> list[Figure]:
    pairs = len(ours["burst"]) + len(ours["edited"]) + len(ours["others"]) + ours["second"]
    return [
        Figure(
            "beat", "two beats, slots T0+1, B, B+1: (trigger, slot) pairs with > 1 run", "pairs",
            {"value": ours["duplicates"]}, "none", {"value": 0}, pairs, ("value", 0),
        ),
        Figure(
            "beat", "stock beat, two beats, 2 slots: (task, slot) published > 1 time", "pairs",
            {"value": theirs["duplicates"]}, "none", {"value": 0}, theirs["pairs"],
        ),
    ]  # fmt: skip


def file_figure(files: dict) -> Figure:
    return Figure(
        "beat", "file written → first step running (dataset change, 1 s, no grace)", "s",
        distribution(files["samples"]), "check interval / 2 (a uniform phase), computed",
        {"p50": 0.5, "p95": 0.95, "p99": 0.99, "max": 1.0}, len(files["samples"]),
        ("p95", 1.5), {"samples": files["samples"], "to_run_created": files["queued"]},
    )  # fmt: skip
