"""live_log: a step prints 1,000 lines/s for 30 s while VIEWERS WebSocket clients watch.

Distributed mode: PostgreSQL, Redis (broker and channels_redis), a `celery worker --pool
threads` running the step (Python in the sandbox: its stdout → LogWriter → batched insert →
group_send), and uvicorn serving bench.asgi (Cadenza's ASGI app plus the floor's route).
The viewers log in through /accounts/login/ and watch ws/runs/<id>/logs/?after=0 with the
session cookie. Latency: LogLine.ts (when the worker read the line) → message received.

Floor: the same viewers on the echo route while bench.publish group_sends lines of the
same rate and batch size — channel layer → consumer → client, nothing else.
"""

from __future__ import annotations

import asyncio
import json

from bench.client import FINAL, Api, Viewer, epoch, login
from bench.stack import (
    PYTHON,
    BenchError,
    Stack,
    celery_worker,
    distributed_env,
    manage,
    python,
    uvicorn,
)
from bench.stats import Figure, distribution

VIEWERS = 20  # issue #8: 20 viewers
LINES, RATE = 30_000, 1000  # 30 s at 1,000 lines/s
TARGET_P95_MS = 150


def run() -> list[Figure]:
    with Stack("live_log") as stack:
        postgres, redis = stack.databases()
        env = distributed_env(stack.workdir / "var", postgres, redis)
        manage(env, "migrate", "--noinput", "-v0")
        seeded = json.loads(python(env, "-m", "bench.seed", "--lines", str(LINES)))
        celery_worker(stack, env)
        _, url = uvicorn(stack, env, "bench.asgi:application", "web")
        session = login(url, seeded["username"], seeded["password"])
        floor = asyncio.run(echo_floor(stack, env, url))
        live = asyncio.run(run_log(url, seeded, session))
        return figures(delivery(live), delivery(floor))


async def echo_floor(stack: Stack, env: dict[str, str], url: str) -> list[Viewer]:
    viewers = [Viewer(f"{_ws(url)}/ws/bench/echo/?group=floor") for _ in range(VIEWERS)]

    def start_publishing():
        argv = [PYTHON, "-m", "bench.publish", "floor", "--lines", str(LINES)]
        stack.spawn("publisher", [*argv, "--rate", str(RATE)], env)

    def done(message: dict) -> bool:
        return message["type"] == "lines" and message["lines"][-1]["seq"] >= LINES

    await watch_all(viewers, done, start_publishing)
    return viewers


async def run_log(url: str, seeded: dict, session: str) -> list[Viewer]:
    api = Api(url, seeded["token"], seeded["project"])
    _, run = api.start_run(seeded["scenarios"]["chatty"])  # the step waits 2 s, then prints
    path = f"/ws/runs/{run['id']}/logs/?after=0"
    viewers = [Viewer(f"{_ws(url)}{path}", session) for _ in range(VIEWERS)]

    def done(message: dict) -> bool:
        return message["type"] == "state" and message["run"]["status"] in FINAL

    await watch_all(viewers, done, lambda: None)
    final = api.run(run["id"])
    if final["status"] != "success":
        raise BenchError(f"the chatty run ended {final['status']}: {final['outcome_message']}")
    return viewers


async def watch_all(viewers: list[Viewer], done, on_connected, bound: float = 60) -> None:
    """Connect every viewer, call ``on_connected``, then receive until each one is done."""
    connected = [asyncio.Event() for _ in viewers]
    tasks = [asyncio.create_task(v.watch(e, done)) for v, e in zip(viewers, connected, strict=True)]
    try:
        everyone = asyncio.ensure_future(asyncio.gather(*(event.wait() for event in connected)))
        await asyncio.wait([everyone, *tasks], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if not everyone.done():
            everyone.cancel()
            failed = [task.exception() for task in tasks if task.done() and task.exception()]
            raise BenchError(f"viewers could not connect: {failed or 'timeout'}")
        on_connected()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=bound)
    finally:
        for task in tasks:
            task.cancel()


def delivery(viewers: list[Viewer]) -> dict:
    """Latency of every printed line at every viewer; lines lost, received twice, or skipped."""
    latencies, lost, duplicates, gaps = [], 0, 0, 0
    for viewer in viewers:
        lines = viewer.lines()
        seqs = [line["seq"] for _, line in lines]
        duplicates += len(seqs) - len(set(seqs))
        gaps += len(set(range(1, max(seqs, default=0) + 1)) - set(seqs))
        printed = {}  # the step's lines; the runner's own ("Step … started") are not timed
        for arrived, line in lines:
            if line["message"].startswith("line ") and line["message"] not in printed:
                printed[line["message"]] = (arrived - epoch(line["ts"])) * 1000
        lost += LINES - len(printed)
        latencies += printed.values()
    return {"latencies": latencies, "lost": lost, "duplicates": duplicates, "seq_gaps": gaps}


def figures(live: dict, floor: dict) -> list[Figure]:
    counts = {key: live[key] for key in ("lost", "duplicates", "seq_gaps")}
    floor_counts = {key: floor[key] for key in ("lost", "duplicates", "seq_gaps")}
    return [
        Figure(
            bench="live_log",
            metric=f"line written → received, {VIEWERS} viewers, {RATE} lines/s",
            unit="ms",
            value=distribution(live["latencies"]),
            floor_name="group_send → echo consumer → client (channels_redis, same rate/batches)",
            floor=distribution(floor["latencies"]),
            n=len(live["latencies"]),
            target=("p95", TARGET_P95_MS),
            max_ratio=("p95", 1.5),  # issue #8: ≤ 1.5× the bare group_send latency
            notes={"live": counts, "floor": floor_counts},
        ),
        Figure(
            bench="live_log",
            metric=f"lines lost over {VIEWERS} viewers × {LINES:,} lines",
            unit="lines",
            value={"value": live["lost"] + live["duplicates"] + live["seq_gaps"]},
            floor_name="lost by the echo route (the channel layer is at-most-once)",
            floor={"value": floor["lost"]},
            n=VIEWERS * LINES,
            target=("value", 0),
            notes={"live": counts, "floor": floor_counts},
        ),
    ]


def _ws(url: str) -> str:
    return url.replace("http://", "ws://")
