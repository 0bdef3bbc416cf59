"""triggers: 10,000 triggers on PostgreSQL (distributed settings), the services called directly.

1. Polled evaluation cycle: 10,000 enabled dataset-change triggers (one scenario each) on 100
   file datasets (folders of a filesystem connection, each watched by 100 triggers), all due.
   One cycle = `_evaluate_due_checks` (500 claimed per batch, by two claimer threads as a
   tick does on PostgreSQL) until nothing is due. Wall time,
   evaluations per second (triggers evaluated / wall time), DB queries per cycle and per
   trigger (CaptureQueriesContext), and CPU per cycle: each Django process's own
   (time.process_time() around its share of the cycle) and the PostgreSQL server's (utime +
   stime + cutime + cstime of the postmaster and its children, from /proc, over the cycle; with
   two processes that includes their two backends' start). Floors: the same 100 folder
   fingerprints computed 10,000 times in a bare loop (no DB), its wall and CPU time, and
   PostgreSQL's CPU meanwhile (the server with no query); for queries, those of the batch
   claims alone (the part that grows with batches, not triggers). Target: a cycle ≤ 1 s.
2. Midnight burst: hourly time triggers all due at the same slot, 1 s in the past;
   `triggers_tick()` called until none is due. Run.queued_at - slot (p50/p95/max). Floor: one
   bulk_create of as many TriggerFire rows. Target: every run created within 10 s of the slot.
   BENCH_BURST (default 10,000) are measured; with fewer, the target is scaled
   and the time extrapolated to 10,000 in the notes. Then 10,000 with the default
   catch-up policy (skip): how many runs are created, how many slots recorded as missed.

No worker: `apps.runs.services.run_dispatch` is a no-op, so the runs stay queued (the run's
on-commit `publish_run_state` still goes to Redis, as in production).
"""

from __future__ import annotations

import json
import os

from bench.stack import Stack, distributed_env, manage, python
from bench.stats import Figure, distribution

TRIGGERS = int(os.environ.get("BENCH_TRIGGERS", 10_000))
FOLDERS = 100
FILES_PER_FOLDER = 5
BURST = int(os.environ.get("BENCH_BURST", 10_000))
# Then 10,000 with the default catch-up policy (skip): how many fire, how many are "missed".
FULL_SKIP = int(os.environ.get("BENCH_FULL_SKIP", 10_000))

# Runs in a Django process on the devstack PostgreSQL; prints one JSON line.
SCRIPT = r"""
import base64, json, os, re, time
from collections import Counter
from datetime import timedelta
from pathlib import Path
import django
django.setup()
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule

import apps.runs.services as run_services
from apps.accounts import license as licensing
from apps.flow.models import Connection, Dataset
from apps.projects.services import project_create
from apps.runs.models import Run
from apps.scenarios.models import Scenario
from apps.triggers import services
from apps.triggers.kinds.base import fingerprint
from apps.triggers.kinds.dataset_change import dataset_fingerprint
from apps.triggers.kinds.time import crontab_fields
from apps.triggers.models import Trigger, TriggerEvaluation, TriggerFire

N, FOLDERS, FILES, BURST, FULL = {n}, {folders}, {files}, {burst}, {full}
root = Path(os.environ["BENCH_ROOT"])
out = {{}}

# No worker: runs stay queued. A team license (dataset_change is gated), really installed.
run_services.run_dispatch = lambda run_id, **_: None
from collections import deque
connection.queries_limit = 10**7  # CaptureQueriesContext counts from a deque of 9,000 by default
connection.queries_log = deque(maxlen=connection.queries_limit)
key = Ed25519PrivateKey.generate()
raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
settings.CADENZA_LICENSE_PUBLIC_KEY = base64.b64encode(raw).decode()
from datetime import date
licensing.license_install(licensing.issue(key, edition="team", licensee="bench",
    expires_at=date(2099, 1, 1), features=[], seats=None))

# Time spent in run_start and in its on-commit publish, per call (the originals still run).
timers = Counter()
def timed(name, function):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            timers[name] += time.perf_counter() - start
            timers[name + "_calls"] += 1
    return wrapper
services.runs_start_many = timed("runs_start_many", services.runs_start_many)
from apps.triggers.kinds.dataset_change import DatasetChange
DatasetChange.evaluate = timed("evaluate", DatasetChange.evaluate)
licensing.active_license = timed("active_license", licensing.active_license)
run_services.publish_run_state = timed("publish", run_services.publish_run_state)
claim_queries = [0]
claims = [0]
original_claim = services._claim_checks
def counted_claim(*args, **kwargs):
    before = len(connection.queries_log)
    try:
        return original_claim(*args, **kwargs)
    finally:
        claims[0] += 1
        claim_queries[0] += len(connection.queries_log) - before
services._claim_checks = counted_claim
# A cycle's claimers are this thread and helper threads (services.CHECK_CLAIMERS), each on a
# connection of its own: count the helpers' statements too.
helper_queries = []
original_helper = services._evaluate_checks_in_helper
def counted_helper(*args, **kwargs):
    connection.queries_log = deque(maxlen=10**7)
    with CaptureQueriesContext(connection) as ctx:
        try:
            return original_helper(*args, **kwargs)
        finally:
            helper_queries.extend(ctx.captured_queries)
services._evaluate_checks_in_helper = counted_helper

def pattern(sql):
    sql = re.sub(r"'[^']*'", "?", sql)
    sql = re.sub(r"\b\d+\b", "?", sql)
    sql = re.sub(r"\((?:\?, )+\?\)", "(…)", sql)
    return sql[:110]

def top(captured, limit=10):
    return Counter(pattern(q["sql"]) for q in captured).most_common(limit)

user = get_user_model().objects.create_superuser("bench", password="x-" + os.urandom(8).hex())
project = project_create(user=user, key="BENCH", name="bench")
files = Connection.objects.create(name="files", kind="filesystem", config={{"root": str(root)}})
names = []
for i in range(FOLDERS):
    folder = root / f"folder_{{i:03d}}"
    folder.mkdir()
    for j in range(FILES):
        (folder / f"part_{{j}}.csv").write_text("a,b\n1,2\n")
    names.append(f"folder_{{i:03d}}")
datasets = Dataset.objects.bulk_create(
    [Dataset(project=project, name=name, connection=files, format="csv", path=name)
     for name in names])
scenarios = Scenario.objects.bulk_create(
    [Scenario(project=project, name=f"s{{i:05d}}", run_as=user) for i in range(N)],
    batch_size=2000)

# -- 1. polled evaluation cycle ---------------------------------------------------------------
# Each trigger's baseline as its first look records it, so that the cycle is the steady one.
loaded = list(Dataset.objects.select_related("connection").filter(pk__in=[d.pk for d in datasets]))
prints = {{d.name: fingerprint(dataset_fingerprint(d)) for d in loaded}}
def baseline(name):
    each = {{name: prints[name]}}
    whole = fingerprint(each)
    return {{"seen": whole, "fired": whole, "changed_at": None, "fired_each": each}}
Trigger.objects.bulk_create(
    [Trigger(scenario=scenario, name="watch", kind="dataset_change",
             params={{"datasets": [names[i % FOLDERS]], "all_changed": False}},
             state=baseline(names[i % FOLDERS]),
             next_check_at=timezone.now() - timedelta(seconds=1))
     for i, scenario in enumerate(scenarios)], batch_size=2000)

def postgres_cpu():
    # CPU seconds the PostgreSQL server has used so far: the postmaster and its children
    # (backends, walwriter, checkpointer, autovacuum), the reaped ones included (cutime).
    postmaster, ticks = int(os.environ["BENCH_POSTMASTER"]), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if postmaster in (int(stat.parent.name), int(fields[1])):
            ticks += sum(int(field) for field in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")

def cycle():
    claim_queries[0] = claims[0] = 0
    helper_queries.clear()
    connection.ensure_connection()
    with CaptureQueriesContext(connection) as ctx:
        postgres_before = postgres_cpu()
        start, cpu_start = time.perf_counter(), time.process_time()
        # One `now` for the whole cycle: a cycle longer than the check interval (60 s) would
        # otherwise claim its own first batches again and never end.
        evaluated = services._evaluate_due_checks(timezone.now(), time.monotonic() + 600)
        cpu, wall = time.process_time() - cpu_start, time.perf_counter() - start
        postgres = postgres_cpu() - postgres_before
    claimers = 1 + bool(helper_queries)
    batches = claims[0] - claimers  # each claimer's last claim finds nothing due
    captured = [*ctx.captured_queries, *helper_queries]
    return {{"wall": wall, "evaluated": evaluated, "batches": batches, "claimers": claimers,
             "queries": len(captured), "claim_queries": claim_queries[0],
             "top": top(captured), "cpu": cpu, "postgres_cpu": postgres}}

timers.clear()
steady = cycle()  # nothing changed: every evaluation "unchanged"
steady["timers"] = dict(timers)
results = Counter(TriggerEvaluation.objects.values_list("result", flat=True))

postgres_before = postgres_cpu()
start, cpu_start = time.perf_counter(), time.process_time()
for i in range(N):
    fingerprint(dataset_fingerprint(loaded[i % FOLDERS]))
floor, floor_cpu = time.perf_counter() - start, time.process_time() - cpu_start
floor_postgres = postgres_cpu() - postgres_before
# The same cycle shared by two processes, as two workers' ticks share it (SKIP LOCKED).
import multiprocessing
from django.db import connections
def share(now, results):
    connections.close_all()  # a forked child opens its own connection
    connection.ensure_connection()  # as a worker's is: open before its tick
    start = time.process_time()
    evaluated = services._evaluate_due_checks(now, time.monotonic() + 600)
    results.put({{"evaluated": evaluated, "cpu": time.process_time() - start}})
    connections.close_all()
Trigger.objects.filter(kind="dataset_change").update(next_check_at=timezone.now())
connections.close_all()
fork = multiprocessing.get_context("fork")
shared_results = fork.Queue()
postgres_before = postgres_cpu()
start = time.perf_counter()
now = timezone.now()
children = [fork.Process(target=share, args=(now, shared_results)) for _ in range(2)]
[child.start() for child in children]
shares = [shared_results.get(timeout=600) for _ in children]
shared_wall = time.perf_counter() - start
shared_postgres = postgres_cpu() - postgres_before
[child.join(60) for child in children]
out["cycle"] = {{"steady": steady, "floor": floor, "floor_cpu": floor_cpu,
                 "floor_postgres_cpu": floor_postgres, "results": dict(results),
                 "shared": {{"wall": shared_wall, "counts": [s["evaluated"] for s in shares],
                            "cpu": [s["cpu"] for s in shares],
                            "postgres_cpu": shared_postgres}}}}

# -- 2. midnight burst ------------------------------------------------------------------------
Trigger.objects.filter(kind="dataset_change").update(enabled=False, next_check_at=None)
params = services.trigger_validate("time", {{"schedule": "hourly", "minute": 0}})
crontab, _ = CrontabSchedule.objects.get_or_create(**crontab_fields(params), timezone="UTC")
burst = scenarios[:BURST]
Trigger.objects.bulk_create(
    [Trigger(scenario=scenario, name="hourly", kind="time", params=params, crontab=crontab,
             catch_up="once") for scenario in burst], batch_size=2000)
timers.clear()
slot = timezone.now().replace(microsecond=0) - timedelta(seconds=1)
Trigger.objects.filter(kind="time").update(next_fire_at=slot)
ticks, fired = [], 0
with CaptureQueriesContext(connection) as ctx:
    while True:
        start = time.perf_counter()
        tick = services.triggers_tick()
        ticks.append(time.perf_counter() - start)
        fired += tick["slots"]
        if not tick["slots"] and not Trigger.objects.filter(
                kind="time", enabled=True, next_fire_at__lte=timezone.now()).exists():
            break
lags = [(queued - slot).total_seconds() for queued in
        Run.objects.filter(trigger_kind="time").values_list("queued_at", flat=True)]
fire_top = top(ctx.captured_queries)
burst_timers = dict(timers)
burst_queries = len(ctx.captured_queries)

others = [Trigger(scenario=s, name="floor", kind="time") for s in burst]
Trigger.objects.bulk_create(others, batch_size=2000)
others = list(Trigger.objects.filter(name="floor"))
floor_slot = slot - timedelta(hours=1)
start = time.perf_counter()
TriggerFire.objects.bulk_create([TriggerFire(trigger=t, slot=floor_slot) for t in others])
fire_floor = time.perf_counter() - start
start = time.perf_counter()
try:
    Run.objects.bulk_create([Run(scenario=s, project=project, number=10**6, trigger_kind="floor")
                             for s in burst])
    run_floor = time.perf_counter() - start
except Exception as error:
    run_floor = repr(error)
# -- 2b. the same burst at full scale with the default catch-up policy (skip) -------------------
Run.objects.all().delete()
Trigger.objects.filter(kind="time").delete()
Trigger.objects.bulk_create(
    [Trigger(scenario=scenario, name="hourly", kind="time", params=params, crontab=crontab)
     for scenario in scenarios[:FULL]], batch_size=2000)
slot2 = timezone.now().replace(microsecond=0) - timedelta(seconds=1)
Trigger.objects.filter(kind="time").update(next_fire_at=slot2)
# Fired by two processes at once, as two workers' ticks share a burst (SKIP LOCKED).
def burst_share():
    connections.close_all()
    while services.triggers_tick()["slots"] or Trigger.objects.filter(
            kind="time", enabled=True, next_fire_at__lte=timezone.now()).exists():
        pass
    connections.close_all()
connections.close_all()
start = time.perf_counter()
children = [fork.Process(target=burst_share) for _ in range(2)]
[child.start() for child in children]
[child.join(600) for child in children]
full_wall = time.perf_counter() - start
full_lags = [(queued - slot2).total_seconds() for queued in
             Run.objects.filter(trigger_kind="time").values_list("queued_at", flat=True)]
missed = TriggerEvaluation.objects.filter(trigger__kind="time", result="skipped",
                                          message__startswith="Missed").count()
out["skip_policy"] = {{"triggers": FULL, "runs": len(full_lags), "missed": missed,
                       "wall": full_wall, "lag_max": max(full_lags, default=None),
                       "lags": full_lags}}
out["burst"] = {{"lags": lags, "fired": fired, "ticks": ticks, "queries": burst_queries,
                 "top": fire_top, "timers": burst_timers, "fire_floor": fire_floor,
                 "run_floor": run_floor, "triggers": len(burst),
                 "runs": len(lags)}}
print(json.dumps(out))
"""


def run() -> list[Figure]:
    with Stack("triggers") as stack:
        postgres, redis = stack.databases()
        env = distributed_env(stack.workdir / "var", postgres, redis)
        env.update(DJANGO_SETTINGS_MODULE="config.settings", BENCH_ROOT=str(stack.workdir / "data"))
        pid_file = postgres.root / "pgdata" / "postmaster.pid"
        env.update(BENCH_POSTMASTER=pid_file.read_text().split()[0])
        (stack.workdir / "data").mkdir()
        manage(env, "migrate", "--noinput", "-v0")
        code = SCRIPT.format(
            n=TRIGGERS, folders=FOLDERS, files=FILES_PER_FOLDER, burst=BURST, full=FULL_SKIP
        )
        measured = json.loads(python(env, "-c", code, timeout=900).strip().splitlines()[-1])
    return [
        *cycle_figures(measured["cycle"]),
        *burst_figures(measured["burst"]),
        *skip_figures(measured["skip_policy"], measured["burst"]),
    ]


def cycle_figures(cycle: dict) -> list[Figure]:
    steady = cycle["steady"]
    n = steady["evaluated"]
    notes = {
        "triggers": TRIGGERS,
        "folders": FOLDERS,
        "files_per_folder": FILES_PER_FOLDER,
        "batches": steady["batches"],
        "steady": steady,
        "evaluation_results": cycle["results"],
    }
    label = f"{n:,} dataset-change triggers"
    shared = cycle["shared"]
    return [
        Figure(
            "triggers",
            f"one polled cycle, {label}, shared by 2 processes (as 2 workers' ticks)",
            "s",
            {"value": shared["wall"]},
            f"bare loop: the same {FOLDERS} folder fingerprints {n:,} times (no DB)",
            {"value": cycle["floor"]},
            sum(shared["counts"]),
            ("value", 1.0),
            {"evaluated_per_process": shared["counts"]},
        ),
        Figure(
            "triggers",
            f"one polled cycle, {label} (steady: unchanged)",
            "s",
            {"value": steady["wall"]},
            f"bare loop: the same {FOLDERS} folder fingerprints {n:,} times (no DB)",
            {"value": cycle["floor"]},
            n,
            ("value", 1.0),
            notes,
        ),
        *rate_figures(cycle),
        *cpu_figures(cycle),
        Figure(
            "triggers",
            f"DB queries per polled cycle, {label}",
            "queries",
            {"value": steady["queries"]},
            f"the batch claims' own queries ({steady['batches']} batches of 500)",
            {"value": steady["claim_queries"]},
            n,
            None,
            {"per_trigger": steady["queries"] / max(n, 1)},
        ),
        Figure(
            "triggers",
            "DB queries per evaluated trigger (polled cycle)",
            "queries",
            {"value": steady["queries"] / max(n, 1)},
            "the batch claims' queries per trigger",
            {"value": steady["claim_queries"] / max(n, 1)},
            n,
        ),
    ]


def rate_figures(cycle: dict) -> list[Figure]:
    steady, shared = cycle["steady"], cycle["shared"]
    floor_name = f"bare loop: {FOLDERS} folder fingerprints per second (no DB)"
    floor = {"value": steady["evaluated"] / cycle["floor"]}
    return [
        Figure(
            "triggers",
            f"evaluations per second, polled cycle, {processes}",
            "triggers/s",
            {"value": evaluated / wall},
            floor_name,
            floor,
            evaluated,
            notes={"wall_s": wall},
        )
        for processes, evaluated, wall in (
            ("one process", steady["evaluated"], steady["wall"]),
            ("shared by 2 processes", sum(shared["counts"]), shared["wall"]),
        )
    ]


def cpu_figures(cycle: dict) -> list[Figure]:
    """CPU seconds per polled cycle: the evaluating processes', then PostgreSQL's."""
    steady, shared, n = cycle["steady"], cycle["shared"], cycle["steady"]["evaluated"]
    django = (f"bare loop's CPU: {FOLDERS} folder fingerprints {n:,} times", cycle["floor_cpu"])
    postgres = ("PostgreSQL's CPU during the bare loop (no query)", cycle["floor_postgres_cpu"])
    rows = [
        ("one process: the Django process", [steady["cpu"]], django),
        ("2 processes: both Django processes", shared["cpu"], django),
        ("one process: PostgreSQL (all its processes)", [steady["postgres_cpu"]], postgres),
        ("2 processes: PostgreSQL (all its processes)", [shared["postgres_cpu"]], postgres),
    ]
    return [
        Figure(
            "triggers",
            f"CPU per polled cycle, {n:,} triggers, {who}",
            "s",
            {"value": sum(seconds)},
            floor_name,
            {"value": floor},
            n,
            notes={"cpu_ms_per_trigger": sum(seconds) * 1000 / max(n, 1), "each_s": seconds},
        )
        for who, seconds, (floor_name, floor) in rows
    ]


def burst_figures(burst: dict) -> list[Figure]:
    lags, n = burst["lags"], burst["runs"]
    spread = distribution(lags)
    total = spread["max"]
    scale = 10_000 / burst["triggers"]
    notes = {
        "triggers": burst["triggers"],
        "runs": n,
        "fired": burst["fired"],
        "lag_s": spread,
        "ticks": len(burst["ticks"]),
        "tick_s": burst["ticks"],
        "queries": burst["queries"],
        "queries_per_fire": burst["queries"] / max(n, 1),
        "top_queries": burst["top"],
        "timers_s": burst["timers"],
        "run_bulk_create_s": burst["run_floor"],
    }
    if scale != 1:
        notes["extrapolated_to_10000_s"] = total * scale
    return [
        Figure(
            "triggers",
            f"burst: slot → last run created, {burst['triggers']:,} time triggers, one slot",
            "s",
            {"value": total},
            f"one bulk_create of {burst['triggers']:,} TriggerFire rows",
            {"value": burst["fire_floor"]},
            n,
            ("value", 10.0 / scale),
            notes,
        ),
        Figure(
            "triggers",
            "burst: slot → run created (each run)",
            "s",
            {key: spread[key] for key in ("p50", "p95", "p99")},
            "bulk_create of the TriggerFire rows (all of them)",
            {key: burst["fire_floor"] for key in ("p50", "p95", "p99")},
            n,
        ),
        Figure(
            "triggers",
            "burst: DB queries per fired trigger",
            "queries",
            {"value": burst["queries"] / max(n, 1)},
            "one bulk_create, per row",
            {"value": 1 / max(n, 1)},
            n,
        ),
    ]


def skip_figures(full: dict, burst: dict) -> list[Figure]:
    spread = distribution(full.pop("lags"))
    return [
        skip_figure(full, burst),
        Figure(
            "triggers",
            f"burst shared by 2 processes (as 2 workers' ticks): slot → last of "
            f"{full['triggers']:,} runs created",
            "s",
            {"value": spread["max"]},
            "one bulk_create of the TriggerFire rows (single burst above)",
            {"value": burst["fire_floor"]},
            full["runs"],
            ("value", 10.0),
            {"lag_s": spread},
        ),
    ]


def skip_figure(full: dict, burst: dict) -> Figure:
    return Figure(
        "triggers",
        f"burst, default catch-up (skip): {full['triggers']:,} due at one slot, runs created",
        "runs",
        {"value": full["runs"]},
        "triggers due",
        {"value": full["triggers"]},
        full["triggers"],
        None,
        {**full, "note": "a slot claimed more than 60 s late is recorded as missed, not run"},
    )
