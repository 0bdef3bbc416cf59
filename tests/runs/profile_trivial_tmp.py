"""Temporary: profile one trivial run (not collected: no test_ prefix)."""
from __future__ import annotations

import cProfile
import pstats
import threading
import time

import pytest
from django.db.backends import utils as db_utils

from apps.runs.runner import run_execute
from apps.runs.services import run_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_profile(make_scenario, no_dispatch):
    scenarios = [
        make_scenario(name=f"T{n}", steps=[{"name": "set", "type": "set_variables",
                                            "params": {"variables": {"x": 1}}}])
        for n in range(60)
    ]
    # warm up
    for s in scenarios[:10]:
        run_execute(run_start(scenario=s).run.pk)
    recorded = []
    orig_exec, orig_many = db_utils.CursorWrapper._execute, db_utils.CursorWrapper._executemany

    def _execute(self, sql, params, *ignored):
        recorded.append((threading.current_thread().name, sql))
        return orig_exec(self, sql, params, *ignored)

    def _executemany(self, sql, params, *ignored):
        recorded.append((threading.current_thread().name, sql))
        return orig_many(self, sql, params, *ignored)

    db_utils.CursorWrapper._execute = _execute
    db_utils.CursorWrapper._executemany = _executemany
    try:
        run = run_start(scenario=scenarios[10]).run
        recorded.append(("--", "---- run_execute ----"))
        run_execute(run.pk)
    finally:
        db_utils.CursorWrapper._execute = orig_exec
        db_utils.CursorWrapper._executemany = orig_many
    for name, sql in recorded:
        print(f"{name[:14]:14} {sql[:230]}")
    ids = [run_start(scenario=s).run.pk for s in scenarios[11:61]]
    profiler = cProfile.Profile(time.thread_time)
    t0, c0 = time.perf_counter(), time.process_time()
    profiler.enable()
    for pk in ids:
        run_execute(pk)
    profiler.disable()
    print("wall ms/run", (time.perf_counter() - t0) * 1000 / len(ids),
          "cpu ms/run", (time.process_time() - c0) * 1000 / len(ids))
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(60)
    stats.sort_stats("tottime").print_stats(30)
