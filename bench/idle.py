"""idle: the embedded process (`manage.py serve`: web, worker, beat) at rest.

CPU from /proc/<pid>/stat (utime + stime of all threads) over a quiet window, RSS from
/proc/<pid>/status, wake-ups from the threads' context switches.

Floor, measured side by side in the same window: uvicorn serving the same ASGI app with the
same settings — the web server alone, without the Celery worker and beat.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.stack import Process, Stack, embedded_env, manage, serve, uvicorn, wait_healthy
from bench.stats import Figure

SETTLE = 5  # seconds after start-up before the window opens
WINDOW = 45  # seconds of rest measured: beat ticks in it (heartbeat 15 s, sweep 10 s)
TICKS = os.sysconf("SC_CLK_TCK")


def run() -> list[Figure]:
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
