"""A Python step whose output makes lost log lines visible, and what to check of it."""

from __future__ import annotations

import re
from pathlib import Path

from apps.runs.models import LogLine, Run
from apps.runs.services import run_start


def ticker_step(go: Path, *, bound: float = 90) -> dict:
    """Prints "tick 1", "tick 2"… every 20 ms until ``go`` exists, then "done after N ticks"
    (or after ``bound`` seconds, so that a failed test cannot leave it running)."""
    code = (
        "import os, time\n"
        f"go, deadline, i = {str(go)!r}, time.monotonic() + {bound}, 0\n"
        "while not os.path.exists(go) and time.monotonic() < deadline:\n"
        "    i += 1\n"
        "    print(f'tick {i}', flush=True)\n"
        "    time.sleep(0.02)\n"
        "print(f'done after {i} ticks', flush=True)\n"
    )
    return {"name": "ticker", "type": "python", "params": {"code": code}}


def assert_log_complete(run: Run) -> int:
    """The stored lines are numbered 1..N without a gap and hold every line the ticker
    printed, once and in order. Returns the number of ticks."""
    rows = list(LogLine.objects.filter(run=run).order_by("seq").values_list("seq", "message"))
    seqs = [seq for seq, _ in rows]
    messages = [message for _, message in rows]
    missing = sorted(set(range(1, max(seqs, default=0) + 1)) - set(seqs))
    assert not missing, f"seqs missing from the stored log: {missing}"
    assert seqs == list(range(1, len(rows) + 1)), "the log's seqs are not dense from 1"
    done = [m for m in messages if m.startswith("done after ")]
    assert len(done) == 1, messages[-10:]
    count = int(done[0].split()[2])
    ticks = [m for m in messages if re.fullmatch(r"tick \d+", m)]
    assert ticks == [f"tick {i}" for i in range(1, count + 1)], "a printed line is missing"
    return count


def start(scenario, user, **kwargs) -> Run:
    started = run_start(scenario=scenario, user=user, **kwargs)
    assert started.run is not None, started.reason
    return started.run


def stored_lines(run: Run) -> int:
    return LogLine.objects.filter(run=run).count()


def stored_ticks(run: Run) -> int:
    return LogLine.objects.filter(run=run, message__regex=r"^tick \d+$").count()


def logged(process, text: str, *, count: int = 1) -> bool:
    """Has the process (a WorkerProcess, a BeatProcess) written ``text`` to its log?"""
    return process.log.read_text(errors="replace").count(text) >= count
