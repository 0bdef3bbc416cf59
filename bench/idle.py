"""idle: Cadenza at rest for 60 s, embedded and distributed, each beside a floor measured
side by side in the same window.

CPU from /proc/<pid>/stat, RSS from /proc/<pid>/status, wake-ups from the threads' context
switches.

Embedded: the one `manage.py serve` process (web, worker, beat). Floor: uvicorn serving the
same ASGI app with the same settings — the web server alone, without the Celery worker and
beat.

Distributed: the Procfile's processes on a devstack PostgreSQL and Redis — `manage.py serve`
(the uvicorn supervisor and one web process per core), `celery -A config worker` (prefork,
-c 4), the system worker (`--queues cadenza.system --pool threads -c 2`) and `celery -A config
beat` — measured once /health/ reports every part ok (beat's heartbeat included) and a settle
has passed. Each is a process tree: a Stack session leader, the postmaster (postmaster.pid) or
redis-server, with every descendant. Its CPU is utime + stime + cutime + cstime summed over the
tree's live processes, so a child or a backend that exits in the window still counts (its
parent has reaped its time). Its RSS is summed over the processes, which counts pages shared
by prefork children once per child; PSS (smaps_rollup) splits them and is given beside it.

Distributed floor: the same layout with nothing of Cadenza in it, on servers of its own —
a second PostgreSQL with nothing connected; a second Redis whose only clients are the
Procfile's three Celery commands run for an app with no tasks, no schedule and no Django
(bare_celery.py: a prefork worker -c 4, a threads worker -c 2 on cadenza.system, and beat,
which then has nothing to send); and uvicorn serving config.asgi with as many processes as
`serve` starts. Bare servers alone would leave out what Celery itself costs at rest (broker
polling, heartbeats, gossip), which Cadenza cannot avoid while it uses Celery; bare Celery
processes on the stack's own Redis would put their polling into the figure being measured.
Each process stands beside its bare twin and the total beside the floor's total: the
difference is Cadenza's own code and work at rest (tick, heartbeats, sweeps, connections).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.stack import (
    HOST,
    PYTHON,
    Process,
    Stack,
    distributed_env,
    embedded_env,
    manage,
    serve,
    uvicorn,
    wait_for_log,
    wait_healthy,
    wait_listening,
)
from bench.stats import Figure
from devstack import free_port

SETTLE = 5  # seconds after start-up before the window opens
WINDOW = 60  # seconds of rest measured: beat ticks in it (heartbeat 15 s, sweep 10 s)
TICKS = os.sysconf("SC_CLK_TCK")
SLICE = 10  # seconds: the distributed window is also read in slices, to show it is flat
PARTS = ("database", "broker", "channel_layer", "worker", "beat")
BARE_APP = """import os
from celery import Celery
app = Celery("bare", broker=os.environ["BARE_BROKER"])
"""
# Each Cadenza tree → the floor tree beside it.
TWINS = {
    "web": "bare-uvicorn",
    "worker": "bare-worker",
    "system-worker": "bare-system-worker",
    "beat": "bare-beat",
    "postgres": "bare-postgres",
    "redis": "bare-redis",
}


def run() -> list[Figure]:
    return [*embedded(), *distributed()]


def embedded() -> list[Figure]:
    with Stack("idle") as stack:
        env = embedded_env(stack.workdir / "var")
        manage(env, "migrate", "--noinput", "-v0")
        server, url = serve(stack, env)
        floor, _ = uvicorn(stack, env, "config.asgi:application", "bare-uvicorn")
        wait_healthy(url, server)  # the worker answers: start-up is over
        time.sleep(SETTLE)
        before = {process.name: sample(process.pid) for process in (server, floor)}
        time.sleep(WINDOW)
        after = {process.name: sample(process.pid) for process in (server, floor)}
        for process in (server, floor):
            process.check_alive()
        serving = rates(before[server.name], after[server.name])
        return figures(serving, rates(before[floor.name], after[floor.name]), server)


def sample(pid: int) -> dict:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    switches = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                switches += int(line.split(":")[1])
    return {
        "at": time.monotonic(),
        "cpu_ticks": int(stat[11]) + int(stat[12]),  # utime, stime (fields 14 and 15)
        "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
        "threads": int(status["Threads"]),
        "switches": switches,
    }


def rates(before: dict, after: dict) -> dict:
    seconds = after["at"] - before["at"]
    return {
        "cpu_percent": (after["cpu_ticks"] - before["cpu_ticks"]) / TICKS / seconds * 100,
        "rss_mb": after["rss_mb"],
        "wakeups_per_s": (after["switches"] - before["switches"]) / seconds,
        "threads": after["threads"],
        "seconds": seconds,
    }


def figures(serving: dict, bare: dict, server: Process) -> list[Figure]:
    floor_name = "uvicorn alone serving config.asgi (no worker, no beat), same window"
    rows = [
        ("cpu_percent", "CPU at rest", "%", 2.0),
        ("rss_mb", "RSS at rest", "MB", 250.0),
        ("wakeups_per_s", "thread wake-ups at rest", "/s", None),
    ]
    return [
        Figure(
            bench="idle",
            metric=f"{label}, embedded process ({serving['threads']} threads)",
            unit=unit,
            value={"value": serving[key]},
            floor_name=floor_name,
            floor={"value": bare[key]},
            n=round(serving["seconds"]),
            target=("value", limit) if limit is not None else None,
            notes={"serve": serving, "floor": bare, "pid": server.pid},
        )
        for key, label, unit, limit in rows
    ]


# -- the distributed stack -----------------------------------------------------------------------


def distributed() -> list[Figure]:
    with Stack("idle-distributed") as stack, Stack("idle-floor") as bare:
        postgres, redis = stack.databases()
        env = distributed_env(stack.workdir / "var", postgres, redis)
        manage(env, "migrate", "--noinput", "-v0")
        server, url = serve(stack, env, name="web")
        processes = [server, *procfile_celery(stack, env)]
        bare_postgres, bare_redis = bare.databases()
        bare_env = distributed_env(bare.workdir / "var", bare_postgres, bare_redis)
        processes += bare_stack(bare, bare_env)
        health = wait_healthy(url, server, PARTS)
        roots = {process.name: process.pid for process in processes}
        roots.update(postgres=postmaster(postgres.root), redis=redis.process.pid)
        roots.update({"bare-postgres": postmaster(bare_postgres.root)})
        roots.update({"bare-redis": bare_redis.process.pid})
        time.sleep(SETTLE * 2)  # beat's first heartbeat and the workers' start-up are over
        snapshots = [snapshot(roots)]
        for _ in range(WINDOW // SLICE):
            time.sleep(SLICE)
            snapshots.append(snapshot(roots))
        for process in processes:
            process.check_alive()
    return stack_figures(snapshots, health)


def procfile_celery(
    stack: Stack, env: dict[str, str], app: str = "config", prefix: str = ""
) -> list[Process]:
    """The Procfile's worker, system worker and beat, as it starts them; only a node name
    (two workers on one host would both be celery@host) and beat's file are added."""
    celery = [PYTHON, "-m", "celery", "-A", app]
    commands = {
        "worker": ["worker", "--loglevel", "INFO", "--concurrency", "4", "-n", f"worker@{HOST}"],
        "system-worker": [
            "worker", "--loglevel", "INFO", "--queues", "cadenza.system", "--pool", "threads",
            "--concurrency", "2", "-n", f"system@{HOST}",
        ],
        "beat": ["beat", "--loglevel", "INFO", "-s", str(stack.workdir / "celerybeat-schedule")],
    }  # fmt: skip
    processes = [
        stack.spawn(prefix + name, [*celery, *argv], env) for name, argv in commands.items()
    ]
    for process in processes:
        wait_for_log(process, "beat: Starting" if process.name.endswith("beat") else " ready.")
    return processes


def bare_stack(stack: Stack, env: dict[str, str]) -> list[Process]:
    """The floor's Python processes: the Procfile's Celery commands for an app with no tasks
    and no Django, and uvicorn with as many web processes as `serve` starts."""
    (stack.workdir / "bare_celery.py").write_text(BARE_APP)
    celery_env = {key: env[key] for key in ("PATH", "HOME", "LANG") if key in env}
    celery_env.update(BARE_BROKER=env["REDIS_URL"], PYTHONPATH=str(stack.workdir))
    port, workers = free_port(), env.get("CADENZA_WEB_WORKERS") or str(os.cpu_count() or 1)
    argv = [PYTHON, "-m", "uvicorn", "config.asgi:application", "--host", HOST]
    argv += ["--port", str(port), "--workers", workers, "--lifespan", "off", "--no-access-log"]
    web = stack.spawn("bare-uvicorn", argv, env)
    wait_listening(web, port)
    return [web, *procfile_celery(stack, celery_env, app="bare_celery", prefix="bare-")]


def postmaster(root: Path) -> int:
    return int((root / "pgdata" / "postmaster.pid").read_text().split()[0])


def snapshot(roots: dict[str, int]) -> dict:
    """Every tree's processes read at one moment."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
        children.setdefault(parent, []).append(int(stat.parent.name))
    trees = {}
    for name, root in roots.items():
        pids, todo = [], [root]
        while todo:
            pids.append(todo.pop())
            todo += children.get(pids[-1], [])
        trees[name] = {pid: reading for pid in pids if (reading := process_reading(pid))}
    return {"at": time.monotonic(), "trees": trees}


def process_reading(pid: int) -> dict | None:
    """CPU ticks with the reaped children's, RSS and PSS of one process; None if it is gone."""
    proc = Path(f"/proc/{pid}")
    try:
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        status = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines())
        rollup = (proc / "smaps_rollup").read_text().splitlines()
        command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    kilobytes = {line.split(":")[0]: int(line.split()[1]) for line in rollup if line.endswith("kB")}
    return {
        "cpu_ticks": sum(int(field) for field in fields[11:15]),  # utime stime cutime cstime
        "rss_mb": int(status.get("VmRSS", "0 kB").split()[0]) / 1024,  # none for a zombie
        "pss_mb": kilobytes.get("Pss", 0) / 1024,
        "command": command.strip()[:90],
    }


def tree_rates(before: dict, after: dict, seconds: float) -> dict:
    """One tree over the window; a process born in it counts from zero."""

    def percent(ticks: int) -> float:
        return ticks / TICKS / seconds * 100

    processes = [
        {
            "pid": pid,
            "command": reading["command"],
            "cpu_percent": percent(reading["cpu_ticks"] - before.get(pid, {}).get("cpu_ticks", 0)),
            "rss_mb": round(reading["rss_mb"], 1),
            "pss_mb": round(reading["pss_mb"], 1),
        }
        for pid, reading in after.items()
    ]
    ticks = [sum(reading["cpu_ticks"] for reading in tree.values()) for tree in (before, after)]
    return {
        "cpu_percent": percent(ticks[1] - ticks[0]),
        "rss_mb": sum(reading["rss_mb"] for reading in after.values()),
        "pss_mb": sum(reading["pss_mb"] for reading in after.values()),
        "processes": processes,
    }


def window_rates(first: dict, last: dict) -> dict[str, dict]:
    seconds = last["at"] - first["at"]
    return {
        name: {**tree_rates(first["trees"][name], tree, seconds), "seconds": seconds}
        for name, tree in last["trees"].items()
    }


def summed(measured: dict[str, dict], names) -> dict:
    keys = ("cpu_percent", "rss_mb", "pss_mb")
    return {key: sum(measured[name][key] for name in names) for key in keys}


FLOOR_NAMES = {
    "bare-uvicorn": "uvicorn serving config.asgi, as many processes, nothing else",
    "bare-worker": "the same worker command, app with no tasks and no Django (bare Redis)",
    "bare-system-worker": "the same system worker command, app with no tasks and no Django",
    "bare-beat": "the same beat command, app with no schedule and no Django",
    "bare-postgres": "a second PostgreSQL, nothing connected",
    "bare-redis": "a second Redis, its only clients the three bare Celery processes",
}


def stack_figures(snapshots: list[dict], health: dict) -> list[Figure]:
    measured = window_rates(snapshots[0], snapshots[-1])
    floors = sorted(set(TWINS.values()))
    slices = [
        {side: summed(window_rates(first, last), names)["cpu_percent"]
         for side, names in (("stack", TWINS), ("floor", floors))}
        for first, last in zip(snapshots, snapshots[1:], strict=False)
    ]  # fmt: skip
    seconds = round(measured["web"]["seconds"])
    rows = [("cpu_percent", "CPU at rest", "%"), ("rss_mb", "RSS at rest", "MB")]
    figures = [
        Figure(
            bench="idle",
            metric=f"{label}, distributed: {name} ({len(measured[name]['processes'])} processes)",
            unit=unit,
            value={"value": measured[name][key]},
            floor_name=f"{FLOOR_NAMES[twin]}, same window",
            floor={"value": measured[twin][key]},
            n=seconds,
            notes={"processes": measured[name]["processes"], "floor": measured[twin]},
        )
        for name, twin in TWINS.items()
        for key, label, unit in rows
    ]
    stack, floor = summed(measured, TWINS), summed(measured, floors)
    notes = {"stack": stack, "floor": floor, "cpu_percent_by_slice": slices, "health": health}
    rows.append(("pss_mb", "PSS at rest (shared pages split)", "MB"))
    figures += [
        Figure(
            bench="idle",
            metric=f"{label}, distributed stack in total (web, 2 workers, beat, PG, Redis)",
            unit=unit,
            value={"value": stack[key]},
            floor_name="the same layout bare (PG, Redis, uvicorn, Celery ×3) in total, same window",
            floor={"value": floor[key]},
            n=seconds,
            notes=notes,
        )
        for key, label, unit in rows
    ]
    return figures
